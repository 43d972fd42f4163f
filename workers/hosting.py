"""Start one :class:`workers.host.Host` in every Celery worker process that consumes the
``bots`` or ``feeds`` queue (``worker_ready``, in the worker's main process, so there is
exactly one host per worker no matter the pool size), and stop it on shutdown (leases are
released so another worker takes over at once). ``MM_HOST=0`` disables hosting."""

from __future__ import annotations

import logging

from celery.signals import worker_ready, worker_shutdown

from mmsite import env

logger = logging.getLogger(__name__)


@worker_ready.connect
def _start_host(sender=None, **kwargs):
    if not env.host_enabled() or sender is None:
        return
    queues = {q.name for q in sender.app.amqp.queues.consume_from.values()}
    run_bots, run_feeds = "bots" in queues, "feeds" in queues
    if not (run_bots or run_feeds):
        return
    from workers.host import start_host

    host = start_host(run_bots=run_bots, run_feeds=run_feeds)
    logger.info("host %s started (bots=%s feeds=%s)", host.host_id, run_bots, run_feeds)


@worker_shutdown.connect
def _stop_host(**kwargs):
    from workers.host import stop_host

    stop_host()
