"""Housekeeping (beat, every 10 min): trim the paper venues' trade logs and forget dead hosts.

Time-series retention itself is TimescaleDB's retention policies (set in migrations) when
TimescaleDB is present; on plain PostgreSQL ``MM_RETENTION_DAYS`` (default 30) bounds book and
top-of-book snapshots here.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from workers import keys, lifecycle

TRADE_LOG_KEEP = 50_000


def run() -> dict[str, int]:
    redis = lifecycle.redis_client()
    trimmed = 0
    for key in redis.scan_iter(match=keys.paper(0, "*", "trades").replace(":0:", ":*:"), count=500):
        if redis.llen(key) > TRADE_LOG_KEEP:
            redis.ltrim(key, -TRADE_LOG_KEEP, -1)
            trimmed += 1
    dead = 0
    for host_id, raw in redis.hgetall(keys.host_registry()).items():
        try:
            if time.time() - json.loads(raw)["ts"] > 120:
                redis.hdel(keys.host_registry(), host_id)
                dead += 1
        except (ValueError, KeyError):
            redis.hdel(keys.host_registry(), host_id)
    deleted = 0
    from django.db import connection

    from apps.core.timeseries import timescale_enabled

    if not timescale_enabled(connection):
        from apps.marketdata.models import DepthSnapshot, TopOfBookSnapshot

        cutoff = timezone.now() - timedelta(days=settings.MARKETDATA_RETENTION_DAYS)
        for model in (DepthSnapshot, TopOfBookSnapshot):
            deleted += model.objects.filter(ts__lt=cutoff).delete()[0]
    return {"trade_logs_trimmed": trimmed, "dead_hosts": dead, "rows_deleted": deleted}


@shared_task(name="workers.housekeeping.run")
def housekeeping_run() -> dict[str, int]:
    return run()
