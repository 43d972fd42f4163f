"""Running a backtest: data source -> events, the same engine and fill simulation as paper and
live trading, progress (percent + ETA) saved and pushed to ``backtest.<id>``, cancel checks,
and the result stored (metrics, equity curve, PnL decomposition, fills, quality analytics).

Data sources (``BacktestRun.data_source``):

- ``recording``: a shipped Binance recording (``connectors.binance_recording.RECORDINGS``);
- ``stored``: depth snapshots and trades the feeds stored for a market (time-series tables);
- ``synthetic_as``: the Avellaneda-Stoikov 2008 market, plus its Monte Carlo summary of the
  paper's inventory/symmetric strategies when ``monte_carlo_paths`` > 0;
- ``synthetic_multivenue``: the correlated multi-venue market; the bot trades the first venue;
- ``hedged_recordings``: the ``hedged_maker`` over two shipped recordings, maker and hedge venue
  (``apps.backtests.hedged``, ``trading.hedge_backtest``).

Fees and latency: the market's fee schedule when the data belongs to a stored market, the
observatory's measured taker fee and order-entry latency when there is enough data
(:func:`apps.core.observatory.venue_defaults`), else ``BACKTEST_DEFAULT_LATENCY_MS`` (10 ms).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings

from apps.backtests.models import BacktestRun, DataSource
from apps.backtests.services import (
    BacktestStateError,
    backtest_fail,
    backtest_progress_update,
    backtest_start,
    backtest_store_result,
)
from apps.core.observatory import venue_defaults
from apps.core.timeseries import dt_to_ns
from apps.exchanges.markets import market_to_instrument as market_instrument
from trading import analytics
from trading.engine import Engine
from trading.events import BookSnapshot, Event, OrderFilled, TopOfBook, TradeTick
from trading.fillsim import SimulatedExchange
from trading.instruments import Instrument, Side
from trading.latency import ConstantLatency
from trading.perp_ledger import perp_records
from trading.perp_risk import PerpRisk, PerpRiskLimits
from trading.risk import RiskLimits
from trading.strategies import build_strategy

logger = logging.getLogger(__name__)
SYNTHETIC_INSTRUMENT = Instrument.create(symbol="SYN/USD", tick_size="0.01", lot_size="0.001", venue="synthetic")
DEFAULT_QUOTE_BALANCE = "1000000"
PROGRESS_EVERY = 2_000
SAVE_EVERY_S = 0.5
_recording_sizes: dict[str, int] = {}


@dataclass
class Prepared:
    """What to replay: events (an iterable), how many when known, the instrument and venue."""

    instrument: Instrument
    events: Iterable[Event]
    total: int | None
    venue: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    perp: Any = None  # a trading.perp_ledger.PerpLedger for a perpetual market
    perp_limits: Any = None  # its trading.perp_risk.PerpRiskLimits (pre-trade risk in the engine)


def _recording(data: dict) -> Prepared:
    from connectors.binance_recording import RECORDINGS, iter_recording

    if str(data["recording"]).startswith("user:"):
        return _user_recording(data)
    rec = RECORDINGS[data["recording"]]
    market = _market(f"replay:{rec.name.rsplit('-', 1)[0]}", rec.instrument.symbol)
    instrument = rec.instrument
    if market is not None:
        instrument = replace(instrument, maker_fee_e8=_e8(market.maker_fee), taker_fee_e8=_e8(market.taker_fee))
    limit = data.get("max_events")
    events: Iterable[Event] = (e for e in iter_recording(rec.paths, instrument) if type(e) is not TopOfBook)
    if rec.name not in _recording_sizes:  # counted once per process, for progress and ETA
        _recording_sizes[rec.name] = sum(1 for e in iter_recording(rec.paths, instrument) if type(e) is not TopOfBook)
    total = _recording_sizes[rec.name]
    if limit:
        events = _take(events, limit)
        total = min(total, limit)
    prepared = Prepared(instrument, events, total, venue=market.venue if market else instrument.venue)
    if rec.contract.is_perpetual:
        prepared.perp = _perp_ledger(instrument, rec, data.get("perp") or {})
        prepared.perp_limits = PerpRiskLimits.from_dict((data.get("perp") or {}).get("limits") or {})
    return prepared


def _perp_ledger(instrument: Instrument, rec, settings_: dict):
    """The perpetual account a recording of a perp market trades against (validated settings;
    defaults: 10x, 10,000 of the settle currency isolated; funding: the given constant rate, else
    the stored series of the market (``apps.derivatives``), else 0.01 % every 8 h)."""
    from apps.derivatives.services import funding_schedule
    from trading.contracts import MarginMode, PositionMode
    from trading.perp_ledger import FundingSchedule, PerpLedger

    stored = (
        None
        if "funding_rate" in settings_
        else funding_schedule(venue=rec.instrument.venue, symbol=rec.instrument.symbol)
    )
    return PerpLedger(
        instrument,
        rec.contract,
        rec.tiers,
        wallet=Decimal(settings_.get("wallet", "10000")),
        leverage=settings_.get("leverage", 10),
        margin_mode=MarginMode(settings_.get("margin_mode", "isolated")),
        mode=PositionMode(settings_.get("position_mode", "one_way")),
        funding=stored or FundingSchedule.create(constant=settings_.get("funding_rate", "0.0001")),
        funding_source="stored series" if stored else "constant rate",
    )


def _user_recording(data: dict) -> Prepared:
    """An uploaded recording (validated for its owner when the run was created)."""
    from apps.research.models import UserRecording
    from apps.research.recordings import recording_paths
    from connectors.binance_recording import iter_recording

    rec = UserRecording.objects.select_related("market").get(pk=int(data["recording"].removeprefix("user:")))
    instrument = market_instrument(rec.market)
    paths = recording_paths(rec)
    events: Iterable[Event] = (e for e in iter_recording(paths, instrument) if type(e) is not TopOfBook)
    total = rec.counts.get("snapshots", 0) + rec.counts.get("deltas", 0) + rec.counts.get("trades", 0)
    if data.get("max_events"):
        events, total = _take(events, data["max_events"]), min(total, data["max_events"])
    extras = {"recording": rec.name, "data_unsynced_seconds": rec.unsynced_seconds, "data_bad_lines": rec.bad_lines}
    return Prepared(instrument, events, total, venue=rec.market.venue, extras=extras)


def _take(events: Iterable[Event], n: int) -> Iterator[Event]:
    for i, event in enumerate(events):
        if i >= n:
            return
        yield event


def _e8(rate) -> int:
    return int(rate * 100_000_000)


def _market(venue: str, symbol: str):
    from apps.exchanges.models import Market

    return Market.objects.filter(venue=venue, symbol=symbol).first()


def stored_events(market, start: datetime, end: datetime) -> tuple[Instrument, list[Event]]:
    """Stored depth snapshots and trades of ``market`` in ``[start, end)`` as trading events."""
    from apps.marketdata.models import DepthSnapshot, Trade

    inst = market_instrument(market)

    def levels(rows, side):
        out = []
        for p, q in rows:
            lots = inst.lots(q, round_down=True)
            if lots:
                out.append((inst.ticks(p, side=side), lots))
        return tuple(out)

    events: list[tuple[int, int, Event]] = []
    for row in DepthSnapshot.objects.filter(market=market, ts__gte=start, ts__lt=end).order_by("ts").iterator():
        ts = dt_to_ns(row.ts)
        events.append((ts, 0, BookSnapshot(ts=ts, bids=levels(row.bids, Side.BUY), asks=levels(row.asks, Side.SELL))))
    for row in Trade.objects.filter(market=market, ts__gte=start, ts__lt=end).order_by("ts").iterator():
        ts = dt_to_ns(row.ts)
        aggressor = Side.BUY if row.aggressor == "buy" else Side.SELL
        lots = inst.lots(row.qty, round_down=True)
        if lots:
            events.append(
                (
                    ts,
                    1,
                    TradeTick(
                        ts=ts,
                        price=inst.ticks(row.price, side=aggressor),
                        qty=lots,
                        aggressor=aggressor,
                        trade_id=row.trade_id,
                    ),
                )
            )
    events.sort(key=lambda item: (item[0], item[1]))
    return inst, [e for _, _, e in events]


def _stored(data: dict) -> Prepared:
    from django.utils.dateparse import parse_datetime

    from apps.exchanges.models import Market

    market = Market.objects.get(pk=data["market"])
    inst, events = stored_events(market, parse_datetime(data["start"]), parse_datetime(data["end"]))
    return Prepared(inst, events, len(events), venue=market.venue, extras={"market": f"{market.venue} {market.symbol}"})


def _synthetic_as(data: dict) -> Prepared:
    from trading.synthetic.avellaneda_stoikov import ASParams, event_stream, monte_carlo

    fields = ("s0", "horizon", "sigma", "dt", "arrival_a", "decay_k", "gamma", "q0")
    params = ASParams(**{k: data[k] for k in fields if k in data})
    seed = data.get("seed", 0)
    events = list(event_stream(SYNTHETIC_INSTRUMENT, params=params, seed=seed))
    extras: dict[str, Any] = {"as_params": asdict(params)}
    paths = data.get("monte_carlo_paths", 0)
    if paths:
        extras["monte_carlo"] = asdict(monte_carlo(paths, data.get("mc_strategy", "inventory"), seed, params))
    return Prepared(SYNTHETIC_INSTRUMENT, events, len(events), extras=extras)


def _synthetic_multivenue(data: dict) -> Prepared:
    from trading.synthetic.market import SyntheticMarket, VenueProfile

    n = data.get("venues", 2)
    correlation = data.get("correlation", 0.9)
    specs = [VenueProfile("v0")] + [
        VenueProfile(f"v{i}", lag_ns=100_000_000 * i, beta=correlation if correlation else 1.0, jump_rate=0.02)
        for i in range(1, n)
    ]
    market = SyntheticMarket(
        SYNTHETIC_INSTRUMENT,
        specs,
        seed=data.get("seed", 0),
        start_price=data.get("s0", 100.0),
        volatility_bps=data.get("volatility", 0.5),
    )
    # The bot trades v0; the market is a function of time, so only v0 is generated.
    events = [event for _venue, event in market.events(0, data.get("duration_s", 600) * 1_000_000_000, ["v0"])]
    return Prepared(SYNTHETIC_INSTRUMENT, events, len(events), extras={"venues": [s.name for s in specs]})


SOURCES: dict[str, Callable[[dict], Prepared]] = {
    DataSource.RECORDING: _recording,
    DataSource.STORED: _stored,
    DataSource.SYNTHETIC_AS: _synthetic_as,
    DataSource.SYNTHETIC_MULTIVENUE: _synthetic_multivenue,
}


def prepare(run: BacktestRun) -> Prepared:
    """The events and instrument of a run's data source."""
    return prepare_source(run.data_source, dict(run.data_params or {}))


