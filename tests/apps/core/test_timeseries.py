"""The time-bucket helper returns correct buckets on plain PostgreSQL (date_bin), and renders
TimescaleDB's time_bucket with the same arguments where the extension is enabled."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.sessions.models import Session
from django.db import connection
from django.db.models import Count, Max, Min
from django.test import Client

from apps.core.timeseries import First, Last, bucketed, parse_interval, timescale_enabled

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def make_rows(offsets_s: list[int]) -> None:
    # Sessions are a real table with a timestamp column; the session key is unique per row.
    Session.objects.bulk_create(
        Session(session_key=f"k{i:06d}", session_data=str(i), expire_date=T0 + timedelta(seconds=s))
        for i, s in enumerate(offsets_s)
    )


def python_buckets(offsets_s: list[int], width: timedelta) -> dict[datetime, int]:
    origin = datetime(2000, 1, 3, tzinfo=UTC)
    counts: dict[datetime, int] = defaultdict(int)
    for s in offsets_s:
        t = T0 + timedelta(seconds=s)
        counts[origin + ((t - origin) // width) * width] += 1
    return dict(counts)


def test_detection_matches_the_server_and_operators_see_why(admin_user):
    from apps.core.db.backend.base import timescale_status

    with connection.cursor() as cursor:
        cursor.execute("SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')")
        (installed,) = cursor.fetchone()
        cursor.execute("SELECT to_regclass('timescaledb_information.hypertables') IS NOT NULL")
        (created,) = cursor.fetchone()
    status = timescale_status(connection)
    if not installed:
        assert status == (False, "not usable: the timescaledb extension is not installed on the server")
    assert timescale_enabled(connection) is (status.usable and created)
    operator = Client()
    operator.force_login(admin_user)
    health = operator.get("/healthz").json()["checks"]["timescaledb"]
    assert health == {"present": timescale_enabled(connection), "reason": status.reason}


@pytest.mark.parametrize(
    ("setting", "preloaded"),
    [
        ("timescaledb", True),
        ("pg_stat_statements, timescaledb", True),
        ('"$libdir/timescaledb.so",auto_explain', True),
        ("", False),
        ("pg_stat_statements", False),
        ("timescaledb_toolkit", False),
    ],
)
def test_preloaded_reads_shared_preload_libraries(setting, preloaded):
    from apps.core.db.backend.base import preloaded as is_preloaded

    assert is_preloaded(setting) is preloaded


@pytest.mark.parametrize("interval", ["1m", "15m", "1h", "1d"])
def test_buckets_on_plain_postgres_match_an_independent_computation(interval):
    offsets = [0, 1, 59, 60, 61, 899, 900, 3599, 3600, 3601, 7200, 86399, 86400, 90000]
    make_rows(offsets)
    rows = bucketed(Session.objects.all(), time_field="expire_date", interval=interval, n=Count("session_key"))
    got = {row["bucket"]: row["n"] for row in rows}
    assert got == python_buckets(offsets, parse_interval(interval))
    assert [row["bucket"] for row in rows] == sorted(got)


def test_first_and_last_pick_values_at_the_earliest_and_latest_time():
    make_rows([10, 20, 30, 70, 80])
    rows = list(
        bucketed(
            Session.objects.all(),
            time_field="expire_date",
            interval="1m",
            first=First("session_data", "expire_date"),
            last=Last("session_data", "expire_date"),
            lo=Min("expire_date"),
            hi=Max("expire_date"),
        )
    )
    assert [(r["first"], r["last"]) for r in rows] == [("0", "2"), ("3", "4")]


def test_weekly_buckets_start_on_monday_like_timescaledb():
    make_rows([0])  # 2026-11-20 is a Friday
    (row,) = bucketed(Session.objects.all(), time_field="expire_date", interval="1w", n=Count("pk"))
    assert row["bucket"] == datetime(2026, 11, 16, tzinfo=UTC)  # the Monday before
    assert row["bucket"].weekday() == 0


def test_timescaledb_path_renders_time_bucket_with_the_same_arguments(monkeypatch):
    queryset = bucketed(Session.objects.all(), time_field="expire_date", interval="1h", n=Count("pk"))
    monkeypatch.setattr(connection, "_mm_timescale_enabled", False, raising=False)
    plain_sql = str(queryset.query)
    connection._mm_timescale_enabled = True  # restored by monkeypatch
    timescale_sql = str(queryset.query)
    assert "date_bin(" in plain_sql and "time_bucket(" not in plain_sql
    assert timescale_sql == plain_sql.replace("date_bin(", "time_bucket(")


def test_unknown_interval_is_refused_with_the_accepted_values():
    with pytest.raises(ValueError, match="accepted: 1s, 5s"):
        parse_interval("1month")


def test_first_and_last_break_ties_by_the_extra_keys_with_the_same_sql_on_both(monkeypatch):
    make_rows([10, 10, 10, 70, 70])  # three rows share a time, then two
    queryset = bucketed(
        Session.objects.all(),
        time_field="expire_date",
        interval="1m",
        first=First("session_data", "expire_date", "session_key"),
        last=Last("session_data", "expire_date", "session_key"),
    )
    assert [(r["first"], r["last"]) for r in queryset] == [("0", "2"), ("3", "4")]
    monkeypatch.setattr(connection, "_mm_timescale_enabled", False, raising=False)
    plain_sql = str(queryset.query)
    connection._mm_timescale_enabled = True  # restored by monkeypatch
    timescale_sql = str(queryset.query)
    assert "ORDER BY" in plain_sql and "first(" not in timescale_sql and "last(" not in timescale_sql
    assert timescale_sql == plain_sql.replace("date_bin(", "time_bucket(")
