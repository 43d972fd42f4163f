"""A hosted bot on a LIVE exchange's perpetual market (e.g. ``binanceusdm`` ``BTC/USDT:USDT``):
what it does with the exchange besides order entry, through
:class:`connectors.perp_venue.CcxtPerpAccount` on the bot's own ccxt connection.

At start (:func:`start`, after the :class:`~workers.live_venue.LiveVenue` connected and before
take-over):

- the bot's ``risk.perp`` settings (:func:`apps.derivatives.hosting.validate_live`) are applied
  all or nothing (:meth:`CcxtPerpAccount.configure`): a leverage above the market's maximum, a
  margin-mode switch while the exchange reports an open position, or a position-mode switch
  (``position_mode`` ``one_way`` / ``hedge``, ccxt ``setPositionMode``) while the market has a
  position or an open order, is refused before anything is sent, and the bot goes to ``error`` with the reason (field, value, what is accepted). A setting
  left out keeps what the exchange has;
- the engine gets a :class:`~trading.isolated_margin.LivePerpRisk` (a
  :class:`~trading.perp_risk.PerpRisk`) on the exchange's contract and leverage tiers
  (``fetchLeverageTiers``), with the account's settle-currency balance as the wallet, the
  leverage and margin mode now in force, and the funding payments booked under earlier owners.
  In isolated mode its own liquidation price (after a fill, until the exchange's next read)
  comes from the position's isolated margin, not from that wallet.

While it runs (:class:`LivePerp`, a task next to the venue's event pump, every
``settings.PERP_POLL_MS``): ``fetchFundingRate`` gives the funding rate, the next funding time
(the strategy context's ``funding_rate`` / ``next_funding_ts``) and the mark, and
``fetchPositions`` the exchange's position, whose mark the liquidation-distance check and the
margin figures use (and, isolated, its ``isolatedWallet``), and the funding payments the exchange
made since the last read are booked once each (:mod:`workers.perp_funding`). The exchange's
position is compared with the one booked from the bot's
fills: a difference seen on two reads in a row with nothing booked in between (a fill still on
its way is seen once at most) is a ``position_mismatch`` incident
(:func:`workers.reconcile.reconcile_live_position`) and perpetual risk takes the exchange's
position from then on (the venue is the truth; the recorded fills and PnL stay what the bot
booked). The exchange's liquidation price is the guard's while the position (hedge mode: each
leg, with its ``isolatedWallet``) has the size it reported, and one that differs materially from
the bot's own is a ``liquidation_disagree`` event (:mod:`workers.perp_live_legs`). Why two reads: the exchange moves its position when it fills an order, and the fill
reaches the bot through the gateway's poll or stream a little later. In hedge position mode the
legs are compared too: with the net agreeing, legs that differ on two reads in a row (a fill of
an order whose leg the bot did not know, e.g. one placed by an earlier owner) are taken from the
exchange without an incident; after take-over they are taken at once when the nets agree.

Streamed and polled: where the exchange streams positions (ccxt ``watchPositions``; Binance
USD-M's user-data stream ``ACCOUNT_UPDATE``), :mod:`workers.perp_stream` takes each position
update as it arrives (the exchange's position, its entry and isolated margin, between polls), and
a difference it shows is confirmed by a ``fetchPositions`` read soon after
(``settings.PERP_STREAM_CONFIRM_MS``) rather than at the next poll. Where the exchange streams
the mark price (ccxt ``watchMarkPrice``; Binance USD-M's ``markPriceUpdate``),
:mod:`workers.perp_mark_stream` takes the mark, the funding rate and the next funding time from
it, and the poll leaves those three alone while the stream is fresh; a stream that is down or
quiet for ``settings.PERP_MARK_STALE_MS`` is not trusted and the poll gives them again. The
liquidation price and the funding payments are always polled; the position poll goes on as the
resync and is the only source while the position stream is down.

A reduce-only order the exchange refuses because it would open or increase the position
(Binance ``-2022 ReduceOnly Order is rejected``) is rejected with a sentence saying so
(:meth:`LivePerp.explain`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from decimal import Decimal
from fractions import Fraction

import ccxt

from apps.derivatives.hosting import split_risk, validate
from connectors.ccxt_perp import PerpPayloadError, PositionReport, bracket_table_from_ccxt
from connectors.perp_venue import CcxtPerpAccount, PerpVenueError, perp_position
from trading.config import ConfigError
from trading.contracts import MarginMode, PositionMode, frac
from trading.events import OrderRejected, PlaceOrder
from trading.isolated_margin import LivePerpRisk
from trading.perp_risk import PerpRiskLimits
from workers import perp_funding, perp_live_legs, perp_mark_stream, perp_stream

logger = logging.getLogger(__name__)

FUNDING_SOURCE = "exchange (fetchFundingRate)"
# A refusal of the exchange that only a change of the bot's settings can fix: the bot goes to error.
REFUSED = (PerpVenueError, PerpPayloadError, ConfigError, ccxt.BadRequest, ccxt.InvalidOrder, ccxt.BadSymbol)


class PerpStartRefused(ValueError):
    """The bot's perpetual settings cannot be applied on the exchange (the reason names them)."""