def prepare_source(data_source: str, data_params: dict) -> Prepared:
    """The events and instrument of a (validated) data source and its parameters."""
    return SOURCES[data_source](data_params)


def _latency_ns(venue: str | None) -> int:
    if venue:
        measured = venue_defaults(venue)
        if measured.latency_ns is not None:
            return measured.latency_ns
    return settings.BACKTEST_DEFAULT_LATENCY_MS * 1_000_000


class _Counted:
    """Counts events as the backtest pulls them (for progress)."""

    def __init__(self, events: Iterable[Event]) -> None:
        self.events = events
        self.count = 0

    def __iter__(self) -> Iterator[Event]:
        for event in self.events:
            self.count += 1
            yield event


def _push(run_id: int, message: dict) -> None:
    try:
        from asgiref.sync import async_to_sync
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        if layer is not None:
            async_to_sync(layer.group_send)(f"backtest.{run_id}", {"type": "backtest.progress", **message})
    except Exception as exc:  # live push is best effort; the page also polls
        logger.debug("backtest %s push failed: %s", run_id, exc)


def _fill_row(inst: Instrument, f: OrderFilled) -> dict:
    return {
        "ts": datetime.fromtimestamp(f.ts / 1e9, tz=UTC),
        "side": "buy" if f.side is Side.BUY else "sell",
        "price": inst.price(f.price),
        "qty": inst.quantity(f.qty),
        "fee": inst.cash(f.fee),
        "liquidity": f.liquidity.value,
    }


