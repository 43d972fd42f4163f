"""Settings for ``bench_web``: the local settings with per-request database connections.

Under ASGI every request runs its sync view in a fresh thread, so ``CONN_MAX_AGE=60`` leaves one
idle connection per finished thread until it ages out and the server soon hits PostgreSQL's
``max_connections`` ("too many clients"). Django's advice for ASGI is ``CONN_MAX_AGE=0`` or a
connection pool; the bench uses ``0``."""

from mmsite.settings.local import *  # noqa: F403

DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