def poll_seconds() -> float:
    from django.conf import settings

    return int(getattr(settings, "PERP_POLL_MS", 5000)) / 1000


async def start(runner, venue) -> LivePerp:
    """Apply the bot's settings on the exchange and give its engine a ``PerpRisk`` (see the
    module docstring). Raises :class:`PerpStartRefused` with the reason, ``AuthFailure`` for a
    refused key, ``ConnectionError`` when the exchange cannot be reached (the start is retried)."""
    setup = runner.setup
    symbol = setup.symbol
    _spot, settings = split_risk(setup.risk)
    settings = settings or {}
    errors = validate(setup.risk, setup.venue, setup.symbol)
    if errors:
        raise PerpStartRefused("; ".join(f"risk.{k}: {v}" for k, v in errors.items()))
    gateway = venue.gateway  # its exchange's listen-key requests already spend its limiter (build_gateway)
    account = CcxtPerpAccount(gateway.exchange)
    try:
        await gateway.limiter.acquire(1)
        _market, spec = await account.contract(symbol)
        read = await read_exchange(gateway, account, symbol, settings, settings.get("position_mode"))
    except ccxt.AuthenticationError as exc:  # the loop puts the bot in error with the (scrubbed) message
        raise venue.auth_failure(exc) from exc
    except ccxt.NetworkError as exc:  # the exchange is unreachable for now: the start is retried
        raise ConnectionError(f"{gateway.exchange.id} unreachable while configuring {symbol}: {exc}") from exc
    except (*REFUSED, ccxt.ExchangeError) as exc:  # e.g. the exchange's own refusal of the switch
        raise PerpStartRefused(venue.scrub(_text(exc))) from exc
    changed, reports, table, wallet_ms = read.changed, read.reports, read.table, read.wallet_ms
    # The portal's new-bot guards judge this account's next orders on the balances just read.
    runner.host.db.submit(store_balances, setup.account_id, read.amounts)
    wallet = read.wallet(spec.settle)
    if wallet is None or wallet <= 0:
        raise PerpStartRefused(
            f"wallet: the exchange account holds {wallet or 0} {spec.settle}; a perpetual settling in "
            f"{spec.settle} needs a balance above 0"
        )
    venue_lev = next((r.leverage for r in reports if r.leverage), None)
    leverage = settings.get("leverage") or venue_lev or 1
    mode = MarginMode(settings.get("margin_mode") or (reports[0].margin_mode.value if reports else "cross"))
    hedged = any(r.position_side in ("long", "short") for r in reports)
    position_mode = PositionMode(settings.get("position_mode") or ("hedge" if hedged else "one_way"))
    try:
        risk = LivePerpRisk(
            PerpRiskLimits.from_dict(settings.get("limits") or {}),
            setup.instrument,
            spec,
            table,
            wallet=wallet,
            leverage=min(int(leverage), spec.max_leverage),
            margin_mode=mode,
            position_mode=position_mode,
        )
    except ConfigError as exc:
        raise PerpStartRefused(_text(exc)) from exc
    risk.funding_source = FUNDING_SOURCE
    done = await runner.host.db_setup.call(perp_funding.booked, runner.bot_id)
    risk.position.funding = frac(done.total)  # booked under earlier owners (workers.perp_funding)
    runner.engine.perp = risk
    perp = LivePerp(runner, venue, account, reports, perp_funding.LiveFunding(runner, account, done, wallet_ms))
    venue.perp = perp
    runner._event(
        "lifecycle",
        "perp_configured",
        f"{gateway.exchange.id} {symbol}: {', '.join(changed) or 'settings unchanged'}; trading at {risk.leverage}x "
        f"{mode.value}, wallet {wallet.normalize():f} {spec.settle}, the exchange's position "
        f"{sum((r.contracts for r in reports), Decimal(0)).normalize():f} contracts",
        {
            "changed": changed,
            "leverage": risk.leverage,
            "margin_mode": mode.value,
            "wallet": f"{wallet.normalize():f}",
            **({"position_mode": "hedge"} if position_mode is PositionMode.HEDGE else {}),
        },
    )
    return perp


