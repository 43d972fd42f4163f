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

Checked when a bot starts (:func:`paper_wallet`, from :mod:`workers.perp_hosting`), which refuses
to start it with the field named, the value and what would be accepted. A bot started alone
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

from decimal import Decimal, InvalidOperation
from typing import Any

FIELD = "perp.wallet"


def allocation(risk: Any) -> Decimal | None:
    """A bot's ``risk.perp.wallet`` (None when absent or not a number; validation refuses those)."""
    perp = (risk or {}).get("perp") if isinstance(risk, dict) else None
    if not isinstance(perp, dict) or perp.get("wallet") in (None, ""):
        return None
    try:
        return Decimal(str(perp["wallet"]))
    except (InvalidOperation, ValueError):
        return None


def paper_wallet(*, account_id: int, bot_id: int, settle: str, balance: Decimal, risk: Any):
    """``(wallet, {})`` for bot ``bot_id`` on paper account ``account_id``, or ``(None, errors)``
    naming ``perp.wallet`` when its share cannot be given (module docstring)."""
    from apps.bots.models import Bot

    others = list(
        Bot.objects.filter(exchange_account_id=account_id, market__settle=settle)
        .exclude(market__kind="spot")
        .exclude(pk=bot_id)
        .order_by("id")
        .values_list("name", "risk")
    )
    own = allocation(risk)
    if not others:
        return (balance if own is None else own), ({} if own is None or own <= balance else _over(own, balance, settle))
    allocated = {name: allocation(r) for name, r in others}
    missing = [name for name, a in allocated.items() if a is None]
    if own is None or missing:
        names = ", ".join(repr(n) for n in ([] if own is None else missing))
        who = "this bot" if own is None else f"bot {names}"
        return None, {
            FIELD: (
                f"{'absent' if own is None else f'{own.normalize():f}'}: {len(others) + 1} perpetual bots settle in {settle} "
                f"on this paper account and {who} has no allocation; accepted: a perp.wallet allocation on each of "
                f"them, together at most the {settle} balance {balance.normalize():f}"
            )
        }
    taken = sum(allocated.values(), Decimal(0))
    if own + taken > balance:
        shares = ", ".join(f"{name} {a.normalize():f}" for name, a in allocated.items())
        return None, _over(own, balance - taken, settle, f" (the balance {balance.normalize():f} less {shares})")
    return own, {}


def _over(own: Decimal, left: Decimal, settle: str, why: str = "") -> dict[str, str]:
    return {
        FIELD: (
            f"{own.normalize():f} {settle} is more than this paper account has for it{why}; accepted: at most "
            f"{max(left, Decimal(0)).normalize():f}"
        )
    }
