"""A hosted hedged bot's perpetual leg on a LIVE exchange account (e.g. ``binanceusdm``
``BTC/USDT:USDT``), through :class:`connectors.perp_venue.CcxtPerpAccount` on the leg's own ccxt
connection, as a single-venue live perpetual bot does it (:mod:`workers.perp_live`).

At start (:func:`start`, once the leg's :class:`~workers.live_venue.LiveVenue` is connected and
before take-over):

- the exchange's contract must be the one the leg was validated with (the market row's contract
  size: the hedge is converted in contracts with it): a different one refuses the bot naming
  ``contract_size``, the two values and what is accepted;
- the leg's settings (``maker_perp`` / ``hedge_perp``: ``leverage``, ``margin_mode``, ``limits``,
  :func:`apps.derivatives.hosting.validate_live`) are applied all or nothing
  (:meth:`CcxtPerpAccount.configure`): a leverage above the market's maximum, or a margin-mode
  switch while the exchange reports an open position, is refused before anything is sent and the
  bot goes to ``error`` with the reason; a setting left out keeps what the exchange has;
- the leg gets a :class:`~trading.isolated_margin.LivePerpRisk` on the exchange's contract and
  leverage tiers (``fetchLeverageTiers``), with the account's settle-currency balance as the
  wallet: the hedged loop's pre-trade margin check of that leg and its PnL use it.

While it runs (:class:`LegPerpReader`, a task next to the loop, every ``settings.PERP_POLL_MS``):
``fetchPositions`` reads the exchange's position back (kept as ``exchange_position`` in the leg's
status figures) and its mark, ``fetchFundingRate`` the rate and next funding time, and the funding
payments the exchange made since the last read are booked once each on the leg
(:class:`workers.perp_funding.LiveFunding`: stored as ``FundingPayment`` rows of the leg's
account and market, a ``funding`` bot event naming the leg). A difference with the position
booked from the leg's fills seen on two reads in a row (a fill still on its way is seen once at
most) is a ``position_mismatch`` bot event naming the leg; the leg's books stay what its fills say
(the hedger's exposure is counted from fills).

Take-over: the exchange's wallet read at start already holds the realized PnL, fees and funding
of the leg's history, which take-over books again from the recorded fills and stored payments;
so once take-over is done (:meth:`LegPerpReader.after_take_over`, before the reads start) the
wallet the leg's risk counts from is that balance less what was booked, as
:meth:`workers.perp_live.LivePerp.after_take_over` does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC
from decimal import Decimal

import ccxt

from apps.derivatives.hosting import validate_live
from connectors.perp_venue import CcxtPerpAccount
from trading.config import ConfigError
from trading.contracts import MarginMode, frac, to_decimal
from trading.isolated_margin import LivePerpRisk
from trading.perp_risk import PerpRiskLimits
from workers import perp_funding, perp_live
from workers.bot_control import StopLoop

logger = logging.getLogger(__name__)

FIELDS = {"maker": "maker_perp", "hedge": "hedge_perp"}


def is_live_perp(leg) -> bool:
    return leg.live and getattr(leg.setup, "contract", None) is not None


async def start(loop, leg) -> None:
    """Configure the leg's perpetual on its exchange and give it its :class:`LivePerpRisk`
    (``leg.perp``) and reader (``leg.perp_reader``, started by :meth:`LegPerpReader.start`). A
    refusal puts the bot in ``error`` with the reason; an unreachable exchange retries later."""
    setup = leg.setup
    field = FIELDS[leg.name]
    settings = dict((setup.risk or {}).get("perp") or {})
    errors = validate_live(settings, setup.symbol)
    if errors:
        await loop.refuse(f"{leg.name} leg: " + "; ".join(f"{field}{k[4:]}: {v}" for k, v in errors.items()))
    venue = leg.venue
    gateway = venue.gateway
    account = CcxtPerpAccount(gateway.exchange)
    symbol = setup.symbol
    try:
        await gateway.limiter.acquire(1)
        _market, spec = await account.contract(symbol)
        if spec.contract_size != setup.contract.contract_size or spec.inverse != setup.contract.inverse:
            await loop.refuse(
                f"{leg.name} leg: contract_size: {gateway.exchange.id} {symbol} contracts are {spec.contract_size:f} "
                f"({spec.kind.value}), the market row's {setup.contract.contract_size:f} "
                f"({setup.contract.kind.value}); accepted: the exchange's contract (sync the markets, then "
                "check order_amount is a whole number of contracts)"
            )
        read = await perp_live.read_exchange(gateway, account, symbol, settings)
    except StopLoop:
        raise
    except ccxt.AuthenticationError as exc:
        await loop.refuse(f"{leg.name} leg: {venue.auth_failure(exc)}")
    except ccxt.NetworkError as exc:  # unreachable for now: the start is retried
        loop.r.host.retry_later(loop.r.bot_id, 10.0)
        raise StopLoop(f"{leg.name} leg: {gateway.exchange.id} unreachable while configuring {symbol}: {exc}") from exc
    except (*perp_live.REFUSED, ccxt.ExchangeError) as exc:
        await loop.refuse(f"{leg.name} leg: {field}: {venue.scrub(perp_live._text(exc))}")
    changed, reports, table, wallet_ms = read.changed, read.reports, read.table, read.wallet_ms
    loop.r.host.db.submit(perp_live.store_balances, setup.account_id, read.amounts)  # for the new-bot guards
    wallet = read.wallet(spec.settle)
    if wallet is None or wallet <= 0:
        await loop.refuse(
            f"{leg.name} leg: wallet: the exchange account holds {wallet or 0} {spec.settle}; a perpetual "
            f"settling in {spec.settle} needs a balance above 0"
        )
    venue_lev = next((r.leverage for r in reports if r.leverage), None)
    leverage = min(int(settings.get("leverage") or venue_lev or 1), spec.max_leverage)
    mode = MarginMode(settings.get("margin_mode") or (reports[0].margin_mode.value if reports else "cross"))
    try:
        risk = LivePerpRisk(
            PerpRiskLimits.from_dict(settings.get("limits") or {}),
            setup.instrument,
            setup.contract,
            table,
            wallet=wallet,
            leverage=leverage,
            margin_mode=mode,
        )
    except ConfigError as exc:
        await loop.refuse(f"{leg.name} leg: {field}: {perp_live._text(exc)}")
    risk.funding_source = perp_live.FUNDING_SOURCE
    done = await loop.r.host.db_setup.call(booked, loop.r.bot_id, setup.account_id, symbol)
    risk.position.funding = frac(done.total)  # booked under earlier owners
    leg.perp = risk
    funding = perp_funding.LiveFunding(_LegRunner(loop, leg), account, done, wallet_ms)
    leg.perp_reader = LegPerpReader(loop, leg, account, reports, funding)
    held = sum((r.contracts for r in reports), Decimal(0))
    loop.r._event(
        "lifecycle",
        "perp_configured",
        f"{leg.name} leg {gateway.exchange.id} {symbol}: {', '.join(changed) or 'settings unchanged'}; trading at "
        f"{leverage}x {mode.value}, wallet {wallet.normalize():f} {spec.settle}, the exchange's position "
        f"{held.normalize():f} contracts",
        {"leg": leg.name, "changed": changed, "leverage": leverage, "margin_mode": mode.value,
         "wallet": f"{wallet.normalize():f}"},
    )  # fmt: skip


def booked(bot_id: int, account_id: int, symbol: str) -> perp_funding.Booked:
    """Database thread: the funding payments stored for this leg (the bot's, on the leg's account
    and market): ids, sum and the newest time, or the bot's creation time to read from."""
    from django.db.models import Max, Sum

    from apps.bots.models import Bot
    from apps.derivatives.models import FundingPayment

    rows = FundingPayment.objects.filter(bot_id=bot_id, account_id=account_id, symbol=symbol)
    agg = rows.aggregate(total=Sum("amount"), newest=Max("ts"))
    newest = agg["newest"] or Bot.objects.values_list("created", flat=True).get(pk=bot_id)
    return perp_funding.Booked(
        ids=set(rows.values_list("payment_id", flat=True)),
        total=agg["total"] or Decimal(0),
        since_ms=int(newest.astimezone(UTC).timestamp() * 1000),
    )


