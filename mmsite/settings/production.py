"""Production: DEBUG off; SECRET_KEY, ALLOWED_HOSTS and CREDENTIALS_ENCRYPTION_KEYS must be set."""

import os

os.environ.setdefault("DEBUG", "0")

from mmsite.settings.base import *  # noqa: F403

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env.env_bool("SESSION_COOKIE_SECURE", True)  # noqa: F405
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
