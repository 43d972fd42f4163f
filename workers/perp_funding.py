"""Funding payments of a LIVE perpetual bot, read back from the exchange and booked once each.

The exchange pays or charges funding on the position at each funding time and says so in its
income history (Binance ``GET /fapi/v1/income`` ``FUNDING_FEE`` rows, ccxt ``fetchFundingHistory``;
:meth:`connectors.perp_venue.CcxtPerpAccount.fetch_funding_payments`). At each read of the
position (:class:`workers.perp_live.LivePerp`) the bot asks for the payments since the newest one
it knows and, for each payment it has not booked yet (by the exchange's id):

- books it on its perpetual position (:meth:`trading.isolated_margin.LivePerpRisk.book_payment`:
  the ``funding`` figure of the PnL snapshots, the bot page and the API, and in isolated mode the
  position's margin). In hedge mode it is booked per leg: on the leg the exchange names, else
  (Binance's ``FUNDING_FEE`` rows name none) split over the legs held at the payment's time by
  their signed notional, exactly (:func:`trading.live_legs.split_funding`: the smaller leg's share
  rounded to the payment's decimal places, the larger leg takes the rest); each leg's share is in
  the event (``data["legs"]``) and in the leg's ``funding`` on the page;
- stores it (:class:`apps.derivatives.models.FundingPayment`, unique on account, market and the
  exchange's id: a payment read again is stored once) and records a ``funding`` bot event
  (``funding_paid`` / ``funding_received``).

Once each across polls (the ids booked are kept) and across owners: a new owner starts from the
payments stored (their sum is the funding booked so far, their ids are skipped) and reads from
the newest stored one, so a payment its predecessor booked but did not store yet is booked (and
stored) again by it, exactly once. Payments made while no host owned the bot are read then too.
The first read of a bot that never booked one starts at the bot's creation: funding on a
position the account held before is not the bot's. One live perpetual bot per account and market
is assumed (the exchange keeps one position per account and market; the position reconciliation
assumes it too).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from connectors.ccxt_perp import FundingPayment
from trading.contracts import frac, to_decimal

logger = logging.getLogger(__name__)

PAGE = 1000  # Binance's largest income page


@dataclass
class Booked:
    """What a bot booked so far (loaded at start, kept up to date by the loop)."""

    ids: set[str] = field(default_factory=set)
    total: Decimal = Decimal(0)
    since_ms: int = 0  # the next read starts here (inclusive)


def booked(bot_id: int) -> Booked:
    """Database thread: the payments stored for the bot (ids, sum, the newest time), or the
    bot's creation time to read from when it has none."""
    from django.db.models import Max, Sum

    from apps.bots.models import Bot
    from apps.derivatives.models import FundingPayment as Row

    rows = Row.objects.filter(bot_id=bot_id)
    agg = rows.aggregate(total=Sum("amount"), newest=Max("ts"))
    newest = agg["newest"] or Bot.objects.values_list("created", flat=True).get(pk=bot_id)
    return Booked(
        ids=set(rows.values_list("payment_id", flat=True)),
        total=agg["total"] or Decimal(0),
        since_ms=int(newest.timestamp() * 1000),
    )


def funding_payments_record(rows: list[tuple]) -> None:
    """Store payments ``(account_id, bot_id, symbol, payment_id, ts ms, amount, currency)``; one
    already stored (same account, market and id) is left as it is."""
    from apps.derivatives.models import FundingPayment as Row

    Row.objects.bulk_create(
        [
            Row(
                account_id=account_id,
                bot_id=bot_id,
                symbol=symbol,
                payment_id=payment_id,
                ts=datetime.fromtimestamp(ts_ms / 1000, tz=UTC),
                amount=amount,
                currency=currency,
            )
            for account_id, bot_id, symbol, payment_id, ts_ms, amount, currency in rows
        ],
        ignore_conflicts=True,
    )


class LiveFunding:
    """The funding side of :class:`workers.perp_live.LivePerp` (see the module docstring)."""

    def __init__(self, runner, account, done: Booked, wallet_ms: int = 0) -> None:
        self.runner = runner
        self.account = account
        self.done = done
        self.symbol = runner.setup.symbol
        # The exchange's wallet perpetual risk counts from was read at ``wallet_ms``, and once
        # take-over booked the bot's history it is that balance less what the bot booked
        # (``LivePerp.after_take_over``, ``rebased``): a payment made before the read that is
        # booked later is in that balance already, so the wallet gives it back.
        self.wallet_ms = wallet_ms
        self.rebased = False

    async def read(self) -> list[FundingPayment]:
        """Read the payments since the newest known and book the new ones; returns those."""
        runner = self.runner
        risk = runner.engine.perp
        await runner.venue.gateway.limiter.acquire(1)
        payments = await self.account.fetch_funding_payments(self.symbol, self.done.since_ms, PAGE)
        new = [p for p in payments if p.payment_id not in self.done.ids]
        rows = []
        for p in new:
            self.done.ids.add(p.payment_id)
            self.done.since_ms = max(self.done.since_ms, p.ts)
            if p.currency and p.currency != risk.spec.settle:
                logger.warning(
                    "bot %s: funding payment %s in %s, not the settle currency %s: not booked",
                    runner.bot_id, p.payment_id, p.currency, risk.spec.settle,
                )  # fmt: skip
                continue
            risk.book_payment(p.amount, p.ts, p.position_side)  # hedge mode: per leg (trading.live_legs)
            if self.rebased and p.ts <= self.wallet_ms:
                risk.set_wallet(risk.wallet - frac(p.amount))
            self.done.total += p.amount
            setup = runner.setup
            rows.append((setup.account_id, setup.bot_id, self.symbol, p.payment_id, p.ts, p.amount, risk.spec.settle))
            self._event(p, risk)
        if rows:
            runner.host.db.submit(funding_payments_record, rows, owner=runner.bot_id)
        return new

    def _event(self, p: FundingPayment, risk) -> None:
        paid = p.amount < 0
        settle = risk.spec.settle
        pos = risk.position
        contracts = f"{to_decimal(pos.contracts(pos.net_lots), 8).normalize():f}"
        when = datetime.fromtimestamp(p.ts / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        shares = getattr(risk, "last_shares", None) or {}
        legs = "; ".join(
            f"the {n} leg {'paid' if v < 0 else 'received'} {abs(v).normalize():f}" for n, v in shares.items()
        )
        self.runner._event(
            "funding",
            "funding_paid" if paid else "funding_received",
            f"funding at {when}: {'paid' if paid else 'received'} {abs(p.amount).normalize():f} {settle} on the "
            f"exchange's position (payment {p.payment_id}; the bot holds {contracts} contracts"
            f"{f'; {legs}' if legs else ''}); booked "
            f"{to_decimal(frac(self.done.total), 8).normalize():f} {settle} of funding so far",
            {
                **({"legs": {n: f"{v:f}" for n, v in shares.items()}} if shares else {}),
                "payment_id": p.payment_id,
                "funding_ts": p.ts * 1_000_000,
                "amount": f"{p.amount:f}",
                "settle": settle,
                "position_contracts": contracts,
            },
        )
