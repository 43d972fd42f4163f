"""Hedged backtests: a hedged maker over two shipped recordings (data source ``hedged_recordings``),
or over two simulated venues' markets (``"sim:<name>"``, :mod:`apps.backtests.hedged_sim`: e.g.
perp-to-perp on ``sim:gamma`` / ``sim:delta`` over ``sim_start`` + ``sim_seconds``).

``data_params``::

    {"maker": "binance-spot-btcusdt", "hedge": "binance-usdm-btcusdt",
     "maker_fees": {"maker": "0.001", "taker": "0.001"}, "hedge_fees": {"maker": "0.0002", "taker": "0.0005"},
     "maker_latency_ms": 10, "hedge_latency_ms": 5, "max_events": 200000,
     "hedge_perp": {"leverage": 10, "wallet": "10000", "margin_mode": "isolated", "funding_rate": "0.0001"},
     "bot": {"order_amount": "0.002", "min_profitability": "0.002", ...}}

The strategy is ``hedged_maker`` (its settings are ``data_params.bot``, see
:func:`trading.hedging.validate_hedge_config`); fees default to Binance's standard schedule of
each venue (spot 0.1 %/0.1 %, USD-M 0.02 %/0.05 %), latency to 10 ms. ``max_events`` is per
recording. Every field is validated by name with the value and what is accepted. A perpetual
leg's ``limits`` (:class:`trading.perp_limits.PerpRiskLimits`) are its pre-trade check's
(:mod:`trading.hedge_margin`); the orders it refused are in the results per leg.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from fractions import Fraction
from itertools import islice
from typing import Any

from apps.backtests import hedged_sim
from trading.contracts import decimal_text
from trading.events import OrderFilled, TopOfBook
from trading.fillsim import SimulatedExchange
from trading.hedge_attribution import attribution_records
from trading.hedge_backtest import HedgedBacktest, HedgedResult
from trading.hedger import HedgedMaker
from trading.hedging import HedgeLegs, Leg, validate_hedge_config
from trading.instruments import Instrument, InstrumentError, fee_rate_e8
from trading.latency import ConstantLatency
from trading.perp_ledger import perp_records

STRATEGY = "hedged_maker"
FIELDS = (
    "maker",
    "hedge",
    "maker_fees",
    "hedge_fees",
    "maker_latency_ms",
    "hedge_latency_ms",
    "max_events",
    "bot",
    "maker_perp",
    "hedge_perp",
    *hedged_sim.FIELDS,
)
DEFAULT_FEES = {"spot": {"maker": "0.001", "taker": "0.001"}, "perp": {"maker": "0.0002", "taker": "0.0005"}}
MS = 1_000_000


def _source(value: object):
    """The recording or sim venue a leg value names (``hedged_sim.SimSource``), or the refusal."""
    from connectors.binance_recording import RECORDINGS

    if hedged_sim.is_sim(value):
        return hedged_sim.resolve(value)
    if value not in RECORDINGS:
        return (
            f"{value!r} is not a shipped recording or a sim venue; accepted: {', '.join(RECORDINGS)}, or "
            "'sim:<name>' (a sim venue's market)"
        )
    return RECORDINGS[value]


def _legs(data: dict, errors: dict) -> HedgeLegs | None:
    legs: dict[str, Leg] = {}
    for name in ("maker", "hedge"):
        rec = _source(data.get(name))
        if isinstance(rec, str):
            errors[name] = rec
            continue
        defaults = DEFAULT_FEES["perp" if rec.contract.is_perpetual else "spot"]
        fees = data.get(f"{name}_fees", defaults)
        if not isinstance(fees, dict) or set(fees) - {"maker", "taker"}:
            errors[f"{name}_fees"] = f"{fees!r} is not accepted; give {{'maker': rate, 'taker': rate}}"
            continue
        try:
            inst = replace(
                rec.instrument,
                maker_fee_e8=fee_rate_e8("maker", fees.get("maker", defaults["maker"])),
                taker_fee_e8=fee_rate_e8("taker", fees.get("taker", defaults["taker"])),
            )
        except InstrumentError as exc:
            errors[f"{name}_fees"] = f"{fees!r} is not accepted: {exc}"
            continue
        legs[name] = Leg(inst, rec.contract)
    if len(legs) < 2:
        return None
    if data["maker"] == data["hedge"]:
        errors["hedge"] = f"{data['hedge']!r} is the maker venue too; accepted: another recording of the same asset"
        return None
    window = hedged_sim.window_errors(data, (hedged_sim.is_sim(data["maker"]), hedged_sim.is_sim(data["hedge"])))
    if window:
        errors.update(window)
        return None
    return HedgeLegs(legs["maker"], legs["hedge"])


def validate(strategy: str, params: object, data: dict) -> dict[str, Any]:
    """Errors of a hedged run, per section (``strategy``, ``params``, ``data_params``)."""
    errors: dict[str, Any] = {}
    if strategy != STRATEGY:
        errors["strategy"] = f"{strategy!r} does not run on hedged_recordings; accepted: {STRATEGY}"
    if params not in ({}, None):
        errors["params"] = f"{STRATEGY} takes its settings in data_params.bot; give params {{}}"
    data_errors: dict[str, Any] = {}
    for key in data:
        if key not in FIELDS:
            data_errors[key] = f"unknown parameter; accepted: {', '.join(FIELDS)}"
    for key in ("maker_latency_ms", "hedge_latency_ms", "max_events"):
        value = data.get(key, 10 if key != "max_events" else 1)
        high = 10_000 if key != "max_events" else 50_000_000
        low = 0 if key != "max_events" else 1
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            data_errors[key] = f"{value!r} is not accepted; give a whole number from {low} to {high}"
    legs = _legs(data, data_errors)
    if legs is not None:
        from apps.backtests.validation import validate_perp

        for name, leg in (("maker", legs.maker), ("hedge", legs.hedge)):
            key = f"{name}_perp"
            if key in data and not leg.contract.is_perpetual:
                data_errors[key] = f"{data[name]} is a spot market; perpetual settings apply to perpetual legs only"
            elif key in data:
                perp_errors = validate_perp(data[key], leg.contract, ("one_way",))  # one-way legs only
                if perp_errors:
                    data_errors[key] = perp_errors
    bot = data.get("bot", {})
    if not isinstance(bot, dict):
        data_errors["bot"] = "must be an object of hedged-maker settings"
    elif legs is not None:
        _, bot_errors = validate_hedge_config(legs, bot)
        for key in ("hedge", "maker"):  # venue-level problems belong to the venue fields
            if key in bot_errors:
                data_errors[key] = bot_errors.pop(key)
        if bot_errors:
            data_errors["bot"] = bot_errors
    if data_errors:
        errors["data_params"] = data_errors
    return errors


def run(data: dict, should_stop: Callable[[int], bool] | None = None) -> tuple[HedgedResult, HedgeLegs]:
    """Run a validated hedged backtest."""
    from connectors.binance_recording import iter_recording

    legs = _legs(data, {})
    config, _ = validate_hedge_config(legs, data.get("bot", {}))
    limit = data.get("max_events")
    sources = {name: _source(data[name]) for name in ("maker", "hedge")}

    def events(name: str, inst: Instrument) -> Iterator:
        source = sources[name]
        if isinstance(source, hedged_sim.SimSource):
            stream = hedged_sim.events(source, data)
        else:
            stream = (e for e in iter_recording(source.paths, inst) if type(e) is not TopOfBook)
        return islice(stream, limit) if limit else stream

    maker_ms, hedge_ms = data.get("maker_latency_ms", 10), data.get("hedge_latency_ms", 10)
    maker = SimulatedExchange(legs.maker.instrument, latency=ConstantLatency(maker_ms * MS, maker_ms * MS))
    hedge = SimulatedExchange(
        legs.hedge.instrument, latency=ConstantLatency(hedge_ms * MS, hedge_ms * MS), venue_prefix="simh"
    )
    bot = HedgedMaker(legs, config, maker.book, hedge.book, prefix="bth")
    from apps.backtests.runner import _perp_ledger
    from trading.perp_limits import PerpRiskLimits

    perp = {
        name: _perp_ledger(leg.instrument, sources[name], data.get(f"{name}_perp") or {})
        for name, leg in (("maker", legs.maker), ("hedge", legs.hedge))
        if leg.contract.is_perpetual
    }
    backtest = HedgedBacktest(
        bot,
        events("maker", legs.maker.instrument),
        events("hedge", legs.hedge.instrument),
        maker,
        hedge,
        should_stop=should_stop,
        progress_every=2_000,
        perp=perp,
        perp_limits={
            name: PerpRiskLimits.from_dict((data.get(f"{name}_perp") or {}).get("limits") or {}) for name in perp
        },
    )
    return backtest.run(), legs


def _dec(value: Fraction) -> str:
    return decimal_text(value, 8)


def _leg_pnl(
    inst: Instrument, leg: Leg, fills: tuple[OrderFilled, ...], mark: int | None, closes=()
) -> dict[str, Fraction]:
    """Cash flow of one leg's fills plus its position marked at ``mark`` (ticks), and its fees.
    ``closes``: the leg's liquidations (``LegLiquidation``), each a close of its lots at the exact
    bankruptcy price."""
    tick, per_lot = Fraction(inst.tick_size), leg.base_per_lot
    cash = sum((-int(f.side) * f.price * tick * f.qty * per_lot for f in fills), Fraction(0))
    position = sum((int(f.side) * f.qty for f in fills), 0)
    for close in closes:
        cash += close.lots * per_lot * close.liquidation.price
        position -= close.lots
    fees = sum((Fraction(inst.cash(f.fee)) for f in fills), Fraction(0))
    marked = position * per_lot * mark * tick if mark is not None else Fraction(0)
    return {"gross": cash + marked, "fees": fees, "net": cash + marked - fees, "position": position * per_lot}


def _mid(book) -> int | None:
    bid, ask = book.best_bid(), book.best_ask()
    return (bid + ask) // 2 if bid is not None and ask is not None else None


def payload(result: HedgedResult, legs: HedgeLegs, data: dict) -> dict[str, Any]:
    """Metrics (maker and hedge PnL, fees of each leg, exposure, attribution), equity and fills."""
    from apps.backtests.runner import _fill_row

    bot = result.bot
    maker_inst, hedge_inst = legs.maker.instrument, legs.hedge.instrument
    closes = {name: [q for q in result.liquidations if q.venue == name] for name in ("maker", "hedge")}
    maker = _leg_pnl(maker_inst, legs.maker, result.maker_fills, _mid(bot.maker_book), closes["maker"])
    hedge = _leg_pnl(hedge_inst, legs.hedge, result.hedge_fills, _mid(bot.hedge_book), closes["hedge"])
    exposure = result.exposure
    funding = sum((report["funding"] for report in result.perp.values()), Fraction(0))
    total = maker["net"] + hedge["net"] + funding
    attribution = attribution_records(bot.ledger.records, limit=500)
    hedged = {
        "maker": f"{data['maker']} ({maker_inst.symbol})",
        "hedge": f"{data['hedge']} ({hedge_inst.symbol})",
        "maker_pnl": _dec(maker["net"]),
        "hedge_pnl": _dec(hedge["net"]),
        "funding": _dec(funding),
        "maker_fees": _dec(maker["fees"]),
        "hedge_fees": _dec(hedge["fees"]),
        "maker_fills": len(result.maker_fills),
        "hedge_fills": len(result.hedge_fills),
        "exposure_max": _dec(exposure.max_abs),
        "exposure_time_weighted": _dec(exposure.time_weighted()),
        "exposure_final": _dec(bot.exposure()),
        "exposure_limit": _dec(bot.config.max_unhedged_base),
        "longest_unhedged_ms": exposure.longest_above_ns / 1e6,
        "halted": bot.halted or "",
        "liquidations": [
            {
                "venue": q.venue,
                "ts_ms": q.liquidation.ts // 1_000_000,
                "leg": q.liquidation.leg,
                "mark": _dec(q.liquidation.mark),
                "liquidation_price": _dec(q.liquidation.liquidation_price),
                "bankruptcy_price": _dec(q.liquidation.price),
                "lots": q.lots,
                "pnl": _dec(q.liquidation.pnl),
                "exposure_left": _dec(q.exposure),
            }
            for q in result.liquidations
        ],
        "margin_refused": {name: sum(result.refused.get(name, {}).values()) for name in result.perp},
        "margin_refused_codes": result.refused,
        "margin_refused_first": result.refused_first,
        "notes": [
            {"ts_ms": n.ts // 1_000_000, "code": n.code, "message": n.message, "exposure": n.exposure}
            for n in bot.notes[:200]
        ],
        "attribution": attribution["distribution"],
        "attribution_fills": attribution["fills"],
        "exposure_series": [[ts // 1_000_000, _dec(e)] for ts, e in exposure.series[:2_000]],
        "hedge_fill_rows": [
            {k: str(v) if k != "ts" else v.isoformat() for k, v in _fill_row(hedge_inst, f).items()}
            for f in result.hedge_fills[:500]
        ],
    }
    for name, report in result.perp.items():
        hedged[f"{name}_perp"] = perp_records(report, legs.maker.instrument if name == "maker" else hedge_inst)
    metrics = {
        "events": result.events,
        "duration_s": (result.last_ts - result.first_ts) / 1e9,
        "total_pnl": _dec(total),
        "sharpe": None,
        "max_drawdown": "0",
        "fills": len(result.maker_fills) + len(result.hedge_fills),
        "orders_placed": result.maker_stats.orders_placed + result.hedge_stats.orders_placed,
        "rejects": result.maker_stats.rejects + result.hedge_stats.rejects,
        "final_position": _dec(bot.exposure()),
        "hedged": hedged,
    }
    decomposition = {
        "total": _dec(total),
        "maker_leg": _dec(maker["gross"]),
        "hedge_leg": _dec(hedge["gross"]),
        "fees": _dec(maker["fees"] + hedge["fees"]),
        "funding": _dec(funding),
    }
    return {
        "metrics": metrics,
        "equity_curve": [],
        "pnl_decomposition": decomposition,
        "fills": [_fill_row(maker_inst, f) for f in result.maker_fills],
        "cancelled": result.cancelled,
    }
