"""Celery tasks and the long-running loops they host. Thin: load by id, call a service."""
