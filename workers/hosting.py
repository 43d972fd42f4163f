"""Run one :class:`workers.host.Host` inside every Celery worker that consumes the ``bots`` or
``feeds`` queue, as a worker bootstep (Celery's documented extension point for a worker's own
services: https://docs.celeryq.dev/en/stable/userguide/extending.html#worker).

:class:`HostStep` is added to the ``worker`` blueprint of the project's app when this module is
imported (``workers.tasks``, which the app imports before the worker builds its blueprint). It
starts the host in the worker's main process after the pool, so there is exactly one host per
worker whatever the pool size, and stops it when the worker stops (leases are released, so
another worker takes over at once; every database write handed over is finished first).
``MM_HOST=0`` (``mmsite.env.host_enabled``) turns hosting off.
"""

from __future__ import annotations

import logging

from celery import bootsteps

from mmsite import env
from mmsite.celery import app

logger = logging.getLogger(__name__)


class HostStep(bootsteps.StartStopStep):
    """The worker's bot host: started with the worker, stopped with it."""

    requires = {"celery.worker.components:Pool"}

    def start(self, worker) -> None:
        if not env.host_enabled():
            return
        queues = {q.name for q in worker.app.amqp.queues.consume_from.values()}
        run_bots, run_feeds = "bots" in queues, "feeds" in queues
        if not (run_bots or run_feeds):
            return
        from workers.host import start_host

        host = start_host(run_bots=run_bots, run_feeds=run_feeds)
        logger.info("host %s started (bots=%s feeds=%s)", host.host_id, run_bots, run_feeds)

    def stop(self, worker) -> None:
        from workers.host import stop_host

        stop_host()

    def terminate(self, worker) -> None:
        self.stop(worker)


app.steps["worker"].add(HostStep)
