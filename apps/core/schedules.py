"""The default beat schedules. ``manage.py install_schedules`` writes them to the database
(django-celery-beat) idempotently: existing entries keep any interval an operator changed in
the admin; missing ones are created."""

DEFAULT_SCHEDULES: list[dict] = [
    {
        "name": "Clear expired sessions",
        "task": "workers.maintenance.clear_expired_sessions",
        "every_seconds": 3600,
    },
]
