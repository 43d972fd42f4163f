"""Heartbeats for /healthz: every worker and the beat process write one to Redis every few
seconds from a daemon thread in their main process, so a killed process stops beating at once."""

from __future__ import annotations

import logging
import os
import socket
import threading

from celery.signals import beat_init, worker_ready, worker_shutdown

logger = logging.getLogger(__name__)
INTERVAL_S = 5.0
_stop = threading.Event()


def _beat_forever(kind: str, name: str, info: dict) -> None:
    from apps.core.health import write_heartbeat

    while not _stop.is_set():
        try:
            write_heartbeat(kind, name, info)
        except Exception as exc:  # Redis down: keep trying, /healthz will show it
            logger.warning("heartbeat %s:%s not written: %s", kind, name, exc)
        _stop.wait(INTERVAL_S)


def _start(kind: str, name: str, info: dict) -> None:
    thread = threading.Thread(target=_beat_forever, args=(kind, name, info), name=f"{kind}-heartbeat", daemon=True)
    thread.start()


@worker_ready.connect
def _on_worker_ready(sender=None, **kwargs):
    queues = sorted(q.name for q in sender.app.amqp.queues.consume_from.values()) if sender else []
    _start("worker", sender.hostname if sender else socket.gethostname(), {"queues": queues, "pid": os.getpid()})


@beat_init.connect
def _on_beat_init(sender=None, **kwargs):
    _start("beat", socket.gethostname(), {"pid": os.getpid()})


@worker_shutdown.connect
def _on_shutdown(**kwargs):
    _stop.set()
