"""Writes of the arbitrage tracker: recording detected opportunities (edges computed here,
exactly, in Decimal), their paper-execution outcome, notifications, and users' settings."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction

from apps.arbitrage.models import ArbitrageSettings, Opportunity
from trading.amounts import AmountError, plain_decimal

BPS = Decimal(10_000)
EDGE_PLACES = Decimal("0.0001")
MAX_LIST_ITEMS = 100


class ArbitrageInputError(ValueError):
    """Invalid input; ``errors`` maps each field to a message."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


@dataclass(frozen=True)
class DetectedOpportunity:
    """What a detector found: buy ``size`` at ``buy_price`` (average over the walked book) on
    ``buy_venue``, sell at ``sell_price`` on ``sell_venue``. ``fees`` (taker fees of both
    legs), ``slippage`` (cost of walking both books vs the top) and ``discount`` (staleness and
    latency allowance) are in quote currency."""

    ts: datetime
    symbol: str
    buy_venue: str
    sell_venue: str
    buy_price: Decimal
    sell_price: Decimal
    size: Decimal
    fees: Decimal = Decimal(0)
    slippage: Decimal = Decimal(0)
    discount: Decimal = Decimal(0)
    staleness_ms: int = 0
    latency_ms: int = 0


def _edges(d: DetectedOpportunity) -> dict[str, Decimal]:
    notional = d.buy_price * d.size
    gross_profit = (d.sell_price - d.buy_price) * d.size
    net_profit = gross_profit - d.fees - d.slippage - d.discount
    return {
        "gross_edge_bps": (gross_profit / notional * BPS).quantize(EDGE_PLACES),
        "net_edge_bps": (net_profit / notional * BPS).quantize(EDGE_PLACES),
        "net_profit": net_profit,
    }


def _check(d: DetectedOpportunity) -> dict[str, str]:
    errors = {}
    for name in ("buy_price", "sell_price", "size"):
        value = getattr(d, name)
        if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
            errors[name] = f"{value!r} is not accepted; give a Decimal > 0"
    for name in ("fees", "slippage", "discount"):
        value = getattr(d, name)
        if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
            errors[name] = f"{value!r} is not accepted; give a Decimal >= 0"
    if d.buy_venue == d.sell_venue:
        errors["sell_venue"] = f"{d.sell_venue!r} is the buy venue too; an opportunity spans two venues"
    if d.ts.tzinfo is None:
        errors["ts"] = f"{d.ts!r} has no time zone"
    return errors


@transaction.atomic
def opportunity_record_batch(*, detected: Iterable[DetectedOpportunity]) -> list[Opportunity]:
    """Store opportunities with gross/net edge in bps and net profit computed from the inputs:
    ``net_profit = (sell - buy) * size - fees - slippage - discount``,
    ``net_edge_bps = net_profit / (buy * size) * 10,000``; the stored ``slippage`` includes the
    staleness/latency ``discount`` (every cost besides fees in one column). Raises ArbitrageInputError (fields
    prefixed with the item's index) and stores nothing when any item is invalid."""
    rows, errors = [], {}
    for index, d in enumerate(detected):
        problems = _check(d)
        if problems:
            errors.update({f"{index}.{k}": v for k, v in problems.items()})
            continue
        rows.append(
            Opportunity(
                ts=d.ts,
                symbol=d.symbol,
                buy_venue=d.buy_venue,
                sell_venue=d.sell_venue,
                buy_price=d.buy_price,
                sell_price=d.sell_price,
                size=d.size,
                fees=d.fees,
                slippage=d.slippage + d.discount,
                staleness_ms=d.staleness_ms,
                latency_ms=d.latency_ms,
                **_edges(d),
            )
        )
    if errors:
        raise ArbitrageInputError(errors)
    return Opportunity.objects.bulk_create(rows)


def opportunity_record_execution(
    *, opportunity: Opportunity, realized_profit: Decimal, realized_size: Decimal | None = None
) -> Opportunity:
    """Record the outcome of executing both legs (paper or live): realized profit in quote and
    the realized edge in bps over the executed notional."""
    size = opportunity.size if realized_size is None else realized_size
    notional = opportunity.buy_price * size
    edge = (realized_profit / notional * BPS).quantize(EDGE_PLACES) if notional else Decimal(0)
    Opportunity.objects.filter(pk=opportunity.pk, ts=opportunity.ts).update(
        executed=True, realized_profit=realized_profit, realized_edge_bps=edge
    )
    opportunity.executed, opportunity.realized_profit, opportunity.realized_edge_bps = True, realized_profit, edge
    return opportunity


