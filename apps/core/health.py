"""Health of the parts the site depends on: database, Redis, TimescaleDB, Celery workers, and the
control plane (beat, the supervisor, a worker consuming ``default``).

Workers write heartbeats to Redis from a thread (``workers.heartbeat``). The control plane is
judged by what it did, not by its processes being alive: beat stamps every pass of its scheduling
loop (``apps.core.beat``), the supervisor stamps every run (``workers.supervisor.supervisor_tick``,
sent by beat, run by a ``default`` worker). A heartbeat or stamp older than
``HEALTH_HEARTBEAT_MAX_AGE`` seconds (30; beat ticks and the supervisor runs every 5 s) counts as
down, and then ``/healthz`` answers 503.
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
CONTROL_PLANE = ("beat", "supervisor", "default_consumer")


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


def stamp_key(kind: str) -> str:
    return f"{settings.REDIS_PREFIX}:controlplane:{kind}"


def write_stamp(kind: str, info: dict) -> None:
    """Record that a control-plane step (``beat``, ``supervisor``) just completed; kept a day."""
    redis_client().set(stamp_key(kind), json.dumps({**info, "ts": time.time()}), ex=86400)


def _stamp(kind: str) -> dict | None:
    raw = redis_client().get(stamp_key(kind))
    if not raw:
        return None
    stamp = json.loads(raw)
    stamp["age_s"] = round(time.time() - stamp["ts"], 1)
    return stamp


def _stamp_check(kind: str, max_age: float, details: tuple[str, ...] = ()) -> dict:
    stamp = _stamp(kind)
    if stamp is None:
        return {"up": False, "age_s": None}
    return {"up": stamp["age_s"] <= max_age, "age_s": stamp["age_s"], **{k: stamp.get(k) for k in details}}


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
    """Return ``{"status": "ok"|"degraded", "checks": {...}}``; never raises.

    ``timescaledb`` only says whether the extension is in use (``present``; false: plain
    PostgreSQL tables, None: the database did not answer); every other check has ``up`` and is
    required for "ok"."""
    checks: dict[str, dict] = {}
    max_age = settings.HEALTH_HEARTBEAT_MAX_AGE
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = {"up": True}
        status = timescale_status(connection)
        checks["timescaledb"] = {"present": timescale_enabled(connection), "reason": status.reason}
    except Exception as exc:  # report, never raise: this is the health page
        checks["database"] = {"up": False, "error": str(exc).splitlines()[0][:200]}
        checks["timescaledb"] = {"present": None}
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
        consumers = [w["name"] for w in workers if "default" in w.get("queues", [])]
        checks["default_consumer"] = {"up": bool(consumers), "count": len(consumers), "workers": consumers}
        checks["beat"] = {**_stamp_check("beat", max_age, ("host",)), "process_up": bool(beats)}
        checks["supervisor"] = _stamp_check("supervisor", max_age, ("worker", "wanted", "owned", "claim_pending"))
    except Exception as exc:
        checks["redis"] = {"up": False, "error": str(exc).splitlines()[0][:200]}
        checks["workers"] = {"up": False, "count": 0, "workers": []}
        checks["default_consumer"] = {"up": False, "count": 0, "workers": []}
        checks["beat"] = {"up": False, "age_s": None, "process_up": False}
        checks["supervisor"] = {"up": False, "age_s": None}
    required = ("database", "redis", "workers", *CONTROL_PLANE)
    status = "ok" if all(checks[name]["up"] for name in required) else "degraded"
    return {"status": status, "checks": checks}


def control_plane(report: dict) -> dict:
    """The control-plane part of a ``check_health()`` report, for the Operators page."""
    checks = report["checks"]
    return {
        "up": all(checks[name]["up"] for name in CONTROL_PLANE),
        "max_age_s": settings.HEALTH_HEARTBEAT_MAX_AGE,
        **{name: checks[name] for name in CONTROL_PLANE},
    }
