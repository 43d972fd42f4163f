"""Housekeeping tasks run by beat."""

from celery import shared_task
from django.core.management import call_command


@shared_task(name="workers.maintenance.clear_expired_sessions")
def clear_expired_sessions() -> None:
    """Delete expired login sessions."""
    call_command("clearsessions")


@shared_task(name="workers.maintenance.ping")
def ping(value: str = "pong") -> str:
    """Echo a value back: used to prove a worker really consumes the default queue."""
    from django.conf import settings

    from apps.core.health import redis_client

    redis_client().set(f"{settings.REDIS_PREFIX}:ping:{value}", value, ex=60)
    return value
