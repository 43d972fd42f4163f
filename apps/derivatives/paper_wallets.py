"""How perpetual bots on one paper account share its settle-currency balance.

One exchange account backs all its positions with one balance; several paper perpetual bots on
one account must not each take the whole of it as their wallet (each would pass its margin check
on the same collateral). Each bot's wallet here is a share of the balance fixed before it starts:

* the only perpetual bot of the account on a settle currency may go without an allocation: its
  wallet is the whole balance (as a lone bot's always was);
* as soon as the account has several (every one on that settle currency counts, whatever its
  state: a stopped bot's stored position still holds margin), each needs an **allocation**
  (``risk.perp.wallet``, in the settle currency, above 0), which is its wallet, and together they
  may add up to at most the balance.

A hedged bot (:mod:`apps.bots.hedged`) takes a share on each paper account one of its perpetual
legs trades on, the same way: its maker leg's allocation is ``params.maker_perp.wallet`` (on the
bot's own account), its hedge leg's ``params.hedge_perp.wallet`` (on ``params.hedge_account``);
each leg counts as one perpetual bot of that account (:func:`claims`).

Checked when a bot is created or its configuration changed (:func:`check_bot`, from
:mod:`apps.bots.services`: nothing saved when refused) and when it starts (:func:`paper_wallet`,
from :mod:`workers.perp_hosting` and, per leg, :mod:`workers.hedged_legs`), which refuses to start
it with the field named, the value and what would be accepted. A bot started alone
without an allocation keeps the whole balance while it runs: a second bot added meanwhile is
refused until both have allocations. Lowering the account's balance reaches a running bot at its
next start.

Why fixed shares and not "the balance less what the other bots use now": the other bots' margin
would be read from their stored states (written each second), so two bots placing orders in the
same second would each see the collateral the other is about to use as free, and both use it.
With disjoint shares each bot's pre-trade margin check (:class:`trading.perp_risk.PerpRisk`) is
against collateral no other bot counts: no two bots can use the same collateral, with no
coordination between their processes. The cost is that collateral a bot leaves unused is not
lent to the others; the trader moves it by changing the allocations.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

FIELD = "perp.wallet"
LEG_FIELDS = {"bot": FIELD, "maker": "maker_perp.wallet", "hedge": "hedge_perp.wallet"}
ACCEPTED = "a perp.wallet allocation (a hedged bot's legs: maker_perp.wallet / hedge_perp.wallet)"


@dataclass(frozen=True)
class Claim:
    """One share of an account's settle balance: a perpetual bot's, or one leg of a hedged bot's
    (``leg`` ``bot``, ``maker`` or ``hedge``), with its allocation (None: none given)."""

    bot_id: int
    leg: str
    name: str
    allocation: Decimal | None

    @property
    def label(self) -> str:
        return repr(self.name) if self.leg == "bot" else f"{self.name!r} ({self.leg} leg)"

    @property
    def share(self) -> str:
        who = self.name if self.leg == "bot" else f"{self.name} ({self.leg} leg)"
        return f"{who} {self.allocation.normalize():f}"


def allocation(risk: Any) -> Decimal | None:
    """A bot's ``risk.perp.wallet`` (None when absent or not a number; validation refuses those)."""
    perp = (risk or {}).get("perp") if isinstance(risk, dict) else None
    return wallet_of(perp)


def wallet_of(settings: Any) -> Decimal | None:
    """The ``wallet`` of a perpetual settings object (``risk.perp``, ``maker_perp``, ``hedge_perp``)."""
    if not isinstance(settings, dict) or settings.get("wallet") in (None, ""):
        return None
    try:
        return Decimal(str(settings["wallet"]))
    except (InvalidOperation, ValueError):
        return None


def _hedge_account_id(params: Any) -> int | None:
    try:
        return int((params or {}).get("hedge_account"))
    except (TypeError, ValueError):
        return None


def claims(account_id: int, settle: str) -> list[Claim]:
    """Every share taken of ``account_id``'s ``settle`` balance: its bots on a perpetual market of
    that settle currency (a hedged bot's maker leg among them), and the hedge legs of hedged bots
    (any account's) hedging on a perpetual of it on this account."""
    from django.db.models import Q

    from apps.bots.hedged import STRATEGY
    from apps.bots.models import Bot
    from apps.exchanges.models import Market

    out = []
    own = (
        Bot.objects.filter(exchange_account_id=account_id, market__settle=settle)
        .exclude(market__kind="spot")
        .order_by("id")
        .values_list("pk", "name", "strategy", "risk", "params")
    )
    for pk, name, strategy, risk, params in own:
        if strategy == STRATEGY:
            out.append(Claim(pk, "maker", name, wallet_of((params or {}).get("maker_perp"))))
        else:
            out.append(Claim(pk, "bot", name, allocation(risk)))
    hedging_here = Q(params__hedge_account=account_id) | Q(params__hedge_account=str(account_id))
    legs = Bot.objects.filter(hedging_here, strategy=STRATEGY).order_by("id").values_list("pk", "name", "params")
    market_ids = {p.get("hedge_market") for _pk, _name, p in legs}
    perps = set(
        Market.objects.filter(pk__in=[m for m in market_ids if isinstance(m, int)], settle=settle)
        .exclude(kind="spot")
        .values_list("pk", flat=True)
    )
    for pk, name, params in legs:
        if params.get("hedge_market") in perps:
            out.append(Claim(pk, "hedge", name, wallet_of(params.get("hedge_perp"))))
    return out


