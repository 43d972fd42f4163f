"""Simulator profiles: the fill simulation calibrated from a bot's own orders.

``profile_fit_from_bot`` reads the bot's orders over a period: place->ack is ``acked_at -
sent_at`` of every acknowledged order (``sent_at``: when the bot sent the place; rows written
without it use ``created``, stamped before the place was sent), cancel->ack is ``closed_at -
cancel_requested_at`` of every cancelled order with a recorded cancel request — for a bot's own
cancels, when it sent the request and when the venue's answer came back (``workers.bot_records``).
``live["place_stamped"]`` says how many place samples had the bot's own send stamp.
Each is stored as its quantile table (p0 .. p100, ns) and replayed by
:class:`trading.latency.EmpiricalLatency`, which draws round trips from it by seeded inverse CDF,
so a backtest with the same profile and seed is identical. When the period holds fewer than
``MIN_CANCEL_SAMPLES`` measured cancels, the cancel table is the place table and
``cancel_source`` says so. The queue model is the trader's choice (risk-averse, or probabilistic with a power) or, with
``queue_model="fit"``, fitted: the bot's strategy, parameters and risk are replayed over the stored
market data of the period once per candidate (``QUEUE_CANDIDATES``) with the fitted latency, and
the candidate whose simulated fill rate (fills per order placed) is nearest the bot's live one is
kept; every candidate's figure is stored in ``live["queue_fit"]``. The replay runs in the request,
so a fit is refused above ``MAX_FIT_EVENTS`` market events (name a shorter period).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import F, Sum
from django.db.models.functions import Coalesce

from apps.bots.selectors import bot_list
from apps.research.models import SimulatorProfile
from trading.latency import EmpiricalLatency, quantile_table
from trading.queue import ProbQueueModel, RiskAverseQueueModel

MIN_PLACE_SAMPLES = 20
MIN_CANCEL_SAMPLES = 20
QUEUE_MODELS = ("risk_averse", "probabilistic", "fit")
QUEUE_CANDIDATES = (("risk_averse", None), ("probabilistic", 1.0), ("probabilistic", 2.0), ("probabilistic", 3.0))
MAX_FIT_EVENTS = 200_000


def _durations_ns(pairs) -> list[int]:
    out = []
    for sent, answered in pairs:
        delta = answered - sent
        out.append(delta.days * 86_400_000_000_000 + delta.seconds * 1_000_000_000 + delta.microseconds * 1000)
    return out


def profile_list(*, user):
    qs = SimulatorProfile.objects.select_related("bot")
    return qs if getattr(user, "is_operator", False) else qs.filter(owner=user)


def profile_get(*, user, profile_id: Any) -> SimulatorProfile | None:
    if isinstance(profile_id, bool) or not isinstance(profile_id, int):
        return None
    return profile_list(user=user).filter(pk=profile_id).first()


def profile_fit_from_bot(
    *,
    user,
    bot_id: int,
    name: str,
    start: datetime,
    end: datetime,
    queue_model: str = "risk_averse",
    queue_power: float | None = None,
) -> SimulatorProfile:
    """Fit and store a profile from the orders of a bot the user may see (else ``Bot.DoesNotExist``)."""
    from apps.orders.models import Order, OrderStatus
    from apps.portfolio.analytics import check_period

    check_period(start, end)
    if not isinstance(name, str) or not name.strip() or len(name) > 128:
        raise ValidationError({"name": f"{name!r} is not accepted; give a name of 1 to 128 characters"})
    if queue_model not in QUEUE_MODELS:
        raise ValidationError({"queue_model": f"{queue_model!r} is not accepted; accepted: {', '.join(QUEUE_MODELS)}"})
    if queue_model == "probabilistic":
        if queue_power is None:
            queue_power = 3.0
        try:
            ProbQueueModel(queue_power)
        except ValueError as exc:
            raise ValidationError({"queue_power": str(exc)}) from None
    elif queue_power is not None:
        raise ValidationError({"queue_power": "applies to queue_model 'probabilistic' only"})
    if queue_model == "fit" and len(QUEUE_CANDIDATES) < 2:
        raise ValidationError({"queue_model": "no candidates to fit"})
    if SimulatorProfile.objects.filter(owner=user, name=name).exists():
        raise ValidationError({"name": f"{name!r} is taken; choose another profile name"})
    bot = bot_list(user=user).get(pk=bot_id)
    orders = Order.objects.filter(bot=bot, created__gte=start, created__lt=end)
    acked = orders.annotate(sent=Coalesce("sent_at", "created")).filter(acked_at__isnull=False, acked_at__gte=F("sent"))
    place = _durations_ns(acked.values_list("sent", "acked_at"))
    if len(place) < MIN_PLACE_SAMPLES:
        raise ValidationError(
            {
                "start": f"bot {bot.pk} has {len(place)} acknowledged orders from {start.isoformat()} to "
                f"{end.isoformat()}; a profile needs at least {MIN_PLACE_SAMPLES}"
            }
        )
    cancel = _durations_ns(
        orders.filter(
            status=OrderStatus.CANCELLED,
            cancel_requested_at__isnull=False,
            closed_at__isnull=False,
            closed_at__gte=F("cancel_requested_at"),
        ).values_list("cancel_requested_at", "closed_at")
    )
    place_table = list(quantile_table(place))
    measured_cancels = len(cancel) >= MIN_CANCEL_SAMPLES
    totals = orders.aggregate(placed=Sum("quantity"), filled=Sum("filled_quantity"))
    placed_qty, filled_qty = totals["placed"] or Decimal(0), totals["filled"] or Decimal(0)
    hours = (end - start).total_seconds() / 3600
    filled_orders = orders.filter(filled_quantity__gt=0).count()
    live = {
        "orders": orders.count(),
        "place_stamped": acked.filter(sent_at__isnull=False).count(),
        "filled_orders": filled_orders,
        "fill_ratio": float(filled_qty / placed_qty) if placed_qty else None,
        "fill_rate": filled_orders / orders.count() if orders.exists() else None,
        "filled_orders_per_hour": filled_orders / hours,
    }
    cancel_table = list(quantile_table(cancel)) if measured_cancels else place_table
    if queue_model == "fit":
        queue_model, queue_power, live["queue_fit"] = _fit_queue(bot, start, end, place_table, cancel_table, live)
    return SimulatorProfile.objects.create(
        owner=user,
        name=name,
        bot=bot,
        start=start,
        end=end,
        place_ack_ns=place_table,
        cancel_ack_ns=cancel_table,
        place_samples=len(place),
        cancel_samples=len(cancel),
        cancel_source="measured" if measured_cancels else "place_ack",
        queue_model=queue_model,
        queue_power=queue_power,
        live=live,
    )


def _fit_queue(bot, start, end, place_table, cancel_table, live) -> tuple[str, float | None, list[dict]]:
    """Replay the period per queue-model candidate; keep the one nearest the live fill rate
    (orders with a fill per order placed, as ``live["fill_rate"]``)."""
    from apps.backtests import runner

    if live["fill_rate"] is None:
        raise ValidationError({"queue_model": "the bot placed no orders in the period: nothing to fit"})
    prepared = runner.prepare_source(
        "stored", {"market": bot.market_id, "start": start.isoformat(), "end": end.isoformat()}
    )
    if not prepared.total:
        raise ValidationError({"queue_model": "no stored market data in the period to replay"})
    if prepared.total > MAX_FIT_EVENTS:
        raise ValidationError(
            {"end": f"the period holds {prepared.total} market events; a queue fit replays at most {MAX_FIT_EVENTS}"}
        )
    tried = []
    for name, power in QUEUE_CANDIDATES:
        queue = ProbQueueModel(power) if name == "probabilistic" else RiskAverseQueueModel()
        latency = EmpiricalLatency(place_table, cancel_table, seed=0)
        result, _, _ = runner.simulate(
            strategy=bot.strategy,
            params=dict(bot.params or {}),
            risk=dict(bot.risk or {}),
            prepared=prepared,
            models=(latency, queue),
        )
        filled = len({f.client_order_id for f in result.fills})
        rate = filled / result.orders_placed if result.orders_placed else 0.0
        tried.append({"queue_model": name, "queue_power": power, "orders": result.orders_placed, "fill_rate": rate})
    best = min(tried, key=lambda t: abs(t["fill_rate"] - live["fill_rate"]))
    return best["queue_model"], best["queue_power"], tried


def profile_models(profile: SimulatorProfile, seed: int = 0):
    """The latency and queue models of a profile, seeded: ``(EmpiricalLatency, QueueModel)``."""
    latency = EmpiricalLatency(profile.place_ack_ns, profile.cancel_ack_ns, seed=seed)
    queue = ProbQueueModel(profile.queue_power) if profile.queue_model == "probabilistic" else RiskAverseQueueModel()
    return latency, queue


def profile_summary(profile: SimulatorProfile) -> dict[str, Any]:
    """What a report shows of the profile it used."""
    p, c = profile.place_ack_ns, profile.cancel_ack_ns
    return {
        "id": profile.pk,
        "name": profile.name,
        "bot": profile.bot_id,
        "period": [profile.start.isoformat(), profile.end.isoformat()],
        "place_ack_ms": {"p50": p[50] / 1e6, "p90": p[90] / 1e6, "p99": p[99] / 1e6},
        "cancel_ack_ms": {"p50": c[50] / 1e6, "p90": c[90] / 1e6, "p99": c[99] / 1e6},
        "place_samples": profile.place_samples,
        "cancel_samples": profile.cancel_samples,
        "cancel_source": profile.cancel_source,
        "queue_model": profile.queue_model,
        "queue_power": profile.queue_power,
    }
