"""Settings for ``bench_web``: the local settings, with the database connection mode chosen by
``BENCH_DB_POOL``.

Under ASGI every request runs its sync view in a fresh thread, so ``CONN_MAX_AGE=60`` leaves one
idle connection per finished thread until it ages out and the server soon hits PostgreSQL's
``max_connections`` ("too many clients"). Django's advice for ASGI is ``CONN_MAX_AGE=0`` (a new
connection per request: the default here and in production settings) or a connection pool:
``BENCH_DB_POOL=<max size>`` turns on Django 5.1+'s psycopg pool (``OPTIONS["pool"]``, needs
``psycopg-pool``) so the bench can measure what per-request connections cost."""

import os

from mmsite.settings.local import *  # noqa: F403

_POOL = int(os.environ.get("BENCH_DB_POOL", "0"))
if _POOL:
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405 (required with a pool)
    DATABASES["default"]["OPTIONS"]["pool"] = {"min_size": 2, "max_size": _POOL, "timeout": 10}  # noqa: F405
else:
    DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ.get("BENCH_CONN_MAX_AGE", "0"))  # noqa: F405
if os.environ.get("BENCH_NO_WHITENOISE"):
    MIDDLEWARE = [m for m in MIDDLEWARE if "whitenoise" not in m]  # noqa: F405
