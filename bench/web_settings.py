"""Settings for ``bench_web``: the local settings (production defaults: ``CONN_MAX_AGE=0``, one
Redis connection pool per cache object) plus switches for the experiments in ``docs/web.md``.

Under ASGI every request runs its sync view in a fresh thread, so ``CONN_MAX_AGE=60`` leaves one
idle connection per finished thread until it ages out and the server soon hits PostgreSQL's
``max_connections`` ("too many clients"); Django's advice for ASGI is ``CONN_MAX_AGE=0`` or a
connection pool. Environment switches (all off by default):

- ``BENCH_DB_POOL=<max size>``: Django 5.1+'s psycopg pool (``OPTIONS["pool"]``, needs
  ``psycopg-pool`` from requirements-dev.txt).
- ``BENCH_CONN_MAX_AGE=<seconds>``: persistent connections; only safe with a fixed set of threads
  (``bench.bench_web:threadpool_api_app``), not with the ASGI handler's thread per request.
- ``BENCH_SHARED_REDIS_POOL=1``: one Redis connection pool per process for the cache.
- ``BENCH_NO_WHITENOISE=1``: drop the (sync-only) WhiteNoise middleware."""

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

if os.environ.get("BENCH_SHARED_REDIS_POOL"):
    # Experiment: every cache object of the process shares one Redis connection pool. Django makes
    # a cache object per ASGI request context and each one opens its own connection pool, i.e. a
    # new Redis connection per request (the API throttle's cache read).
    CACHES["default"]["BACKEND"] = "bench.web_settings.SharedPoolRedisCache"  # noqa: F405


def _shared_pool_cache():
    import threading

    from django.core.cache.backends.redis import RedisCache, RedisCacheClient

    pools: dict = {}
    lock = threading.Lock()

    class SharedPoolClient(RedisCacheClient):
        def _get_connection_pool(self, write):
            key = (tuple(self._servers), self._get_connection_pool_index(write))
            with lock:
                if key not in pools:
                    pools[key] = self._pool_class.from_url(self._servers[key[1]], **self._pool_options)
                return pools[key]

    class SharedPoolRedisCache(RedisCache):
        def __init__(self, server, params):
            super().__init__(server, params)
            self._class = SharedPoolClient

    return SharedPoolRedisCache


def __getattr__(name: str):  # the backend class is built on first use, after settings load
    if name == "SharedPoolRedisCache":
        globals()[name] = cls = _shared_pool_cache()
        return cls
    raise AttributeError(name)