def simulate(
    *,
    strategy: str,
    params: dict,
    risk: dict,
    prepared: Prepared,
    should_stop: Callable[[int], bool] | None = None,
    latency_ns: int | None = None,
    models: tuple[Any, Any] | None = None,
) -> tuple[Any, Engine, analytics.AnalyticsBacktest]:
    """Run the engine over ``prepared`` events; ``should_stop(events_seen)`` is polled.
    ``models`` = (latency model, queue model) of a simulator profile replace the constant
    latency and the default queue model."""
    inst = prepared.instrument
    if prepared.venue:
        measured = venue_defaults(prepared.venue)
        if measured.taker_fee_e8 is not None:  # the fee users really pay on that venue
            inst = replace(inst, taker_fee_e8=measured.taker_fee_e8)
    engine = Engine(
        build_strategy(strategy, params, inst),
        inst,
        bot_id="bt",
        risk=RiskLimits.from_dict(risk),
        initial_quote=inst.cash_units(DEFAULT_QUOTE_BALANCE),
        perp=None if prepared.perp is None else PerpRisk.from_ledger(prepared.perp, prepared.perp_limits),
    )
    if models is not None:
        exchange = SimulatedExchange(inst, latency=models[0], queue=models[1])
    else:
        latency = _latency_ns(prepared.venue) if latency_ns is None else latency_ns
        exchange = SimulatedExchange(inst, latency=ConstantLatency(latency, latency))
    counted = _Counted(prepared.events)
    bt = analytics.AnalyticsBacktest(
        engine,
        counted,
        exchange,
        progress_every=PROGRESS_EVERY,
        should_stop=(lambda: should_stop(counted.count)) if should_stop else None,
        perp=prepared.perp,
    )
    return bt.run(), engine, bt


