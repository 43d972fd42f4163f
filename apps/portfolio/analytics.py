"""Market-making quality analytics of a bot over a period, from what was stored: fills,
orders (their lifetimes are the quotes), PnL snapshots and the market's top-of-book snapshots.
The computation is :mod:`trading.analytics`, the same as for backtests.

Also the "shadow backtest": the bot's strategy replayed over the stored market of the same
period (a ``stored`` backtest run) and its comparison with what the bot really did.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Q

from apps.bots.models import Bot
from apps.bots.selectors import bot_list
from apps.core.timeseries import dt_to_ns
from apps.exchanges.markets import market_to_instrument
from trading import analytics
from trading.events import Liquidity, OrderFilled
from trading.instruments import Instrument, Side

MAX_PERIOD = timedelta(days=31)
MAX_SAMPLES = 20_000
MARKOUT_TAIL = timedelta(seconds=61)
COMPARED = ("total", "spread_capture", "inventory_pnl", "fees")


def check_period(start: datetime | None, end: datetime | None) -> None:
    if start is None or end is None:
        raise ValidationError({"start" if start is None else "end": "required: an ISO 8601 time with a zone"})
    if start >= end:
        raise ValidationError({"start": f"{start.isoformat()} is not before end {end.isoformat()}"})
    if end - start > MAX_PERIOD:
        raise ValidationError({"end": f"the period is longer than the maximum {MAX_PERIOD.days} days"})


def _fill_event(inst: Instrument, f) -> OrderFilled:
    side = Side.BUY if f.side == "buy" else Side.SELL
    return OrderFilled(
        ts=dt_to_ns(f.ts),
        client_order_id=f.client_order_id,
        side=side,
        price=inst.ticks(f.price, side=side),
        qty=inst.lots(f.quantity, round_down=True),
        leaves_qty=0,
        fee=inst.cash_units(f.fee),
        liquidity=Liquidity.TAKER if f.liquidity == "taker" else Liquidity.MAKER,
        trade_id=f.venue_trade_id,
    )


def bot_analytics(*, user, bot_id: int, start: datetime, end: datetime) -> dict[str, Any]:
    """Quality analytics of a bot the user may see (else ``Bot.DoesNotExist``) over ``[start, end)``."""
    from apps.marketdata.models import TopOfBookSnapshot
    from apps.orders.models import Fill, Order
    from apps.portfolio.models import PnlSnapshot

    check_period(start, end)
    bot = bot_list(user=user).select_related("market").get(pk=bot_id)
    inst = market_to_instrument(bot.market)
    fills = [_fill_event(inst, f) for f in Fill.objects.filter(bot=bot, ts__gte=start, ts__lt=end).order_by("ts")]
    before = Fill.objects.filter(bot=bot, ts__lt=start).values_list("side", "quantity")
    initial = sum(inst.lots(q, round_down=True) * (1 if s == "buy" else -1) for s, q in before)
    tops = [
        analytics.Top(dt_to_ns(ts), inst.ticks(bid, side=Side.BUY), inst.ticks(ask, side=Side.SELL))
        for ts, bid, ask in TopOfBookSnapshot.objects.filter(
            market=bot.market, ts__gte=start - timedelta(minutes=5), ts__lt=end + MARKOUT_TAIL
        )
        .order_by("ts")
        .values_list("ts", "bid", "ask")
        if bid > 0 and ask > 0
    ]
    end_ns, start_ns = dt_to_ns(end), dt_to_ns(start)
    portfolio = analytics.replay_pnl(inst, fills, tops, end_ns=dt_to_ns(end + MARKOUT_TAIL))
    quotes = [
        analytics.QuoteInterval(
            Side.BUY if side == "buy" else Side.SELL,
            inst.ticks(price, side=Side.BUY if side == "buy" else Side.SELL),
            dt_to_ns(created),
            None if closed is None else dt_to_ns(closed),
        )
        for side, price, created, closed in Order.objects.filter(bot=bot, created__lt=end)
        .filter(Q(closed_at__isnull=True) | Q(closed_at__gt=start))
        .values_list("side", "price", "created", "closed_at")
    ]
    step = max(1_000_000_000, (end_ns - start_ns) // MAX_SAMPLES)
    in_period = [t for t in tops if t.ts < end_ns]
    sampler = analytics.sample_quoting(
        quotes, in_period, fills, start_ns=start_ns, end_ns=end_ns, step_ns=step, initial_position=initial
    )
    placed = Order.objects.filter(bot=bot, created__gte=start, created__lt=end).count()
    out = analytics.report(inst, portfolio, sampler, orders_placed=placed)
    snaps = PnlSnapshot.objects.filter(bot=bot, ts__gte=start, ts__lt=end).order_by("ts")
    first, last = snaps.first(), snaps.last()
    out.update(
        bot=bot.pk,
        start=start.isoformat(),
        end=end.isoformat(),
        market=f"{bot.market.venue} {bot.market.symbol}",
        equity_change=str(last.equity - first.equity) if first and last else None,
        samples_step_s=step / 1e9,
        top_of_book_samples=len(in_period),
    )
    return out


def flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested analytics as (dotted name, value) rows for CSV; lists get their index."""
    rows: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.extend(flatten(value, f"{name}."))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                rows.extend(flatten(item, f"{name}.{i}.") if isinstance(item, dict) else [(f"{name}.{i}", item)])
        else:
            rows.append((name, value))
    return rows