class _LegRunner:
    """What :class:`workers.perp_funding.LiveFunding` reads of a bot's runner, for one leg: its
    risk, setup and venue; its events name the leg."""

    def __init__(self, loop, leg) -> None:
        self.loop, self.leg = loop, leg
        self.setup, self.venue = leg.setup, leg.venue
        self.host, self.bot_id = loop.r.host, loop.r.bot_id

    @property
    def engine(self):
        return self.leg  # LiveFunding books on ``engine.perp``: the leg's LivePerpRisk

    def _event(self, kind: str, code: str, message: str, data: dict) -> None:
        self.loop.r._event(kind, code, f"{self.leg.name} leg {message}", {**data, "leg": self.leg.name})


class LegPerpReader:
    """Reads a live perpetual leg's exchange position, mark, funding rate and funding payments
    back (module docstring)."""

    def __init__(self, loop, leg, account: CcxtPerpAccount, reports, funding: perp_funding.LiveFunding) -> None:
        self.loop = loop
        self.leg = leg
        self.account = account
        self.funding = funding
        self.reports = list(reports)
        self.reads = 0
        self.read_at: int | None = None
        self.mismatch: tuple[int, int] | None = None
        self.reported: tuple[int, int] | None = None
        self.last_error = ""
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._poll(), name=f"hedged-perp-{self.leg.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(perp_live.poll_seconds())
            try:
                await self.read()
                self.last_error = ""
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the next read tries again; the figures in use stay
                text = self.leg.venue.scrub(perp_live._text(exc))
                if text != self.last_error:
                    self.last_error = text
                    logger.warning(
                        "bot %s %s leg: perpetual figures not read: %s", self.loop.r.bot_id, self.leg.name, text
                    )

    def after_take_over(self) -> None:
        """Take-over has booked the leg's recorded fills and stored payments: the wallet read at
        start held them already, so it becomes that balance less what was booked (module
        docstring); then the reads of the exchange start."""
        risk: LivePerpRisk = self.leg.perp
        pos = risk.position
        history = pos.realized + pos.funding - pos.fees
        if history:
            risk.set_wallet(risk.wallet - history)
        self.funding.rebased = True
        self.start()

    async def read(self) -> None:
        gateway = self.leg.venue.gateway
        risk: LivePerpRisk = self.leg.perp
        symbol = self.leg.setup.symbol
        await gateway.limiter.acquire(2)
        reports = await self.account.fetch_positions(symbol)
        self.reports = reports
        self.reads += 1
        self.read_at = time.time_ns()
        mark = next((r.mark_price for r in reports if r.mark_price), None)
        if mark:
            risk.set_mark(mark)
        self._compare()
        # the exchange's liquidation price and isolated wallet of its position, used while the
        # leg's fills give the same size (as a single-venue live perpetual's, workers.perp_live)
        lots = self.exchange_lots()
        liquidation = [r.liquidation_price for r in reports if r.contracts and r.liquidation_price]
        if lots is not None and len(liquidation) == 1 and risk.position.net_lots == lots:
            risk.set_liquidation(liquidation[0], lots)
        isolated = [r.isolated_wallet for r in reports if r.contracts and r.isolated_wallet]
        if lots is not None and len(isolated) == 1:
            risk.set_isolated_wallet(isolated[0], lots)
        funding = await self.account.fetch_funding(symbol)
        risk.set_funding(funding.rate, None if funding.next_funding_ts is None else funding.next_funding_ts * 1_000_000)
        if funding.mark_price:
            risk.set_mark(funding.mark_price)
        await self.funding.read()

    def exchange_lots(self) -> int | None:
        theirs = sum((frac(r.contracts) for r in self.reports), frac(0)) / frac(self.leg.setup.instrument.lot_size)
        return int(theirs) if theirs.denominator == 1 else None

    def _compare(self) -> None:
        ours, theirs = self.leg.perp.position.net_lots, self.exchange_lots()
        if theirs is None or ours == theirs:
            self.mismatch = None
            return
        seen = (ours, theirs)
        if self.mismatch != seen:  # the first read of it: a fill may still be on its way
            self.mismatch = seen
            return
        if self.reported != seen:
            self.reported = seen
            inst = self.leg.setup.instrument
            booked, exchange = inst.quantity(ours), inst.quantity(theirs)
            self.loop.r._event(
                "reconcile",
                "position_mismatch",
                f"{self.leg.name} leg {self.leg.setup.symbol}: the exchange's position is {exchange.normalize():f} "
                f"contracts, the leg's fills say {booked.normalize():f}",
                {"leg": self.leg.name, "booked": f"{booked:f}", "exchange": f"{exchange:f}"},
            )

    def figures(self) -> dict:
        """The exchange's position as last read, for the leg's status."""
        held = sum((r.contracts for r in self.reports), Decimal(0))
        return {
            "exchange_position": f"{held.normalize():f}" if held else "0",
            "exchange_reads": self.reads,
            "exchange_read_ts": self.read_at,
            "exchange_mark": None if self.leg.perp.mark is None else f"{to_decimal(self.leg.perp.mark, 8):f}",
            "exchange_liquidation_price": next(
                (f"{r.liquidation_price.normalize():f}" for r in self.reports if r.contracts and r.liquidation_price),
                None,
            ),
        }