def result_payload(result, engine: Engine, bt: analytics.AnalyticsBacktest, prepared: Prepared) -> dict:
    """Metrics, equity curve, decomposition and fills of a finished simulation."""
    inst = prepared.instrument
    quality = analytics.report(
        inst, engine.portfolio, bt.sampler, orders_placed=result.orders_placed, total_pnl=result.pnl.total
    )
    metrics = {
        "events": result.events,
        "duration_s": (result.last_ts - result.first_ts) / 1e9,
        "total_pnl": str(inst.cash(result.pnl.total)),
        "sharpe": result.sharpe,
        "max_drawdown": str(inst.cash(result.max_drawdown)),
        "max_drawdown_fraction": result.max_drawdown_fraction,
        "fills": result.fill_count,
        "filled_qty": str(inst.quantity(result.filled_qty)),
        "fill_ratio": result.fill_ratio,
        "orders_placed": result.orders_placed,
        "cancels_sent": result.cancels_sent,
        "rejects": result.rejects,
        "final_position": str(inst.quantity(result.final_position)),
        "quality": quality,
        **prepared.extras,
    }
    equity = [[ts // 1_000_000, str(inst.cash(e))] for ts, e in result.equity_curve]
    decomposition = quality["pnl"]
    if result.perp is not None:
        perp = metrics["perp"] = perp_records(result.perp, inst)
        perp["funding_source"] = prepared.perp.funding_source
        decomposition = {**decomposition, "funding": perp["funding"]}
        if perp["kind"] == "inverse":  # the engine's PnL is quote arithmetic; the coin's is the ledger's
            decomposition = {"currency": perp["settle"], "total": perp["net_pnl"]} | {
                k: perp[k] for k in ("realized", "unrealized", "fees", "funding")
            }
            metrics["total_pnl"], metrics["pnl_currency"] = perp["net_pnl"], perp["settle"]
    return {
        "metrics": metrics,
        "equity_curve": equity,
        "pnl_decomposition": decomposition,
        "fills": [_fill_row(inst, f) for f in result.fills],
        "cancelled": result.cancelled,
    }


def _profile_models(data: dict) -> tuple[tuple[Any, Any] | None, dict | None]:
    """The seeded latency and queue models of the run's simulator profile, and its summary."""
    from apps.research.models import SimulatorProfile
    from apps.research.profiles import profile_models, profile_summary

    if data.get("profile") is None:
        return None, None
    profile = SimulatorProfile.objects.filter(pk=data["profile"]).first()
    if profile is None:
        raise ValueError(f"profile: simulator profile {data['profile']} no longer exists")
    seed = data.get("profile_seed", 0)
    return profile_models(profile, seed), {**profile_summary(profile), "seed": seed}


def backtest_execute(*, run_id: int) -> BacktestRun | None:
    """Claim a queued run and execute it, saving and pushing progress; ``None`` if the run was
    not queued (claimed elsewhere, cancelled or gone). Errors mark the run failed."""
    if not backtest_start(run_id=run_id):
        return None
    run = BacktestRun.objects.get(pk=run_id)
    started = time.monotonic()
    state = {"saved": 0.0, "stop": False}
    try:
        if run.data_source == DataSource.HEDGED_RECORDINGS:
            return _execute_hedged(run)
        prepared = prepare(run)

        def should_stop(seen: int) -> bool:
            now = time.monotonic()
            if now - state["saved"] >= SAVE_EVERY_S:
                state["saved"] = now
                fraction = min(seen / prepared.total, 0.99) if prepared.total else 0.0
                elapsed = now - started
                eta = elapsed / fraction * (1 - fraction) if fraction > 0 else None
                state["stop"] = backtest_progress_update(run_id=run_id, progress=fraction * 100, eta_seconds=eta)
                _push(run_id, {"status": "running", "progress": int(fraction * 100), "eta_seconds": eta and round(eta)})
            return state["stop"]

        models, profile = _profile_models(run.data_params or {})
        result, engine, bt = simulate(
            strategy=run.strategy,
            params=run.params,
            risk=run.risk,
            prepared=prepared,
            should_stop=should_stop,
            models=models,
        )
        payload = result_payload(result, engine, bt, prepared)
        if profile is not None:
            payload["metrics"]["simulator_profile"] = profile
        stored = backtest_store_result(run_id=run_id, **payload)
    except BacktestStateError:
        return BacktestRun.objects.get(pk=run_id)
    except Exception as exc:
        logger.exception("backtest %s failed", run_id)
        backtest_fail(run_id=run_id, error=f"{type(exc).__name__}: {exc}")
        _push(run_id, {"status": "failed", "progress": 0, "eta_seconds": None, "error": str(exc)})
        return BacktestRun.objects.get(pk=run_id)
    _push(run_id, {"status": stored.status, "progress": stored.progress, "eta_seconds": 0})
    return stored


def _execute_hedged(run: BacktestRun) -> BacktestRun:
    """A hedged maker over two recordings (``apps.backtests.hedged``); progress by maker-venue time."""
    from apps.backtests import hedged

    data = dict(run.data_params or {})
    total = 2 * data["max_events"] if data.get("max_events") else None
    state = {"saved": 0.0, "stop": False}

    def should_stop(seen: int) -> bool:
        now = time.monotonic()
        if now - state["saved"] >= SAVE_EVERY_S:
            state["saved"] = now
            fraction = min(seen / total, 0.99) if total else 0.0
            state["stop"] = backtest_progress_update(run_id=run.pk, progress=fraction * 100, eta_seconds=None)
            _push(run.pk, {"status": "running", "progress": int(fraction * 100), "eta_seconds": None})
        return state["stop"]

    result, legs = hedged.run(data, should_stop)
    stored = backtest_store_result(run_id=run.pk, **hedged.payload(result, legs, data))
    _push(run.pk, {"status": stored.status, "progress": stored.progress, "eta_seconds": 0})
    return stored
