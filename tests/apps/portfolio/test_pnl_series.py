"""PnL snapshots: the batched insert the bots use; bucketed series (last values, equity high/low, max
drawdown) checked against a plain-Python computation; the API and its errors."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

import pytest

from apps.portfolio.models import PnlSnapshot
from apps.portfolio.selectors import pnl_series
from apps.portfolio.services import balances_replace, pnl_snapshots_record
from tests.apps.bots.factories import T0, api, make_bot, minutes, pnl_rows

pytestmark = pytest.mark.django_db


def _snapshots(bot, seconds: int, step: int = 7):
    rows = []
    peak = Decimal(0)
    for i in range(0, seconds, step):
        equity = Decimal(1000) + Decimal((i * 37) % 101 - 50) / 10
        peak = max(peak, equity)
        rows.append(
            {
                "ts": T0 + timedelta(seconds=i),
                "bot_id": bot.pk,
                "position": Decimal(i % 13) / 1000,
                "cash": Decimal(1000) - i,
                "mid": Decimal(65000) + i,
                "realized": Decimal(i) / 100,
                "unrealized": Decimal(-i) / 200,
                "fees": Decimal(i) / 10000,
                "equity": equity,
                "peak_equity": peak,
                "drawdown": peak - equity,
            }
        )
    return rows


def test_series_by_the_minute_matches_a_plain_python_bucketing(trader):
    bot = make_bot(trader)
    rows = _snapshots(bot, 600)
    pnl_snapshots_record(pnl_rows(bot, rows))
    assert len(rows) == PnlSnapshot.objects.count()
    series = pnl_series(user=trader, bot_id=bot.pk, interval="1m", start=T0, end=T0 + timedelta(minutes=10))
    groups = defaultdict(list)
    for row in rows:
        groups[row["ts"].replace(second=0)].append(row)
    assert [p["bucket"] for p in series] == sorted(groups)
    for point in series:
        group = groups[point["bucket"]]
        last = group[-1]
        assert point["equity"] == last["equity"] and point["position"] == last["position"]
        assert point["mid"] == last["mid"] and point["fees"] == last["fees"]
        assert point["equity_high"] == max(r["equity"] for r in group)
        assert point["equity_low"] == min(r["equity"] for r in group)
        assert point["drawdown"] == max(r["drawdown"] for r in group)


def test_pnl_api_buckets_by_hour_and_names_bad_parameters(trader, other_trader):
    bot = make_bot(trader)
    pnl_snapshots_record(pnl_rows(bot, _snapshots(bot, 3 * 3600, step=60)))
    client = api(trader)
    query = {"interval": "1h", "start": T0.isoformat(), "end": (T0 + timedelta(hours=3)).isoformat()}
    body = client.get(f"/api/v1/bots/{bot.pk}/pnl/", query).json()
    assert body["interval"] == "1h" and len(body["points"]) == 3
    assert Decimal(body["points"][0]["cash"]) == Decimal(1000) - 3540
    bad = client.get(f"/api/v1/bots/{bot.pk}/pnl/", {"interval": "7m"})
    assert bad.status_code == 400 and "interval" in bad.json()
    backwards = client.get(f"/api/v1/bots/{bot.pk}/pnl/", {"start": query["end"], "end": query["start"]})
    assert backwards.status_code == 400 and "start" in backwards.json()
    assert api(other_trader).get(f"/api/v1/bots/{bot.pk}/pnl/", query).status_code == 404


def test_a_snapshot_the_database_cannot_hold_is_refused_and_described_naming_the_value(trader):
    from django.db import DataError, transaction

    bot = make_bot(trader)
    row = pnl_rows(bot, _snapshots(bot, 1))[0]
    row = (*row[:9], 10**40, *row[10:])  # equity: 10^40 cash units, beyond NUMERIC(38, 18)
    with pytest.raises(DataError), transaction.atomic():
        pnl_snapshots_record([row])
    description = pnl_snapshots_record.describe(row)
    assert "equity " in description and "(beyond NUMERIC(38, 18): below 1E+20 accepted)" in description, description
    assert PnlSnapshot.objects.count() == 0


def test_balances_are_replaced_per_account_and_listed_for_the_owner_only(trader, other_trader):
    bot = make_bot(trader)
    account = bot.exchange_account
    balances_replace(account=account, balances={"usdt": {"free": "900", "total": "1000"}, "BTC": {"free": "0.1"}})
    balances_replace(account=account, balances={"USDT": {"free": "950", "total": "1000"}})
    body = api(trader).get("/api/v1/balances/").json()
    assert [(b["asset"], b["free"]) for b in body["results"]] == [("USDT", "950.000000000000000000")]
    assert api(other_trader).get("/api/v1/balances/").json()["count"] == 0


def test_rollup_matches_raw_bucketing_for_any_insert_path_order_and_range(trader):
    from apps.portfolio.selectors import _raw_series

    bot = make_bot(trader)
    rows = _snapshots(bot, 3 * 3600, step=13)
    late, early = rows[::2], rows[1::2]
    pnl_snapshots_record(pnl_rows(bot, late))  # the batched insert, out of order: the odd rows arrive afterwards...
    PnlSnapshot.objects.bulk_create([PnlSnapshot(**r) for r in early[: len(early) // 2]])  # ...by bulk_create
    for row in early[len(early) // 2 :]:
        PnlSnapshot.objects.create(**row)  # ...and one by one
    ranges = [
        ("1h", T0, T0 + timedelta(hours=3)),
        ("1h", T0 + timedelta(minutes=7, seconds=31), T0 + timedelta(hours=2, minutes=59, seconds=5)),
        ("1m", T0 + timedelta(seconds=29), T0 + timedelta(minutes=33, seconds=1)),
        ("1d", T0 - timedelta(days=1), T0 + timedelta(days=1)),
    ]
    for interval, start, end in ranges:
        fast = pnl_series(user=trader, bot_id=bot.pk, interval=interval, start=start, end=end)
        raw = _raw_series(bot.pk, start, end, {"1m": minutes(1), "1h": minutes(60), "1d": minutes(1440)}[interval])
        for row in raw:
            del row["last_ts"]
        assert fast == raw, (interval, start, end)
        assert fast, (interval, start, end)


def test_deleting_a_bot_removes_its_minute_rollups(trader):
    from apps.portfolio.models import PnlMinute

    bot = make_bot(trader)
    pnl_snapshots_record(pnl_rows(bot, _snapshots(bot, 300)))
    assert PnlMinute.objects.filter(bot_id=bot.pk).count() == 5
    bot.delete()
    assert PnlMinute.objects.filter(bot_id=bot.pk).count() == 0 and PnlSnapshot.objects.count() == 0


def test_deleting_snapshots_recomputes_the_affected_minutes(trader):
    from apps.portfolio.selectors import _raw_series

    bot = make_bot(trader)
    rows = _snapshots(bot, 1200, step=7)
    pnl_snapshots_record(pnl_rows(bot, rows))
    PnlSnapshot.objects.filter(ts__gte=T0 + timedelta(seconds=100), ts__lt=T0 + timedelta(seconds=400)).delete()
    PnlSnapshot.objects.filter(ts__gte=T0 + timedelta(seconds=600), ts__lt=T0 + timedelta(seconds=660)).delete()
    fast = pnl_series(user=trader, bot_id=bot.pk, interval="1m", start=T0, end=T0 + timedelta(minutes=20))
    raw = _raw_series(bot.pk, T0, T0 + timedelta(minutes=20), minutes(1))
    for row in raw:
        del row["last_ts"]
    assert fast == raw and len(fast) == 20 - 5  # minutes 2-5 and 10 emptied, 1 and 6 partly kept


def test_a_bulk_ingest_of_snapshots_is_copied_in_with_the_same_values_and_rollup(trader):
    from apps.core.writes import COPY_MIN_ROWS
    from apps.portfolio.selectors import _raw_series

    bot, other = make_bot(trader), make_bot(trader, name="mm-2")
    rows = _snapshots(bot, COPY_MIN_ROWS * 2, step=2)  # COPY_MIN_ROWS rows: the COPY path
    small = _snapshots(other, COPY_MIN_ROWS * 2, step=2)[:100]  # the statement path
    pnl_snapshots_record(pnl_rows(bot, rows))
    pnl_snapshots_record(pnl_rows(other, small))
    fields = ("position", "cash", "mid", "realized", "unrealized", "fees", "equity", "peak_equity", "drawdown")
    stored = list(PnlSnapshot.objects.filter(bot=bot).order_by("ts").values_list("ts", *fields))
    assert stored == [(r["ts"], *(r[f] for f in fields)) for r in rows]
    assert list(PnlSnapshot.objects.filter(bot=other).order_by("ts").values_list("ts", *fields))[:100] == [
        (r["ts"], *(r[f] for f in fields)) for r in small
    ]
    fast = pnl_series(user=trader, bot_id=bot.pk, interval="1m", start=T0, end=T0 + timedelta(hours=3))
    raw = _raw_series(bot.pk, T0, T0 + timedelta(hours=3), minutes(1))
    for row in raw:
        del row["last_ts"]
    assert fast == raw and len(fast) == -(-COPY_MIN_ROWS * 2 // 60)
