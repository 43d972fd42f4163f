"""Prometheus metrics shared by every process, and the ``/metrics`` endpoint (docs/metrics.md).

Every process of the system (web, Celery workers, bot hosts, beat, the Telegram poller) writes
its metrics to files in ``settings.METRICS_DIR`` (``prometheus_client``'s multiprocess mode: one
memory-mapped file per process and metric type); the web view :func:`metrics_view` collects them
all, so Prometheus scrapes one endpoint whatever the number of processes, forks or hosts sharing
the directory. Files are named after ``<hostname>-<pid>`` (not the bare pid: containers sharing a
volume all have pid 1). At each scrape, files of processes of this host that are gone are folded
into per-type archive files (counters and histograms keep counting; gauges of ``live*`` modes are
dropped), so the directory does not grow with every restart.

This module configures the mode when first imported, before any metric is created: import it
(or :mod:`workers.metrics`) before defining a metric anywhere else.
"""

from __future__ import annotations

import fcntl
import glob
import hmac
import ipaddress
import json
import os
import socket
import time
from collections import defaultdict

from django.conf import settings
from django.http import HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector

_HOST = socket.gethostname().replace("_", "-") or "host"


def _identifier() -> str:
    """This process in file names: unique among live processes sharing the directory."""
    return f"{_HOST}-{os.getpid()}"