class LivePerp:
    """The running side: funding, mark and position read from the exchange (module docstring)."""

    def __init__(
        self, runner, venue, account: CcxtPerpAccount, reports: list[PositionReport], funding: perp_funding.LiveFunding
    ) -> None:
        self.runner = runner
        self.funding = funding  # the exchange's funding payments, booked once each
        self.venue = venue
        self.account = account
        self.symbol = runner.setup.symbol
        self.reports = reports  # the exchange's last answer
        self.mismatch: tuple[int, int] | None = None  # (ours, theirs) in lots at the last read
        self.leg_mismatch: tuple | None = None  # hedge mode: the legs (ours, theirs) at the last read
        self.reported: tuple[int, int] | None = None  # the difference already made an incident
        self.adopted = 0  # times perpetual risk took the exchange's position
        self.reads = 0
        self.last_error = ""
        self._reduce_only: dict[str, PlaceOrder] = {}
        self._task: asyncio.Task | None = None
        self.timer = perp_stream.ReadTimer()  # the poll's next read (sooner when the stream asks)
        self.stream: perp_stream.PositionStream | None = None
        self.marks: perp_mark_stream.MarkStream | None = None
        self.liq = perp_live_legs.LiquidationFigures(self)  # the exchange's liquidation figures

    def after_take_over(self) -> LivePerp:
        """Take-over has booked the bot's recorded fills and funding on its position; the
        exchange's wallet (read at start) already holds their realized PnL, fees and funding, so
        the wallet perpetual risk counts from is that balance less what the bot booked (margin
        balance = the exchange's wallet + unrealized PnL, not the bot's history twice). In hedge
        mode the legs are the exchange's (read at start) when its net agrees with the fills'.
        Then the reads of the exchange start."""
        risk: LivePerpRisk = self.runner.engine.perp
        pos = risk.position
        booked = pos.realized + pos.funding - pos.fees
        if booked:
            risk.set_wallet(risk.wallet - booked)
        if risk.hedge is not None:  # the replayed fills named no leg: the exchange's legs are the truth
            venue_pos = perp_position(self.reports, risk.instrument, risk.spec, margin_mode=pos.margin_mode)
            if venue_pos.mode is PositionMode.HEDGE and venue_pos.net_lots == pos.net_lots:
                risk.adopt_legs(venue_pos.legs, time.time_ns())
            self.liq.apply(self.reports)  # each leg's liquidation price and isolated wallet
        self.funding.rebased = True
        return self.start_polling()

    def start_polling(self) -> LivePerp:
        self._task = asyncio.get_running_loop().create_task(self._poll(), name=f"perp-{self.runner.bot_id}")
        if perp_stream.supported(self.venue.gateway.exchange):
            self.stream = perp_stream.PositionStream(self).start()
        if perp_mark_stream.supported(self.venue.gateway.exchange):
            self.marks = perp_mark_stream.MarkStream(self).start()
        return self

    async def stop(self) -> None:
        for stream in (self.stream, self.marks):
            if stream is not None:
                await stream.stop()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _poll(self) -> None:
        while True:  # the first read one period after start: take-over has booked the position
            await self.timer.wait(poll_seconds())
            try:
                await self.read()
                self.last_error = ""
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the next read tries again; the figures in use stay
                text = self.venue.scrub(_text(exc))
                if text != self.last_error:
                    self.last_error = text
                    logger.warning("bot %s: perpetual figures not read: %s", self.runner.bot_id, text)

    async def read(self) -> None:
        """One read of position and mark, then the funding rate and the payments made (see the
        module docstring)."""
        gateway = self.venue.gateway
        risk: LivePerpRisk = self.runner.engine.perp
        await gateway.limiter.acquire(2)
        reports = await self.account.fetch_positions(self.symbol)
        self.reads += 1
        self.reports = reports
        streamed = self.marks is not None and self.marks.fresh()  # the mark and funding are the stream's
        mark = next((r.mark_price for r in reports if r.mark_price), None)
        if mark and not streamed:
            risk.set_mark(mark)
        self._compare(reports)
        liquidation = [r.liquidation_price for r in reports if r.contracts and r.liquidation_price]
        if len(liquidation) == 1 and risk.position.net_lots == self.venue_lots(reports):
            risk.set_liquidation(liquidation[0], risk.position.net_lots)
        isolated = [r.isolated_wallet for r in reports if r.contracts and r.isolated_wallet]
        if len(isolated) == 1:
            risk.set_isolated_wallet(isolated[0], self.venue_lots(reports))
        self.liq.apply(reports)  # hedge mode: per leg; both: a disagreement with ours is an event
        if not (streamed and self.marks.funding):
            funding = await self.account.fetch_funding(self.symbol)
            next_ns = None if funding.next_funding_ts is None else funding.next_funding_ts * 1_000_000
            risk.set_funding(funding.rate, next_ns)
            if funding.mark_price and not streamed:
                risk.set_mark(funding.mark_price)
        await self.funding.read()

    def venue_lots(self, reports: list[PositionReport]) -> int:
        """The exchange's net position in lots of the bot's market."""
        theirs = sum((frac(r.contracts) for r in reports), Fraction(0)) / frac(self.runner.engine.instrument.lot_size)
        if theirs.denominator != 1:
            raise PerpPayloadError(f"{self.symbol} contracts: the exchange's position is not a whole number of lots")
        return int(theirs)

    def _compare(self, reports: list[PositionReport]) -> None:
        risk: LivePerpRisk = self.runner.engine.perp
        ours, theirs = risk.position.net_lots, self.venue_lots(reports)
        if ours == theirs:
            self.mismatch = None
            if risk.hedge is not None:
                self._compare_legs(reports)
            return
        seen = (ours, theirs)
        if self.mismatch != seen:  # the first read of it: a fill may still be on its way
            self.mismatch = seen
            return
        self._take_exchange_position(reports, seen)

    def _compare_legs(self, reports: list[PositionReport]) -> None:
        """Hedge mode with the net agreeing: legs that differ from the exchange's on two reads in a
        row (a fill of an order whose leg the bot did not know) become the exchange's."""
        risk: LivePerpRisk = self.runner.engine.perp
        venue_pos = perp_position(reports, risk.instrument, risk.spec, margin_mode=risk.position.margin_mode)
        if venue_pos.mode is not PositionMode.HEDGE:
            return
        seen = tuple((n, risk.position.legs[n].lots, venue_pos.legs[n].lots) for n in ("long", "short"))
        if all(ours == theirs for _n, ours, theirs in seen):
            self.leg_mismatch = None
        elif self.leg_mismatch != seen:  # the first read of it: a fill may still be on its way
            self.leg_mismatch = seen
        else:
            risk.adopt_legs(venue_pos.legs, time.time_ns())
            self.leg_mismatch = None

    def _take_exchange_position(self, reports: list[PositionReport], seen: tuple[int, int]) -> None:
        runner = self.runner
        risk: LivePerpRisk = runner.engine.perp
        venue_pos = perp_position(reports, risk.instrument, risk.spec, margin_mode=risk.position.margin_mode)
        risk.adopt_legs(venue_pos.legs, time.time_ns())
        self.adopted += 1
        self.mismatch = None
        if self.reported != seen:
            self.reported = seen
            booked = risk.instrument.quantity(seen[0])
            theirs = risk.instrument.quantity(seen[1])
            from workers.reconcile import reconcile_live_position

            runner.host.db.submit(reconcile_live_position, runner.bot_id, list(reports))
            runner._event(
                "reconcile",
                "position_mismatch",
                f"{self.symbol}: the exchange's position is {theirs.normalize():f} contracts, the bot booked "
                f"{booked.normalize():f}; perpetual risk uses the exchange's from now on",
                {"booked": f"{booked:f}", "exchange": f"{theirs:f}"},
            )

    # --- reduce-only refusals ---------------------------------------------------------------
    def sent(self, command: PlaceOrder) -> None:
        """A place is about to go out: remember reduce-only ones, to explain a refusal."""
        if command.reduce_only:
            if len(self._reduce_only) > 64:
                self._reduce_only.pop(next(iter(self._reduce_only)))
            self._reduce_only[command.client_order_id] = command

    def explain(self, event):
        """An exchange refusal of a reduce-only order, said plainly (other events as they are)."""
        if type(event) is not OrderRejected:
            return event
        command = self._reduce_only.pop(event.client_order_id, None)
        if command is None or not ("ReduceOnly" in event.reason or "-2022" in event.reason):
            return event
        inst = self.runner.engine.instrument
        side = "sell" if command.side < 0 else "buy"
        theirs = sum((r.contracts for r in self.reports), Decimal(0))
        reason = (
            f"reduce_only: {side} {inst.quantity(command.qty).normalize():f} contracts refused by the exchange: it would "
            f"open or increase the position instead of reducing it (the exchange's position at the bot's last "
            f"read: {theirs.normalize():f} contracts); accepted: a reduce-only order against an open position, no "
            f"larger than it. The exchange said: {event.reason}"
        )
        return dataclasses.replace(event, reason=reason)


