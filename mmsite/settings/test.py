"""Tests: real PostgreSQL and Redis (their URLs from the environment), fast password hashing."""

import os

os.environ.setdefault("DEBUG", "1")
# One prefix per test run, inherited by the workers the tests start, so parallel runs never collide.
os.environ.setdefault("REDIS_PREFIX", f"mmtest-{os.getpid()}")

from mmsite.settings.base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"anon": "10000/min", "user": "100000/min"}}  # noqa: F405
# Tests serve static files through the finders; no collectstatic output is needed.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
# The notification tests talk to local SMTP/HTTP servers on 127.0.0.1.
NOTIFICATIONS_ALLOW_PRIVATE_HOSTS = True
