"""A hosted bot on a perpetual market: its :class:`~trading.perp_risk.PerpRisk`, its funding and
what it records.

A market is a perpetual here when its market row says so (``exchanges.Market.kind`` linear or
inverse, with contract size, settle currency and maximum leverage), read with the bot's setup
(``setup.perp``: :func:`apps.derivatives.hosting.perp_market`, contract and maintenance-margin
tiers). The bot's settings sit in its risk configuration under ``"perp"``::

    {"perp": {"leverage": 10, "margin_mode": "isolated", "position_mode": "one_way",
              "funding_rate": "0.0001",
              "limits": {"max_position_contracts": "0.5", "min_liquidation_distance": "0.05"}}}

(defaults shown, except ``funding_rate`` and ``limits``, which are optional; each refused by name
as in a backtest, :func:`apps.backtests.validation.validate_perp`). ``position_mode`` ``hedge``
keeps a long and a short leg (:mod:`trading.hedge_legs`: which leg each order opens or closes,
margin, funding and liquidation per leg); the paper venue keeps both
(:mod:`workers.paper_perp`). The wallet is the bot's share of the paper account's balance of the
settle currency (:mod:`apps.derivatives.paper_wallets`: the whole balance for the account's only
perpetual bot, else its ``risk.perp.wallet`` allocation, the allocations together within the
balance; fixed at start by :func:`load`, so that no two bots' margin checks count the same
collateral). The engine gets a ``PerpRisk`` built from a
:class:`~trading.perp_ledger.PerpLedger` of that account, exactly as a perp backtest builds it,
so the pre-trade checks (contracts, notional, leverage bracket, margin) and the
liquidation-distance pause are the backtest's.

Funding: the bot's constant ``funding_rate`` (every 8 h at 00:00/08:00/16:00 UTC) when given;
else the market's stored series (``apps.derivatives.FundingRate`` rows of the bot's venue and
symbol, the newest ``SERIES_ROWS``), re-read every ``FUNDING_REFRESH_S`` seconds; else 0.01 % every 8 h.
``PerpRisk`` books each payment on the position at its funding time; the loop's snapshot step
records each as a bot event (``funding`` / ``funding_paid`` or ``funding_received``) and writes
the funding booked so far in the PnL snapshot's ``funding`` column, beside realized, unrealized
and fees in the settle currency.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from apps.derivatives.hosting import live_perp, split_risk, validate
from apps.portfolio.services import perp_snapshots_record
from trading.config import ConfigError
from trading.contracts import MarginMode, PositionMode, frac, to_decimal
from trading.perp_ledger import FundingSchedule, PerpLedger
from trading.perp_risk import PerpRisk, PerpRiskLimits

logger = logging.getLogger(__name__)

DEFAULT_FUNDING_RATE = "0.0001"
FUNDING_REFRESH_S = 60.0
SERIES_ROWS = 1000  # a year of 8-hourly funding times


def load(setup) -> None:
    """Database thread: what a perpetual bot's engine needs beyond :func:`workers.records.bot_setup`
    (the stored funding series and the funding booked before this start) onto ``setup``."""
    if getattr(setup, "perp", None) is None:
        return
    setup.perp_funding = stored_series(setup.venue, setup.symbol)
    from apps.portfolio.models import PnlSnapshot

    last = (
        PnlSnapshot.objects.filter(bot_id=setup.bot_id, funding__isnull=False).order_by("-ts").values("funding").first()
    )
    setup.perp_funding_booked = None if last is None else last["funding"]
    if setup.account_kind == "paper":  # its share of the account's settle balance
        from apps.derivatives.paper_wallets import paper_wallet

        settle = setup.perp.contract.settle
        balance = setup.paper_balances.get(settle)
        if balance is not None and Decimal(str(balance)) > 0:
            setup.perp_wallet, setup.perp_wallet_errors = paper_wallet(
                account_id=setup.account_id, bot_id=setup.bot_id, settle=settle,
                balance=Decimal(str(balance)), risk=setup.risk,
            )  # fmt: skip


def stored_series(venue: str, symbol: str) -> list[tuple[int, Decimal]]:
    """The newest ``SERIES_ROWS`` stored funding times of the market, ``(ts ns, rate)``, in order."""
    from apps.derivatives.models import FundingRate

    rows = FundingRate.objects.filter(venue=venue, symbol=symbol).order_by("-ts")[:SERIES_ROWS]
    return sorted((int(r.ts.timestamp() * 1_000_000) * 1000, r.rate) for r in rows)


def perp_risk(setup) -> PerpRisk | None:
    """The bot's perpetual risk (None on a spot market, and on a live account, whose perpetual risk
    :mod:`workers.perp_live` builds from the exchange at start); bad settings raise ``ConfigError``."""
    rec = getattr(setup, "perp", None)
    if rec is None or (setup.account_kind != "paper" and live_perp(setup.venue, setup.symbol)):
        return None
    _spot, settings = split_risk(setup.risk)
    settings = settings or {}
    errors = validate(setup.risk, setup.venue, setup.symbol, perp=rec, paper=setup.account_kind == "paper")
    spec = rec.contract
    balance = setup.paper_balances.get(spec.settle) if setup.account_kind == "paper" else None
    if setup.account_kind != "paper":
        errors["account"] = "perpetual bots are hosted on paper accounts only for now"
    elif balance is None or Decimal(str(balance)) <= 0:
        errors[f"paper_balances.{spec.settle}"] = (
            f"{balance!r}; a perpetual settles in {spec.settle}: give the paper account a {spec.settle} balance above 0"
        )
    errors.update(getattr(setup, "perp_wallet_errors", {}))
    if errors:
        raise ConfigError(errors)
    wallet = getattr(setup, "perp_wallet", None)  # the bot's share (load); else the whole balance
    schedule, source = funding_schedule(settings, getattr(setup, "perp_funding", None))
    ledger = PerpLedger(
        setup.instrument,
        spec,
        rec.tiers,
        wallet=Decimal(str(balance)) if wallet is None else wallet,
        leverage=int(settings.get("leverage", 10)),
        margin_mode=MarginMode(settings.get("margin_mode", "isolated")),
        mode=PositionMode(settings.get("position_mode", "one_way")),
        funding=schedule,
        funding_source=source,
    )
    risk = PerpRisk.from_ledger(ledger, PerpRiskLimits.from_dict(settings.get("limits") or {}))
    risk.funding_source = source
    booked = getattr(setup, "perp_funding_booked", None)
    if booked is not None:  # funding booked under earlier owners (the last PnL snapshot's)
        risk.position.funding = frac(booked)
    return risk


def funding_schedule(settings: dict, stored: list | None) -> tuple[FundingSchedule, str]:
    if "funding_rate" in settings:
        return FundingSchedule.create(constant=settings["funding_rate"]), "constant rate (bot configuration)"
    if stored:
        return FundingSchedule.create(series=stored), "stored series"
    return FundingSchedule.create(constant=DEFAULT_FUNDING_RATE), "constant rate (default)"


class PerpHosting:
    """What the loop of a perpetual bot does each snapshot step (every second): funding booked
    since the last step becomes bot events, the stored series is re-read now and then, the PnL
    snapshot carries the settle-currency figures and funding, the live status the perp figures."""

    def __init__(self, runner) -> None:
        self.runner = runner
        self.peak: Fraction | None = None
        self.next_refresh = time.monotonic() + FUNDING_REFRESH_S
        self.refreshing = False

    def step(self, ts: int) -> dict[str, Any]:
        """Record what happened since the last step; return the status's perp figures."""
        runner = self.runner
        perp: PerpRisk = runner.engine.perp
        setup = runner.setup
        paper = runner.paper_perp
        if paper is not None:  # the paper venue's position: liquidation, stored in Redis
            paper.step(ts)
        log, perp.funding_log = perp.funding_log, []
        for when, rate, mark, amount, lots in log:
            paid = amount < 0
            money = f"{to_decimal(abs(amount), perp.places):f} {perp.spec.settle}"
            runner._event(
                "funding",
                "funding_paid" if paid else "funding_received",
                f"funding at {_iso(when)}: rate {to_decimal(rate, 8).normalize():f}, mark "
                f"{to_decimal(mark, 8).normalize():f}: {'paid' if paid else 'received'} {money} on "
                f"{perp._contracts(lots)}",
                {
                    "funding_ts": when,
                    "rate": f"{to_decimal(rate, 10):f}",
                    "mark": f"{to_decimal(mark, 8):f}",
                    "amount": f"{to_decimal(amount, 18):f}",
                    "settle": perp.spec.settle,
                    "position_contracts": f"{to_decimal(perp.position.contracts(lots), 8).normalize():f}",
                },
            )
        figures = perp.snapshot()
        pos = perp.position
        mark = perp.mark
        equity = perp.margin_balance()
        self.peak = equity if self.peak is None or equity > self.peak else self.peak
        used = pos.margin_used(mark) if mark is not None else Fraction(0)
        figures["margin_free"] = f"{to_decimal(equity - used, 8):f}"
        figures["margin_mode"] = pos.margin_mode.value
        figures["funding_source"] = getattr(perp, "funding_source", "")
        figures["wallet"] = f"{to_decimal(perp.wallet, 8):f}"
        figures["liquidated"] = paper.liquidated if paper is not None else None
        unrealized = pos.unrealized(mark) if mark is not None and pos.is_open else Fraction(0)
        runner.host.db.submit(
            perp_snapshots_record,
            [(ts, setup.bot_id, pos.contracts(pos.net_lots), equity - unrealized, mark, pos.realized, unrealized,
              pos.fees, equity, self.peak, self.peak - equity, pos.funding)],
            owner=setup.bot_id,
        )  # fmt: skip
        if (
            not self.refreshing
            and perp.schedule is not None  # a live bot's funding is the exchange's (workers.perp_live)
            and time.monotonic() >= self.next_refresh
            and "funding_rate" not in (split_risk(setup.risk)[1] or {})
        ):
            self.next_refresh = time.monotonic() + FUNDING_REFRESH_S
            self.refreshing = True
            runner.host.loop.create_task(self._refresh())
        return figures

    async def _refresh(self) -> None:
        """Re-read the stored funding series; a new one replaces the schedule from its next time."""
        runner = self.runner
        try:
            setup = runner.setup
            series = await runner.host.db_setup.call(stored_series, setup.venue, setup.symbol)
            perp = runner.engine.perp
            schedule, source = funding_schedule({}, series)
            if schedule != perp.schedule:
                perp.schedule = schedule
                perp.funding_source = source
                now = runner.clock()
                if perp.next_funding_ts is None or perp.next_funding_ts > now:
                    perp.next_funding_ts = None  # looked up again at the next event
        except Exception as exc:  # the database is away: the schedule in use stays
            logger.warning("bot %s: funding series not re-read: %s", runner.bot_id, exc)
        finally:
            self.refreshing = False


def _iso(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def hosting(runner) -> PerpHosting:
    """The runner's :class:`PerpHosting` (made on first use)."""
    found = runner.__dict__.get("_perp_hosting")
    if found is None:
        found = runner.__dict__["_perp_hosting"] = PerpHosting(runner)
    return found


def both(engine):
    """A fill replayed at take-over into the engine's portfolio and its perpetual position."""

    def rebuild(fill) -> None:
        engine.portfolio.on_fill(fill)
        engine.perp.on_fill(fill)

    return rebuild
