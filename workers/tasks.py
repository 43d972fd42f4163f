"""Imported by the Celery app so every task module registers."""

from workers import heartbeat, maintenance  # noqa: F401
