"""Health of the parts the site depends on: database, Redis, TimescaleDB, Celery workers, beat.

Workers and beat write heartbeats to Redis (``workers.heartbeat``); a heartbeat older than
``HEALTH_HEARTBEAT_MAX_AGE`` seconds counts as down.
"""

from __future__ import annotations

import json
import time

import redis
from django.conf import settings
from django.db import connection

from apps.core.db.backend.base import timescale_status
from apps.core.timeseries import timescale_enabled

_redis_client: redis.Redis | None = None


def redis_client() -> redis.Redis:
    """The process-wide Redis client for the site's own keys (not the channel layer or broker)."""
    global _redis_client
    if _redis_client is None:
        _redis_client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    return _redis_client


def heartbeat_key(kind: str, name: str = "") -> str:
    return f"{settings.REDIS_PREFIX}:heartbeat:{kind}" + (f":{name}" if name else "")


def write_heartbeat(kind: str, name: str, info: dict) -> None:
    """Record that a worker or beat is alive now; expires on its own after a few periods."""
    payload = json.dumps({**info, "ts": time.time()})
    redis_client().set(heartbeat_key(kind, name), payload, ex=settings.HEALTH_HEARTBEAT_MAX_AGE * 4)


def _heartbeats(kind: str) -> list[dict]:
    client = redis_client()
    keys = sorted(client.scan_iter(match=heartbeat_key(kind, "*"), count=100))
    beats = []
    for key, raw in zip(keys, client.mget(keys) if keys else [], strict=True):
        if raw:
            beat = json.loads(raw)
            beat["name"] = key.decode().rsplit(":", 1)[-1]
            beat["age_s"] = round(time.time() - beat["ts"], 1)
            beats.append(beat)
    return beats


def check_health() -> dict:
    """Return ``{"status": "ok"|"degraded", "checks": {...}}``; never raises."""
    checks: dict[str, dict] = {}
    max_age = settings.HEALTH_HEARTBEAT_MAX_AGE
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = {"up": True}
        status = timescale_status(connection)
        checks["timescaledb"] = {"up": True, "present": timescale_enabled(connection), "reason": status.reason}
    except Exception as exc:  # report, never raise: this is the health page
        checks["database"] = {"up": False, "error": str(exc).splitlines()[0][:200]}
        checks["timescaledb"] = {"up": False, "present": None}
    try:
        redis_client().ping()
        checks["redis"] = {"up": True}
        workers = [w for w in _heartbeats("worker") if w["age_s"] <= max_age]
        beats = [b for b in _heartbeats("beat") if b["age_s"] <= max_age]
        checks["workers"] = {
            "up": bool(workers),
            "count": len(workers),
            "workers": [{"name": w["name"], "queues": w.get("queues", []), "age_s": w["age_s"]} for w in workers],
        }
        checks["beat"] = {"up": bool(beats), "age_s": min((b["age_s"] for b in beats), default=None)}
    except Exception as exc:
        checks["redis"] = {"up": False, "error": str(exc).splitlines()[0][:200]}
        checks["workers"] = {"up": False, "count": 0, "workers": []}
        checks["beat"] = {"up": False, "age_s": None}
    required = ("database", "redis", "workers", "beat")
    status = "ok" if all(checks[name]["up"] for name in required) else "degraded"
    return {"status": status, "checks": checks}