def opportunity_notify(*, opportunity: Opportunity) -> int:
    """Notify every user whose settings cover this opportunity (symbol, both venues) and whose
    threshold it meets; deduplicated per symbol, venue pair and minute. Returns deliveries queued."""
    from apps.notifications.models import EventKind
    from apps.notifications.services import notify

    queued = 0
    candidates = ArbitrageSettings.objects.select_related("owner").filter(
        notify_threshold_bps__lte=opportunity.net_edge_bps, min_profit__lte=opportunity.net_profit
    )
    for settings in candidates:
        if settings.symbols and opportunity.symbol not in settings.symbols:
            continue
        if settings.venues and not {opportunity.buy_venue, opportunity.sell_venue} <= set(settings.venues):
            continue
        minute = opportunity.ts.strftime("%Y%m%d%H%M")
        result = notify(
            user=settings.owner,
            kind=EventKind.ARBITRAGE,
            key=f"arb:{opportunity.symbol}:{opportunity.buy_venue}:{opportunity.sell_venue}:{minute}",
            subject=f"Arbitrage {opportunity.symbol}: {opportunity.net_edge_bps} bps",
            body=(
                f"Buy {opportunity.size} on {opportunity.buy_venue} at {opportunity.buy_price}, sell on "
                f"{opportunity.sell_venue} at {opportunity.sell_price}: net {opportunity.net_profit} "
                f"({opportunity.net_edge_bps} bps after fees and slippage)."
            ),
            data={"opportunity_id": opportunity.pk, "net_edge_bps": opportunity.net_edge_bps},
            value=opportunity.net_edge_bps,
        )
        queued += len(result["queued"])
    return queued


# --- settings ----------------------------------------------------------------------------------
def _decimal(value: Any, name: str, errors: dict, *, low: Decimal, high: Decimal) -> Decimal | None:
    try:
        number = plain_decimal(value)
        if not low <= number <= high:
            raise AmountError(f"{value!r} is out of range")
        return number
    except AmountError:
        errors[name] = f"{value!r} is not accepted; give a number from {low} to {high}"
        return None


def _names(value: Any, name: str, errors: dict) -> list[str] | None:
    if (
        not isinstance(value, list)
        or len(value) > MAX_LIST_ITEMS
        or not all(isinstance(v, str) and 0 < len(v) <= 64 for v in value)
    ):
        errors[name] = f"{value!r} is not accepted; give a list of up to {MAX_LIST_ITEMS} names (empty: all)"
        return None
    return sorted(set(value))


@transaction.atomic
def arbitrage_settings_update(
    *,
    user,
    min_profit: Any = None,
    notify_threshold_bps: Any = None,
    paper_execute: bool | None = None,
    symbols: list[str] | None = None,
    venues: list[str] | None = None,
) -> ArbitrageSettings:
    """Create or change the user's tracker settings; omitted arguments keep their values."""
    errors: dict[str, str] = {}
    settings, _ = ArbitrageSettings.objects.select_for_update().get_or_create(owner=user)
    if min_profit is not None:
        settings.min_profit = _decimal(min_profit, "min_profit", errors, low=Decimal(0), high=Decimal(10**12))
    if notify_threshold_bps is not None:
        settings.notify_threshold_bps = _decimal(
            notify_threshold_bps, "notify_threshold_bps", errors, low=Decimal(0), high=BPS
        )
    if paper_execute is not None:
        if not isinstance(paper_execute, bool):
            errors["paper_execute"] = f"{paper_execute!r} is not accepted; give true or false"
        settings.paper_execute = paper_execute
    if symbols is not None:
        settings.symbols = _names(symbols, "symbols", errors)
    if venues is not None:
        settings.venues = _names(venues, "venues", errors)
    if errors:
        raise ArbitrageInputError(errors)
    settings.save()
    return settings
