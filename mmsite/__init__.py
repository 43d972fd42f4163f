"""The Django project: settings, URLs, ASGI (HTTP + websockets) and the Celery app."""

from mmsite.celery import app as celery_app

__all__ = ("celery_app",)