def _configure() -> str:
    path = getattr(settings, "METRICS_DIR", "")
    if path:
        os.makedirs(path, exist_ok=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
        values.ValueClass = values.MultiProcessValue(_identifier)
    return path


MULTIPROC_DIR = _configure()

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

PROCESSES = Gauge(
    "mm_process_up", "Live processes of each kind (web, worker, bots, beat, telegram)", ["kind"],
    multiprocess_mode="livesum",
)  # fmt: skip
HTTP_DURATION = Histogram(
    "mm_http_request_duration_seconds", "Web request latency by view", ["method", "view"], buckets=LATENCY_BUCKETS
)
HTTP_REQUESTS = Counter("mm_http_requests_total", "Web requests by view and status class", ["method", "view", "status"])
HTTP_ERRORS = Counter("mm_http_request_errors_total", "Web requests answered 5xx or raising", ["view"])
TASK_DURATION = Histogram("mm_celery_task_duration_seconds", "Celery task run time", ["task"], buckets=LATENCY_BUCKETS)
TASKS = Counter("mm_celery_tasks_total", "Celery tasks run, by final state", ["task", "state"])
TASK_FAILURES = Counter("mm_celery_task_failures_total", "Celery tasks that raised", ["task"])
TASKS_PUBLISHED = Counter("mm_celery_tasks_published_total", "Celery tasks sent (beat, web, workers)", ["task"])
INCIDENTS = Counter("mm_incidents_total", "Incidents opened, by kind", ["kind"])
RECONCILE_MISMATCHES = Counter(
    "mm_reconcile_mismatches_total", "Reconciliation findings (venue vs database), by kind", ["kind"]
)


def process_started(kind: str) -> None:
    """Count this process as a live one of ``kind`` (dropped from the sum when it is gone)."""
    PROCESSES.labels(kind).set(1)


def incident_opened(kind: str) -> None:
    INCIDENTS.labels(kind).inc()


def reconcile_mismatch(kind: str, n: int = 1) -> None:
    if n:
        RECONCILE_MISMATCHES.labels(kind).inc(n)


def _prime() -> None:
    """Known label values start at 0, so every series exists before its first event."""
    try:
        from apps.core.models import IncidentKind

        for kind in IncidentKind.values:
            INCIDENTS.labels(kind)
        for kind in ("orphans", "closed", "fills"):
            RECONCILE_MISMATCHES.labels(kind)
    except Exception:  # models not loadable yet (imported during settings): primed on first use
        pass


_prime()


def _connect_incidents() -> None:
    from django.db.models.signals import post_save

    def _saved(sender, instance, created=False, **kwargs):
        if created:
            incident_opened(str(instance.kind))

    post_save.connect(_saved, sender="core.Incident", weak=False, dispatch_uid="mm-metrics-incidents")


_connect_incidents()


# --- web ----------------------------------------------------------------------------------------
class MetricsMiddleware:
    """Latency, count and errors of every web request, labelled by view (the URL pattern's name,
    or ``unmatched``): bounded labels, never the raw path. It also answers ``/metrics`` itself,
    first of all middleware: a scraper inside a private network (``http://web:8000/metrics``)
    need not be among ALLOWED_HOSTS; the token or network check guards it."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        process_started("web")

    def __call__(self, request):
        started = time.perf_counter()
        if request.path_info == METRICS_PATH:
            response = metrics_view(request)
            self._count(request.method, "metrics", response.status_code, started)
            return response
        try:
            response = self.get_response(request)
        except Exception:
            HTTP_ERRORS.labels(_view_of(request)).inc()
            raise
        self._count(request.method, _view_of(request), response.status_code, started)
        return response

    def _count(self, method: str, view: str, status: int, started: float) -> None:
        method = method if method in _METHODS else "other"
        HTTP_DURATION.labels(method, view).observe(time.perf_counter() - started)
        HTTP_REQUESTS.labels(method, view, f"{status // 100}xx").inc()
        errors = HTTP_ERRORS.labels(view)  # every view's error series exists, at 0 until one
        if status >= 500:
            errors.inc()


METRICS_PATH = "/metrics"


_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


def _view_of(request) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "unmatched"
    return match.view_name or match.route or "unnamed"


# --- Celery ---------------------------------------------------------------------------------------
def _connect_celery() -> None:
    from celery.signals import after_task_publish, beat_init, task_failure, task_postrun, task_prerun, worker_ready

    started: dict[str, float] = {}

    @task_prerun.connect(weak=False)
    def _prerun(task_id=None, **kwargs):
        started[task_id] = time.perf_counter()

    @task_postrun.connect(weak=False)
    def _postrun(task_id=None, task=None, state=None, **kwargs):
        began = started.pop(task_id, None)
        name = getattr(task, "name", "unknown")
        if began is not None:
            TASK_DURATION.labels(name).observe(time.perf_counter() - began)
        TASKS.labels(name, str(state or "unknown").lower()).inc()

    @task_failure.connect(weak=False)
    def _failure(sender=None, **kwargs):
        TASK_FAILURES.labels(getattr(sender, "name", "unknown")).inc()

    @after_task_publish.connect(weak=False)
    def _published(sender=None, **kwargs):
        TASKS_PUBLISHED.labels(str(sender or "unknown")).inc()

    @worker_ready.connect(weak=False)
    def _worker(sender=None, **kwargs):
        queues = {q.name for q in sender.app.amqp.queues.consume_from.values()} if sender is not None else set()
        process_started("bots" if queues & {"bots", "feeds"} else "worker")
        for name in sender.app.tasks if sender is not None else ():
            if not name.startswith("celery."):  # every task's failure series exists, at 0 until one
                TASK_FAILURES.labels(name)

    @beat_init.connect(weak=False)
    def _beat(**kwargs):
        process_started("beat")


_connect_celery()


# --- collection -----------------------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _dead_local_files(path: str) -> list[str]:
    """Files of processes of this host that no longer run (other hosts' are left alone)."""
    dead = []
    for name in glob.glob(os.path.join(path, "*.db")):
        ident = os.path.basename(name)[:-3].rsplit("_", 1)[-1]
        host, _, pid = ident.rpartition("-")
        if host == _HOST and pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            dead.append(name)
    return dead


def _fold(prefix: str, entries: list[tuple[str, float, float]]) -> dict[str, tuple[float, float]]:
    """Merge the entries of several files of one type the way the collector would."""
    merged: dict[str, tuple[float, float]] = {}
    mode = prefix.partition("_")[2]
    for key, value, ts in entries:
        if key not in merged:
            merged[key] = (value, ts)
            continue
        old, old_ts = merged[key]
        if mode in ("max",):
            merged[key] = (max(old, value), 0.0)
        elif mode in ("min",):
            merged[key] = (min(old, value), 0.0)
        elif mode == "mostrecent":
            merged[key] = (value, ts) if ts > old_ts else (old, old_ts)
        else:  # counters, histogram buckets, summaries and sum gauges add up
            merged[key] = (old + value, 0.0)
    return merged


def compact(path: str) -> int:
    """Fold the files of dead local processes into ``<type>_archive.db``; returns files removed.
    Caller holds the directory lock."""
    by_prefix: dict[str, list[str]] = defaultdict(list)
    removed = 0
    for name in _dead_local_files(path):
        prefix = os.path.basename(name)[:-3].rsplit("_", 1)[0]
        if prefix.startswith("gauge_live") or prefix == "gauge_all":
            os.remove(name)  # a gone process has no current value
            removed += 1
        else:
            by_prefix[prefix].append(name)
    for prefix, names in by_prefix.items():
        archive = os.path.join(path, f"{prefix}_archive.db")
        sources = names + ([archive] if os.path.exists(archive) else [])
        entries = []
        for name in sources:
            entries += [(k, v, ts) for k, v, ts, _pos in MmapedDict.read_all_values_from_file(name)]
        merged = _fold(prefix, entries)
        tmp = os.path.join(path, f"{prefix}_archive.tmp")
        out = MmapedDict(tmp)
        for key, (value, ts) in merged.items():
            out.write_value(key, value, ts)
        out.close()
        os.replace(tmp, archive)
        for name in names:
            os.remove(name)
            removed += 1
    return removed


def scrape() -> bytes:
    """The exposition text of every process writing to the directory (or of this one)."""
    path = MULTIPROC_DIR
    if not path:
        return generate_latest(REGISTRY)
    with open(os.path.join(path, ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one compaction at a time, never during a read
        compact(path)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path)
        return generate_latest(registry)


def _allowed(request) -> tuple[bool, str]:
    token = settings.METRICS_TOKEN
    networks = settings.METRICS_ALLOWED_NETWORKS
    if not token and not networks:
        return False, "metrics are not exposed: set METRICS_TOKEN or METRICS_ALLOWED_NETWORKS"
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip().encode(), token.encode()):
        return True, ""
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        address = None
    if address is not None and any(address in ipaddress.ip_network(n) for n in networks):
        return True, ""
    return False, "send Authorization: Bearer <METRICS_TOKEN> or scrape from METRICS_ALLOWED_NETWORKS"


def metrics_view(request):
    """``GET /metrics``: Prometheus exposition of every process (token or network protected)."""
    ok, reason = _allowed(request)
    if not ok:
        return HttpResponse(json.dumps({"detail": reason}), status=403, content_type="application/json")
    return HttpResponse(scrape(), content_type=CONTENT_TYPE_LATEST)