def paper_wallet(
    *, account_id: int, bot_id: int | None, settle: str, balance: Decimal, risk: Any = None,
    leg: str = "bot", settings: Any = None, siblings: list[Claim] | None = None,
):  # fmt: skip
    """``(wallet, {})`` for bot ``bot_id``'s ``leg`` on paper account ``account_id``, or
    ``(None, errors)`` naming the allocation's field when its share cannot be given (module
    docstring). A bot's allocation is read from ``risk``, a hedged leg's from ``settings``
    (``maker_perp`` / ``hedge_perp``); ``bot_id`` None is a bot not saved yet. ``siblings`` (a
    configuration not saved yet) replace the bot's stored claims of its other legs on this balance."""
    field = LEG_FIELDS[leg]
    others = [c for c in claims(account_id, settle) if (c.bot_id, c.leg) != (bot_id, leg)]
    if siblings is not None:
        others = [c for c in others if c.bot_id != bot_id] + list(siblings)
    own = allocation(risk) if leg == "bot" else wallet_of(settings)
    if not others:
        return (balance if own is None else own), (
            {} if own is None or own <= balance else _over(field, own, balance, settle)
        )
    missing = [c.label for c in others if c.allocation is None]
    if own is None or missing:
        who = "this bot" if own is None else f"bot {', '.join(missing)}"
        if own is None and leg != "bot":
            who = f"this bot's {leg} leg"
        return None, {
            field: (
                f"{'absent' if own is None else f'{own.normalize():f}'}: {len(others) + 1} perpetual bots settle in {settle} "
                f"on this paper account and {who} has no allocation; accepted: {ACCEPTED} on each of "
                f"them, together at most the {settle} balance {balance.normalize():f}"
            )
        }
    taken = sum((c.allocation for c in others), Decimal(0))
    if own + taken > balance:
        shares = ", ".join(c.share for c in others)
        return None, _over(field, own, balance - taken, settle, f" (the balance {balance.normalize():f} less {shares})")
    return own, {}


def _over(field: str, own: Decimal, left: Decimal, settle: str, why: str = "") -> dict[str, str]:
    return {
        field: (
            f"{own.normalize():f} {settle} is more than this paper account has for it{why}; accepted: at most "
            f"{max(left, Decimal(0)).normalize():f}"
        )
    }


def _leg_check(account, market, *, bot_id, leg, risk=None, settings=None, siblings=None) -> dict[str, str]:
    """:func:`paper_wallet`'s errors for one perpetual leg on a paper account ({} otherwise, and
    when the account has no balance of the settle currency: the start refuses that by name)."""
    if account is None or market is None or account.kind != "paper" or not market.is_perpetual:
        return {}
    settle = market.settle
    try:
        balance = Decimal(str((account.paper_balances or {}).get(settle)))
    except (InvalidOperation, ValueError):
        return {}
    if not balance > 0:
        return {}
    _wallet, errors = paper_wallet(
        account_id=account.pk, bot_id=bot_id, settle=settle, balance=balance, risk=risk, leg=leg, settings=settings,
        siblings=siblings,
    )  # fmt: skip
    return errors


def check_bot(*, bot_id: int | None, account, market, strategy: str, params: Any, risk: Any) -> dict[str, Any]:
    """The allocation errors of a bot about to be created (``bot_id`` None) or changed, shaped as
    the bot services' field errors (``{"risk": {"perp.wallet": [...]}}``, a hedged bot's under
    ``params``). Locks the paper accounts concerned (``SELECT ... FOR UPDATE``, in id order) so
    that two bots created or changed at once on one account are checked one after the other;
    call inside the transaction that saves the bot."""
    from apps.bots.hedged import STRATEGY
    from apps.exchanges.models import ExchangeAccount

    if strategy != STRATEGY:
        if account is None or account.kind != "paper" or not market.is_perpetual:
            return {}
        account = ExchangeAccount.objects.select_for_update().get(pk=account.pk)
        risk = risk if isinstance(risk, dict) else {}
        errors = _leg_check(account, market, bot_id=bot_id, leg="bot", risk=risk, siblings=[])
        return {"risk": {k: [v] for k, v in errors.items()}} if errors else {}
    return _check_hedged(bot_id, account, market, params if isinstance(params, dict) else {})


def _check_hedged(bot_id: int | None, account, market, params: dict) -> dict[str, Any]:
    """:func:`check_bot` of a hedged bot: each paper perpetual leg's allocation on its account (a
    leg's sibling on the same balance counted with its new allocation, not its stored one)."""
    from apps.exchanges.models import ExchangeAccount, Market

    hedge_id = _hedge_account_id(params)
    ids = sorted({account.pk} | ({hedge_id} if hedge_id is not None else set()))
    locked = {a.pk: a for a in ExchangeAccount.objects.select_for_update().filter(pk__in=ids).order_by("pk")}
    market_id = params.get("hedge_market")
    hedge_market = Market.objects.filter(pk=market_id).first() if isinstance(market_id, int) else None
    maker = Claim(bot_id or 0, "maker", "this bot", wallet_of(params.get("maker_perp")))
    hedge = Claim(bot_id or 0, "hedge", "this bot", wallet_of(params.get("hedge_perp")))
    shared = (
        account.pk == hedge_id and hedge_market is not None and market.is_perpetual and hedge_market.is_perpetual
        and hedge_market.settle == market.settle
    )  # fmt: skip
    errors = _leg_check(locked.get(account.pk), market, bot_id=bot_id, leg="maker",
                        settings=params.get("maker_perp"), siblings=[hedge] if shared else [])  # fmt: skip
    errors |= _leg_check(locked.get(hedge_id), hedge_market, bot_id=bot_id, leg="hedge",
                         settings=params.get("hedge_perp"), siblings=[maker] if shared else [])  # fmt: skip
    return {"params": {k: [v] for k, v in errors.items()}} if errors else {}
