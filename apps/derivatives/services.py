"""Funding series: import a CSV the user provides (or ccxt's ``fetchFundingRateHistory`` rows),
validated line by line, stored whole or not at all; read back as a backtest's funding schedule.

CSV format: a header ``time,rate`` (``time`` ISO 8601 with a zone or epoch milliseconds; ``rate``
a plain decimal per funding interval, -0.03 to 0.03), one funding time per line, in time order.
Refused (with the line, the value and what is accepted): other columns, a bad time or rate, time
going backwards or repeated, a gap longer than ``max_gap_hours`` (default 8 h, Binance's
interval: a missing funding time would silently drop a payment).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils.dateparse import parse_datetime

from apps.derivatives.models import FundingRate

RATE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]{0,10})?|\.[0-9]{1,10})", re.ASCII)
MAX_RATE = Decimal("0.03")
MAX_ROWS = 200_000


class FundingImportError(ValueError):
    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


@dataclass(frozen=True)
class FundingPoint:
    ts: datetime
    rate: Decimal


def _time(text: str) -> datetime | None:
    text = text.strip()
    if text.isascii() and text.isdigit() and len(text) <= 15:
        return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
    parsed = parse_datetime(text) if text.isascii() else None
    return parsed if parsed is not None and parsed.tzinfo is not None else None


def parse_funding_csv(content: bytes | str, *, max_gap_hours: int = 8) -> list[FundingPoint]:
    """Every line checked; the first problem raises :class:`FundingImportError` naming it."""
    text = content.decode("utf-8", errors="strict") if isinstance(content, bytes) else content
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader, [])]
    if header != ["time", "rate"]:
        raise FundingImportError({"columns": f"{header!r}; accepted: a header line 'time,rate'"})
    points: list[FundingPoint] = []
    gap = timedelta(hours=max_gap_hours)
    for line_no, row in enumerate(reader, 2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != 2:
            raise FundingImportError({f"line {line_no}": f"{row!r} has {len(row)} columns; accepted: time,rate"})
        ts, raw = _time(row[0]), row[1].strip()
        if ts is None:
            raise FundingImportError(
                {f"line {line_no}": f"time {row[0]!r}; accepted: ISO 8601 with a zone or epoch milliseconds"}
            )
        if not RATE.fullmatch(raw) or abs(Decimal(raw)) > MAX_RATE:
            raise FundingImportError(
                {f"line {line_no}": f"rate {raw!r}; accepted: a plain decimal from -0.03 to 0.03 (10 decimals at most)"}
            )
        if points and ts <= points[-1].ts:
            raise FundingImportError(
                {f"line {line_no}": f"time {row[0]!r} is not after the previous line's; give times in order, once each"}
            )
        if points and ts - points[-1].ts > gap:
            raise FundingImportError(
                {
                    f"line {line_no}": f"gap of {ts - points[-1].ts} after {points[-1].ts:%Y-%m-%d %H:%M}; at most {max_gap_hours} h between funding times"
                }
            )
        points.append(FundingPoint(ts, Decimal(raw)))
        if len(points) > MAX_ROWS:
            raise FundingImportError({"rows": f"more than {MAX_ROWS} funding times; split the file"})
    if not points:
        raise FundingImportError({"rows": "no funding time in the file"})
    return points


@transaction.atomic
def funding_store(*, venue: str, symbol: str, points: list[FundingPoint], source: str = "csv") -> int:
    """Store (or replace) the series' points in one transaction; returns how many."""
    FundingRate.objects.filter(venue=venue, symbol=symbol, ts__in=[p.ts for p in points]).delete()
    FundingRate.objects.bulk_create(
        [FundingRate(venue=venue, symbol=symbol, ts=p.ts, rate=p.rate, source=source) for p in points]
    )
    return len(points)


def funding_from_ccxt(history: list[dict], *, max_gap_hours: int = 8) -> list[FundingPoint]:
    """ccxt ``fetchFundingRateHistory`` entries (``timestamp`` ms, ``fundingRate``) as points."""

    def rate(value: object) -> str:
        return f"{Decimal(repr(value) if isinstance(value, float) else str(value)):f}"

    rows = "\n".join(f"{int(h['timestamp'])},{rate(h['fundingRate'])}" for h in history if h.get("timestamp"))
    return parse_funding_csv("time,rate\n" + rows, max_gap_hours=max_gap_hours)


def funding_schedule(*, venue: str, symbol: str, start: datetime | None = None, end: datetime | None = None):
    """The stored series as a :class:`trading.perp_ledger.FundingSchedule` (None when empty)."""
    from trading.perp_ledger import FundingSchedule

    qs = FundingRate.objects.filter(venue=venue, symbol=symbol)
    if start is not None:
        qs = qs.filter(ts__gte=start)
    if end is not None:
        qs = qs.filter(ts__lte=end)
    points = [(int(r.ts.timestamp() * 1_000_000) * 1000, r.rate) for r in qs.order_by("ts")]
    return FundingSchedule.create(series=points) if points else None
