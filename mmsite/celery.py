"""The Celery app, configured from Django settings (``CELERY_`` namespace); tasks live in ``workers/``."""

import os

from celery import Celery
from kombu import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mmsite.settings.local")

app = Celery("mmsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
# One direct exchange per queue, bound by its own name: a task routed to one queue is delivered
# to that queue only.
app.conf.task_queues = [
    Queue(name, Exchange(name), routing_key=name) for name in ("default", "feeds", "bots", "backtests")
]
app.conf.task_default_exchange = "default"
app.conf.task_default_routing_key = "default"
app.conf.imports = ("workers.tasks",)
