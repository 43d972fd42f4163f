"""Celery beat's scheduler (django-celery-beat's ``DatabaseScheduler``) stamping each pass.

Beat's heartbeat thread only proves the process is alive; this stamp proves its scheduling loop
still turns (a beat stuck on its database or its broker stops stamping while its heartbeat
thread goes on). ``/healthz`` and the Operators page read it (``apps/core/health.py``).
"""

from __future__ import annotations

import logging
import os
import socket

from django_celery_beat.schedulers import DatabaseScheduler

from apps.core.health import write_stamp

logger = logging.getLogger(__name__)


class StampedDatabaseScheduler(DatabaseScheduler):
    """``DatabaseScheduler`` that records the time of every completed ``tick`` in Redis."""

    def tick(self, *args, **kwargs):
        interval = super().tick(*args, **kwargs)
        try:
            write_stamp("beat", {"host": socket.gethostname(), "pid": os.getpid()})
        except Exception as exc:  # Redis down: beat goes on; /healthz will say beat is silent
            logger.warning("beat tick not stamped: %s", exc)
        return interval