# --- shadow backtest ---------------------------------------------------------------------------
def shadow_backtest_create(
    *, user, bot_id: int, start: datetime, end: datetime, profile: int | None = None, profile_seed: int = 0
):
    """Queue a backtest of the bot's strategy, parameters and risk over the stored market data
    of ``[start, end)`` (the bot must be visible; the user must be allowed to run backtests),
    simulated with a simulator profile when one is named."""
    from apps.backtests.services import backtest_create

    check_period(start, end)
    bot: Bot = bot_list(user=user).select_related("market").get(pk=bot_id)
    return backtest_create(
        owner=user,
        name=f"Shadow of bot #{bot.pk} {bot.name}"[:128],
        strategy=bot.strategy,
        params=dict(bot.params or {}),
        risk=dict(bot.risk or {}),
        data_source="stored",
        data_params={"market": bot.market_id, "start": start.isoformat(), "end": end.isoformat()}
        | ({} if profile is None else {"profile": profile, "profile_seed": profile_seed}),
    )


def shadow_comparison(*, user, bot_id: int, run) -> dict[str, Any]:
    """Live (stored fills) vs simulated (the shadow run) over the run's period: PnL parts,
    fills, volume, markouts and quoting, with the drift ``live - simulated`` per money figure."""
    from django.utils.dateparse import parse_datetime

    if run.data_source != "stored" or run.data_params.get("market") is None:
        raise ValidationError({"run": f"run {run.pk} is not a backtest over stored market data"})
    bot = bot_list(user=user).get(pk=bot_id)
    if run.data_params["market"] != bot.market_id:
        raise ValidationError({"run": f"run {run.pk} replays another market than bot {bot.pk}'s"})
    start, end = parse_datetime(run.data_params["start"]), parse_datetime(run.data_params["end"])
    live = bot_analytics(user=user, bot_id=bot_id, start=start, end=end)
    simulated = (run.metrics or {}).get("quality")
    out: dict[str, Any] = {"bot": bot.pk, "run": run.pk, "status": run.status, "start": start, "end": end}
    out["live"] = live
    out["simulated"] = simulated
    if simulated:
        out["drift"] = {key: str(Decimal(live["pnl"][key]) - Decimal(simulated["pnl"][key])) for key in COMPARED} | {
            "fills": live["fills"] - simulated["fills"],
            "quote_uptime": live["quote_uptime"] - simulated["quote_uptime"],
        }
        hours = (end - start).total_seconds() / 3600
        out["calibration"] = {
            "profile": (run.metrics or {}).get("simulator_profile"),
            "live": _trust_figures(live, hours),
            "simulated": _trust_figures(simulated, hours),
        }
    return out


def _trust_figures(report: dict[str, Any], hours: float) -> dict[str, Any]:
    """Fill rate (fills per order placed), markouts (ticks per lot by horizon) and PnL per hour."""
    placed = report.get("orders_placed") or 0
    return {
        "fill_rate": report["fills"] / placed if placed else None,
        "fills_per_hour": report["fills"] / hours,
        "markouts_avg_ticks": {h: m["avg_ticks"] for h, m in (report.get("markouts") or {}).items()},
        "pnl_per_hour": str((Decimal(report["pnl"]["total"]) / Decimal(repr(hours))).quantize(Decimal("0.00000001"))),
    }