def _text(exc: BaseException) -> str:
    errors = getattr(exc, "errors", None)
    if isinstance(errors, dict):
        return "; ".join(f"{k}: {v}" for k, v in errors.items())
    return str(exc)


@dataclasses.dataclass
class ExchangeRead:
    """What a live perpetual's start reads from the exchange after applying its settings."""

    changed: list[str]  # the settings the exchange took ("leverage 5", ...)
    reports: list[PositionReport]
    table: object  # the market's leverage tiers (trading.margin.BracketTable)
    amounts: dict  # {asset: {"free", "total"}}
    wallet_ms: int  # when the balances were read (funding payments after it are new)

    def wallet(self, settle: str) -> Decimal | None:
        """The settle currency's wallet: ccxt's total of a swap account is the margin balance
        (Binance marginBalance = walletBalance + unrealized PnL), so this market's unrealized
        PnL is left out."""
        wallet = (self.amounts.get(settle) or {}).get("total")
        if wallet is not None:
            wallet -= sum((r.unrealized_pnl for r in self.reports), Decimal(0))
        return wallet


async def read_exchange(
    gateway, account: CcxtPerpAccount, symbol: str, settings: dict, position_mode=None
) -> ExchangeRead:
    """Apply the leverage, margin mode and position mode (all or nothing,
    :meth:`CcxtPerpAccount.configure`), then read the position, the leverage tiers and the
    balances; a live perpetual bot and a hedged bot's live perpetual leg start with this. ccxt's
    errors pass through (each caller says what they mean for it)."""
    changed = await account.configure(symbol, settings.get("leverage"), settings.get("margin_mode"), position_mode)
    await gateway.limiter.acquire(3)
    reports = await account.fetch_positions(symbol)
    tiers = await gateway.exchange.fetch_leverage_tiers([symbol])
    table = bracket_table_from_ccxt(symbol, tiers.get(symbol) or [], source=f"{gateway.exchange.id} leverage tiers")
    amounts = await gateway.fetch_balance_amounts()
    return ExchangeRead(changed, reports, table, amounts, int(time.time() * 1000))


def store_balances(account_id: int, amounts: dict) -> None:
    """Database thread: the live account's balances as read at a perpetual bot's start
    (``apps.exchanges.services.account_balances_store``; a refusal is logged there)."""
    from apps.exchanges.models import ExchangeAccount
    from apps.exchanges.services import account_balances_store

    account = ExchangeAccount.objects.filter(pk=account_id).first()
    if account is not None:
        account_balances_store(account=account, balances=amounts)
