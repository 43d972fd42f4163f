"""The Celery app, configured from Django settings (``CELERY_`` namespace); tasks live in ``workers/``.

The broker transport is kombu's Redis transport with one guard (``RedisTransport``): with
celery 5.7.0 and kombu 5.7.0 a worker that holds an unacknowledged message (a task due later, or
an ``acks_late`` task still running) when Redis goes away exits for good with
``Unrecoverable error: AttributeError("'NoneType' object has no attribute 'hostname'")``.
How: celery 5.7.0's ``Consumer.on_connection_error_after_connected`` first calls
``connection.collect()``, whose close of the default channel fails while draining its pending
``BRPOP`` (Redis is down) and so leaves that channel open; ``collect()`` then detaches the
transport from its connection (``transport.client = None``) but keeps ``_default_channel``.
Celery then calls ``connection.close()`` (new in 5.7.0; 5.6.3 stopped after ``collect()``),
which closes the same channel again; this time the close gets as far as restoring the
unacknowledged messages, which builds a new Redis pool from ``transport.client`` — None — in
``Channel._connparams``. The ``AttributeError`` is not a connection error, so nothing catches it.

The guard makes ``_connparams`` of a detached channel raise redis-py's ``ConnectionError``
instead: the close is then a connection error like any other, celery ignores it and
reconnects. The messages stay in kombu's unacked index in Redis, and kombu puts them back on
their queue once they are older than ``visibility_timeout`` (``CELERY_BROKER_TRANSPORT_OPTIONS``),
which is what celery 5.6 did too. Drop the guard once celery/kombu fix the double close
(``tests/ops/test_broker_restart.py`` shows when).
"""

import os
import ssl
from urllib.parse import urlparse

import redis
from celery import Celery
from kombu import Exchange, Queue
from kombu.transport import redis as kombu_redis

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mmsite.settings.local")


class _RedisChannel(kombu_redis.Channel):
    def _connparams(self, asynchronous=False):
        transport = self.connection
        if transport is None or transport.client is None:
            raise redis.exceptions.ConnectionError("broker connection already collected; not reconnecting this channel")
        return super()._connparams(asynchronous=asynchronous)


class RedisTransport(kombu_redis.Transport):
    """kombu's Redis transport whose channels never rebuild a pool after their connection was collected."""

    Channel = _RedisChannel


app = Celery("mmsite")
app.config_from_object("django.conf:settings", namespace="CELERY")


@app.on_after_configure.connect
def _use_guarded_redis_transport(sender, source, **kwargs) -> None:
    """Once the settings are read (not at import: settings import this module), pick the transport."""
    scheme = urlparse(source.broker_url or "").scheme
    if scheme in ("redis", "rediss") and not source.broker_transport:
        source.broker_transport = "mmsite.celery:RedisTransport"
        if scheme == "rediss" and not source.broker_use_ssl:
            # kombu turns "rediss" into TLS only under its own transport name; say it here (verified).
            source.broker_use_ssl = {"ssl_cert_reqs": ssl.CERT_REQUIRED}


# One direct exchange per queue, bound by its own name: a task routed to one queue is delivered
# to that queue only.
app.conf.task_queues = [
    Queue(name, Exchange(name), routing_key=name) for name in ("default", "feeds", "bots", "backtests")
]
app.conf.task_default_exchange = "default"
app.conf.task_default_routing_key = "default"
app.conf.imports = ("workers.tasks",)
