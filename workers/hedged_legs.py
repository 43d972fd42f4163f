"""The two legs of a hosted hedged bot (:mod:`workers.hedged_loop`): what each leg is and how its
venue is built.

A leg is a market on an account: spot, or a linear perpetual served here (its
:class:`~trading.contracts.ContractSpec` from :func:`apps.derivatives.hosting.perp_market`, so the
hedger converts the maker's base quantity into contracts and carries the residue that lot
rounding leaves as unhedged exposure, counted against ``max_unhedged``). A perpetual leg also
gets a :class:`~trading.perp_risk.PerpRisk` built by :func:`workers.perp_hosting.perp_risk`
exactly as a single-venue perpetual bot's (wallet = the paper account's settle balance, funding
from the leg's ``funding_rate`` or the market's stored series); the hedged PnL
(:mod:`workers.hedged_pnl`) books the leg's fills and funding in it.

Each leg's venue is a :class:`~workers.paper_venue.PaperVenue` (paper account) or a
:class:`~workers.live_venue.LiveVenue` on the account's ccxt gateway (live account): both are
the venue port (:class:`trading.ports.BotVenue`), so the loop drives them alike. A live leg's
order events come from its gateway's pump into the leg's inbox, in order with its trades.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import replace
from decimal import Decimal
from fractions import Fraction

from connectors.errors import RetryBudgetExhausted
from trading.config import ConfigError
from trading.contracts import to_decimal
from trading.events import TradeTick
from trading.hedger import HEDGE, MAKER
from trading.hedging import HedgeConfig, HedgeLegs, Leg, validate_hedge_config
from trading.perp_risk import PerpRisk
from trading.runner import Runner
from workers import hedged_live_perp, perp_hosting, records
from workers.bot_control import StopLoop
from workers.paper_venue import PaperVenue

logger = logging.getLogger(__name__)


class HedgeLeg:
    """One venue of the bot: its setup, contract, venue, runner, inbox (a subscriber of its feed
    and, live, of its gateway's order events) and, on a perpetual, its :class:`PerpRisk`."""

    def __init__(self, name: str, setup: records.BotSetup, wake: asyncio.Event) -> None:
        self.name = name
        self.setup = setup
        self.wake = wake
        self.venue = None  # PaperVenue or LiveVenue
        self.runner: Runner | None = None
        self.perp: PerpRisk | None = None
        self.perp_reader = None  # a live perpetual leg's reader (workers.hedged_live_perp)
        self.paper_perp = None  # a paper perpetual leg's liquidation watch (workers.hedged_liquidation)
        self.inbox: deque = deque()
        self.pending_book: tuple | None = None
        self.conflated = 0
        self.filled: dict[str, int] = {}
        self.acked: set[str] = set()
        self.recorded_trade_ids: set[str] = set()

    @property
    def live(self) -> bool:
        return self.setup.account_kind != "paper"

    def perp_status(self) -> dict:
        """The perpetual figures of the leg's status (live: with the exchange's position read back)."""
        perp = self.perp
        figures = perp.snapshot()
        pos, mark = perp.position, perp.mark
        used = pos.margin_used(mark) if mark is not None else Fraction(0)
        figures["margin_free"] = f"{to_decimal(perp.margin_balance() - used, 8):f}"  # as a perp bot's card
        figures["margin_mode"] = pos.margin_mode.value
        figures["funding_source"] = getattr(perp, "funding_source", "")
        figures["wallet"] = f"{to_decimal(perp.wallet, 8):f}"
        return figures if self.perp_reader is None else {**figures, **self.perp_reader.figures()}

    def push_market(self, item: tuple) -> None:  # the host's fan-out (as BotRunner.push_market)
        if type(item[0]) is TradeTick:
            self.inbox.append(item)
        else:
            if self.pending_book is not None:
                self.conflated += 1
            self.pending_book = item
            if self.paper_perp is not None:  # its liquidation watch sees every mark
                self.paper_perp.marks.note_book(self.paper_perp.book)

    def push_order_event(self, event) -> None:
        """A live gateway's order event (None only wakes the loop), queued with the trades."""
        if event is not None:
            self.inbox.append((event, 0))
        self.wake.set()


def contract_of(setup: records.BotSetup):
    """The leg's contract: a perpetual's spec when the market is one served here, else spot."""
    from apps.derivatives.hosting import perp_market

    rec = perp_market(setup.venue, setup.symbol)
    return None if rec is None else rec.contract


def load_perp(setup: records.BotSetup, leg: str, settings: dict | None) -> None:
    """Database thread: a perpetual leg's settings (``maker_perp`` / ``hedge_perp``) as the
    setup's ``risk["perp"]`` (the maker leg keeping the bot's other risk limits; what
    :func:`workers.perp_hosting.perp_risk` reads), on a paper account the leg's share of its settle
    balance (:mod:`apps.derivatives.paper_wallets`), the market's
    stored funding series, and the funding this leg booked under earlier owners (the sum of its
    ``funding`` bot events: the PnL snapshot's column sums both legs)."""
    from apps.bots.models import BotEvent
    from apps.derivatives.hosting import PERP_KEY

    setup.contract = contract_of(setup)
    if setup.contract is None:
        return
    # The maker leg keeps the bot's own risk limits beside them (its ``max_position_base`` bounds
    # the maker leg: :func:`configure`); the hedge leg has only its perpetual settings.
    kept = {k: v for k, v in (setup.risk or {}).items() if k != PERP_KEY} if leg == "maker" else {}
    setup.risk = {**kept, PERP_KEY: dict(settings or {})}
    setup.perp_funding = perp_hosting.stored_series(setup.venue, setup.symbol)
    booked = Decimal(0)
    rows = BotEvent.objects.filter(bot_id=setup.bot_id, kind="funding", data__leg=leg).values_list("data", flat=True)
    for data in rows:
        booked += Decimal(str(data.get("amount", "0")))
    setup.perp_funding_booked = booked
    balance = (setup.paper_balances or {}).get(setup.contract.settle) if setup.account_kind == "paper" else None
    if balance is not None and Decimal(str(balance)) > 0:  # the leg's share of its account's settle balance
        from apps.derivatives.paper_wallets import paper_wallet

        setup.perp_wallet, setup.perp_wallet_errors = paper_wallet(
            account_id=setup.account_id, bot_id=setup.bot_id, settle=setup.contract.settle,
            balance=Decimal(str(balance)), leg=leg, settings=settings,
        )  # fmt: skip


def configure(
    maker: records.BotSetup, hedge: records.BotSetup, settings: dict
) -> tuple[HedgeLegs, HedgeConfig | None, dict]:
    """The legs and the hedger's configuration (``settings`` with ``requote_ticks``; the maker
    leg's ``max_position`` defaults to the bot's ``risk.max_position_base``), or the errors by field. The checks the portal makes (:func:`apps.bots.hedged.validate`) are made
    again here: markets or accounts may have changed since."""
    legs = HedgeLegs(_leg(maker), _leg(hedge))
    settings = dict(settings)
    requote = settings.pop("requote_ticks")
    cap = (maker.risk or {}).get("max_position_base")
    from_risk = settings.get("max_position") is None and cap is not None
    if from_risk:  # the bot's risk limit on its position bounds the maker leg (whole lots, rounded down)
        try:
            inst = maker.instrument
            settings["max_position"] = str(inst.quantity(inst.lots(cap, field="max_position_base", round_down=True)))
        except ValueError:
            settings["max_position"] = cap  # refused below, by name
    config, errors = validate_hedge_config(legs, settings)
    errors = dict(errors)
    if from_risk and "max_position" in errors:
        errors["risk.max_position_base"] = errors.pop("max_position")
    if config is not None:
        config = replace(config, requote_ticks=requote)
    return legs, (None if errors else config), errors


def _leg(setup: records.BotSetup) -> Leg:
    contract = getattr(setup, "contract", None)
    return Leg(setup.instrument) if contract is None else Leg(setup.instrument, contract)


def perp_risk_of(setup: records.BotSetup) -> PerpRisk | None:
    """The leg's :class:`PerpRisk` (None on spot); bad settings raise ``ConfigError``."""
    if getattr(setup, "contract", None) is None:
        return None
    if setup.perp is None:  # the leg's contract with its tiers, as perp_risk reads it
        from apps.derivatives.hosting import PerpMarket, tiers_for

        setup.perp = PerpMarket(setup.contract, *tiers_for(setup.venue, setup.symbol, setup.contract))
    return perp_hosting.perp_risk(setup)


async def open_venue(loop, leg: HedgeLeg) -> None:
    """Build and (live) connect the leg's venue, fenced by the bot's lease, and its runner."""
    from workers.hedged_loop import LegEngine

    r = loop.r
    host = r.host
    setup = leg.setup
    if not leg.live:
        leg.venue = PaperVenue(
            host.redis,
            account_id=setup.account_id,
            instrument=setup.instrument,
            bot_id=r.bot_id,
            prefix=setup.prefix,
            lease_key=r.lease.key,
            lease_value=r.lease.value,
            token=r.lease.token,
            book=host.book(setup.venue, setup.symbol),
            defer_fills=True,
            balances={c: Decimal(str(a)) for c, a in setup.paper_balances.items()},
            clock=r.clock,
            **r.fill_model,
        )
    else:
        leg.venue = await _live_venue(loop, leg)
    leg.runner = Runner(
        LegEngine(loop, leg.name), leg.venue.matching, clock=r.clock, defer=True, hold=True, record=r._record
    )


async def _live_venue(loop, leg: HedgeLeg):
    """A :class:`LiveVenue` on the leg's account (as :meth:`workers.bot_start.BotStart._start_live`)."""
    from workers import live_venue

    r = loop.r
    host = r.host
    setup = leg.setup
    try:
        exchange_id, credentials = await host.db_setup.call(live_venue.account_credentials, setup.account_id)
        gateway = live_venue.build_gateway(
            exchange_id, credentials, account_id=setup.account_id, redis_url=host.redis_url
        )
    except Exception as exc:  # undecryptable key, unknown exchange id, refused test address
        await loop.refuse(f"{leg.name} leg: live account cannot be used: {type(exc).__name__}: {exc}")
    venue = live_venue.LiveVenue(
        host.redis,
        gateway,
        instrument=setup.instrument,
        bot_id=r.bot_id,
        prefix=setup.prefix,
        lease_key=r.lease.key,
        lease_value=r.lease.value,
        token=r.lease.token,
        deliver=leg.push_order_event,
        secrets=tuple(credentials),
    )
    leg.venue = venue  # closed by the loop whatever happens next
    try:
        await venue.start()
    except RetryBudgetExhausted as exc:  # the exchange is unreachable for now: try again later
        host.retry_later(r.bot_id, 10.0)
        raise StopLoop(f"{leg.name} leg: exchange unreachable, retrying: {exc}") from exc
    except ValueError as exc:  # the exchange's market differs from the leg's
        await loop.refuse(f"{leg.name} leg: {exc}")
    return venue


async def open_legs(loop, maker: records.BotSetup, hedge: records.BotSetup) -> None:
    """Both legs' perpetual risk (refused with the reason when its settings are bad) and venues; a
    live perpetual leg is configured on its exchange (:mod:`workers.hedged_live_perp`)."""
    for name, setup in ((MAKER, maker), (HEDGE, hedge)):
        leg = loop.legs[name] = HedgeLeg(name, setup, loop.r.wake)
        try:
            leg.perp = perp_risk_of(setup)
        except ConfigError as exc:
            await loop.refuse(f"{name} leg: {exc.errors}")
    for leg in loop.legs.values():
        await open_venue(loop, leg)
        if hedged_live_perp.is_live_perp(leg):
            await hedged_live_perp.start(loop, leg)


def after_take_over(legs) -> None:
    """Each live perpetual leg's wallet less the history take-over booked, then its reads start
    (:meth:`workers.hedged_live_perp.LegPerpReader.after_take_over`)."""
    for leg in legs:
        if leg.perp_reader is not None:
            leg.perp_reader.after_take_over()


async def close_venues(legs) -> None:
    """Close each live leg's venue (its gateway, pump and dead man's switch)."""
    for leg in legs:
        if leg.perp_reader is not None:
            await leg.perp_reader.stop()
        venue = leg.venue
        if venue is not None and leg.live:
            try:
                await venue.close()
            except Exception as exc:
                logger.info("hedged %s leg: closing the venue: %s", leg.name, exc)
