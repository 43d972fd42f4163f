"""Settings shared by every environment. All environment reads happen here, via ``mmsite.env``."""

from __future__ import annotations

from pathlib import Path

from mmsite import env

BASE_DIR = Path(__file__).resolve().parent.parent.parent

DEBUG = env.env_bool("DEBUG", False)
SECRET_KEY = env.env_str("SECRET_KEY", None if not DEBUG else "dev-insecure-secret-key-change-me")
if not DEBUG and len(SECRET_KEY) < 32:
    raise env.ConfigurationError(
        "SECRET_KEY is shorter than 32 characters; accepted: a random string of 32+ characters"
    )
ALLOWED_HOSTS = env.env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
if not ALLOWED_HOSTS:
    raise env.ConfigurationError(
        "ALLOWED_HOSTS is not set; accepted: comma-separated host names, e.g. 'mm.example.com'"
    )
CSRF_TRUSTED_ORIGINS = env.env_list("CSRF_TRUSTED_ORIGINS", [])

# Exchange credentials are encrypted with these Fernet keys (first encrypts, all decrypt).
CREDENTIALS_ENCRYPTION_KEYS = env.fernet_keys(
    "CREDENTIALS_ENCRYPTION_KEYS",
    # A fixed development key: only ever used with DEBUG on; production must set its own.
    "ZGV2LW9ubHkta2V5LWRvLW5vdC11c2UtaW4tcHJvZC0=" if DEBUG else None,
)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "channels",
    "apps.core",
    "apps.accounts",
    "apps.exchanges",
    "apps.bots",
    "apps.orders",
    "apps.portfolio",
    "apps.marketdata",
    "apps.arbitrage",
    "apps.backtests",
    "apps.research",
    "apps.derivatives",
    "apps.notifications",
    "apps.dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "mmsite.urls"
ASGI_APPLICATION = "mmsite.asgi.application"
WSGI_APPLICATION = "mmsite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.database_from_url("DATABASE_URL", env.DEFAULT_DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.redis_url("REDIS_URL", env.DEFAULT_REDIS_URL)
# Key prefix for everything this deployment keeps in Redis (leases, books, streams, health).
REDIS_PREFIX = env.env_str("REDIS_PREFIX", "mm")

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = ["apps.accounts.backends.ThrottledModelBackend"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"
# Login throttling (apps.accounts.throttle): this many failures lock a username (or a known
# username+address pair) out, with backoff up to LOGIN_LOCKOUT_SECONDS; more settings below.
LOGIN_MAX_FAILURES = env.env_int("LOGIN_MAX_FAILURES", 5, minimum=1, maximum=100)
LOGIN_LOCKOUT_SECONDS = env.env_int("LOGIN_LOCKOUT_SECONDS", 900, minimum=1, maximum=86400)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "var" / "staticfiles"
WHITENOISE_USE_FINDERS = DEBUG  # the demo serves straight from static/ too

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": f"{REDIS_PREFIX}:cache",
    }
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # The socket timeout must outlast channels_redis' 5 s blocking receive (BZPOPMIN),
            # or every quiet websocket dies with a read timeout.
            "hosts": [{"address": REDIS_URL, "socket_timeout": 30, "socket_connect_timeout": 5}],
            "prefix": f"{REDIS_PREFIX}:asgi",
            "capacity": 500,
            "expiry": 30,
        },
    }
}

# --- Celery (namespace CELERY_) ---------------------------------------------------------------
CELERY_BROKER_URL = env.redis_url("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600, "global_keyprefix": f"{REDIS_PREFIX}:celery:"}
# django-celery-beat's DatabaseScheduler, stamping each pass for /healthz.
CELERY_BEAT_SCHEDULER = "apps.core.beat:StampedDatabaseScheduler"
CELERY_TASK_ROUTES = {
    "workers.feeds.*": {"queue": "feeds"},
    "workers.bots.*": {"queue": "bots"},
    "workers.backtests.*": {"queue": "backtests"},
}
CELERY_QUEUES_ALL = ("default", "feeds", "bots", "backtests")

# --- Email -------------------------------------------------------------------------------------
EMAIL_BACKEND = env.env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env.env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env.env_int("EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = env.env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env.env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env.env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env.env_bool("EMAIL_USE_SSL", False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise env.ConfigurationError("EMAIL_USE_TLS and EMAIL_USE_SSL are both on; accepted: at most one of them")
EMAIL_TIMEOUT = env.env_int("EMAIL_TIMEOUT", 10, minimum=1, maximum=300)
DEFAULT_FROM_EMAIL = env.env_str("DEFAULT_FROM_EMAIL", "MarketMakerSuite <noreply@localhost>")

# --- Workers ------------------------------------------------------------------------------------
# Bots one worker process hosts at most; more processes or machines simply take more bots.
BOT_HOST_CAPACITY = env.env_int("MM_HOST_CAPACITY", 500, minimum=1, maximum=100_000)
# Plain PostgreSQL only (TimescaleDB uses its retention policies): book snapshots kept this long.
MARKETDATA_RETENTION_DAYS = env.env_int("MM_RETENTION_DAYS", 30, minimum=1, maximum=3650)
# Risk sweeps across bots: a user's combined daily loss, and an exchange account's exposure, in
# quote currency; unset means no such limit (per-bot limits live on each bot).
USER_DAILY_LOSS_LIMIT = env.env_decimal("MM_USER_DAILY_LOSS_LIMIT", None, minimum="0")
ACCOUNT_MAX_EXPOSURE = env.env_decimal("MM_ACCOUNT_MAX_EXPOSURE", None, minimum="0")
# Fat-finger guards (apps/bots/guards.py), as fractions of the account's value on the market: a
# new bot's default maximum order size and position, and the order size the new-bot form asks
# to confirm (naming the order's value).
DEFAULT_MAX_ORDER_FRACTION = env.env_decimal("MM_DEFAULT_MAX_ORDER_FRACTION", "0.25", minimum="0")
DEFAULT_MAX_POSITION_FRACTION = env.env_decimal("MM_DEFAULT_MAX_POSITION_FRACTION", "0.5", minimum="0")
LARGE_ORDER_FRACTION = env.env_decimal("MM_LARGE_ORDER_FRACTION", "0.1", minimum="0")

# --- Arbitrage tracker, backtests, notifications, dashboard -----------------------------------
ARBITRAGE_MIN_PROFIT = env.env_decimal("ARBITRAGE_MIN_PROFIT", "0", minimum="0")  # quote currency
ARBITRAGE_MIN_EDGE_BPS = env.env_decimal("ARBITRAGE_MIN_EDGE_BPS", "0", minimum="0")
ARBITRAGE_MAX_STALENESS_MS = env.env_int("ARBITRAGE_MAX_STALENESS_MS", 3000, minimum=1, maximum=600_000)
ARBITRAGE_DISCOUNT_BPS_PER_SECOND = env.env_decimal("ARBITRAGE_DISCOUNT_BPS_PER_SECOND", "2", minimum="0")
ARBITRAGE_MAX_BASE = env.env_decimal("ARBITRAGE_MAX_BASE", None, minimum="0")  # cap on size, base units
# Used until the fee/latency observatory has measured a venue.
ARBITRAGE_DEFAULT_LATENCY_MS = env.env_int("ARBITRAGE_DEFAULT_LATENCY_MS", 50, minimum=0, maximum=60_000)
ARBITRAGE_WATCH_VENUES = env.env_list("ARBITRAGE_WATCH_VENUES", []) or None  # None: every venue with a feed
BACKTEST_DEFAULT_LATENCY_MS = env.env_int("BACKTEST_DEFAULT_LATENCY_MS", 10, minimum=0, maximum=60_000)
# Recordings users upload: where the files live and how large one upload may be.
RECORDINGS_DIR = Path(env.env_str("RECORDINGS_DIR", str(BASE_DIR / "var" / "recordings")))
RECORDING_MAX_UPLOAD_MB = env.env_int("RECORDING_MAX_UPLOAD_MB", 200, minimum=1, maximum=100_000)
DASHBOARD_BOOK_PUSH_PER_S = env.env_float("DASHBOARD_BOOK_PUSH_PER_S", 10.0, minimum=0.1, maximum=100)
NOTIFICATIONS_HTTP_TIMEOUT = env.env_float("NOTIFICATIONS_HTTP_TIMEOUT", 10.0, minimum=0.1, maximum=120)
NOTIFICATIONS_MAX_ATTEMPTS = env.env_int("NOTIFICATIONS_MAX_ATTEMPTS", 5, minimum=1, maximum=50)
NOTIFICATIONS_RETRY_BASE_SECONDS = env.env_float("NOTIFICATIONS_RETRY_BASE_SECONDS", 5.0, minimum=0.01, maximum=3600)
NOTIFICATIONS_RETRY_MAX_SECONDS = env.env_float("NOTIFICATIONS_RETRY_MAX_SECONDS", 600.0, minimum=0.01, maximum=86400)
TELEGRAM_API_BASE = env.env_str("TELEGRAM_API_BASE", "https://api.telegram.org")
# Notification URLs that resolve to loopback/private/link-local addresses are refused (SSRF);
# only the test suite's local protocol servers turn this on.
NOTIFICATIONS_ALLOW_PRIVATE_HOSTS = env.env_bool("NOTIFICATIONS_ALLOW_PRIVATE_HOSTS", False)
# The daily summary goes out at minute 5 of this hour, UTC (written to the beat schedule by
# ``install_schedules``; an operator can change it in the admin afterwards).
NOTIFICATIONS_DAILY_SUMMARY_HOUR = env.env_int("NOTIFICATIONS_DAILY_SUMMARY_HOUR", 0, minimum=0, maximum=23)

# --- REST API ----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.accounts.authentication.FastTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "apps.core.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "apps.core.filters.FilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_THROTTLE_CLASSES": [
        "apps.core.throttling.AnonRateThrottle",
        "apps.core.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.env_rate("API_THROTTLE_ANON", "60/min"),
        "user": env.env_rate("API_THROTTLE_USER", "6000/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "MarketMakerSuite API",
    "DESCRIPTION": "Exchange accounts, markets, bots, orders, fills, PnL, arbitrage, backtests, notifications.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI and ReDoc are served from the vendored sidecar package: no CDN at run time.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several models have a "status" or "kind" field with different choices: name each enum.
    "ENUM_NAME_OVERRIDES": {
        "BacktestStatusEnum": "apps.backtests.models.RunStatus",
        "OrderStatusEnum": "apps.orders.models.OrderStatus",
        "DeliveryStatusEnum": "apps.notifications.models.DeliveryStatus",
        "VerifyStatusEnum": "apps.exchanges.models.VerifyStatus",
        "VenueKindEnum": "apps.exchanges.models.VenueKind",
        "ChannelKindEnum": "apps.notifications.models.ChannelKind",
        "EventKindEnum": "apps.notifications.models.EventKind",
        "IncidentKindEnum": "apps.core.models.IncidentKind",
    },
}

# --- Web server (mmsite.http) ------------------------------------------------------------------
# HTTP requests run on this many threads per web process, each keeping its database connection.
WEB_THREADS = env.env_int("WEB_THREADS", 2, minimum=1, maximum=256)
# Largest request body accepted (413 above it); the API takes JSON documents only.
WEB_MAX_BODY_BYTES = env.env_int("WEB_MAX_BODY_BYTES", 10 * 1024 * 1024, minimum=1024, maximum=1024**3)

# --- Health ------------------------------------------------------------------------------------
# A worker heartbeat, beat's last tick or the supervisor's last run older than this (seconds)
# is reported as down by /healthz.
HEALTH_HEARTBEAT_MAX_AGE = 30

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Request hardening (apps.core.jsondepth) ----------------------------------------------------
# JSON documents (API bodies, any view's JSON body, websocket messages, JSON typed into forms)
# nesting arrays/objects deeper than this are refused with 400 before they are parsed.
JSON_MAX_DEPTH = env.env_int("JSON_MAX_DEPTH", 64, minimum=8, maximum=500)
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.common.CommonMiddleware"), "apps.core.jsondepth.JSONDepthMiddleware"
)

# --- Sign-in throttle (apps.accounts.throttle) and the client address (apps.core.clientaddr) -----
# LOGIN_MAX_FAILURES (above) failures lock a username for LOGIN_BACKOFF_BASE_SECONDS, doubling
# with each further failure up to LOGIN_LOCKOUT_SECONDS; the count is forgotten this long after
# the last failure. A (username, address) pair that signed in within LOGIN_KNOWN_ADDRESS_DAYS is
# locked on its own and is not address-rate-limited.
LOGIN_BACKOFF_BASE_SECONDS = env.env_int("LOGIN_BACKOFF_BASE_SECONDS", 30, minimum=1, maximum=86400)
LOGIN_FAILURE_MEMORY_SECONDS = env.env_int("LOGIN_FAILURE_MEMORY_SECONDS", 86400, minimum=60, maximum=30 * 86400)
LOGIN_KNOWN_ADDRESS_DAYS = env.env_int("LOGIN_KNOWN_ADDRESS_DAYS", 30, minimum=1, maximum=365)
# Sign-in attempts per client address (other than from known pairs): over it, a short wait.
LOGIN_ADDRESS_RATE = env.env_rate("LOGIN_ADDRESS_RATE", "30/min")
# Reverse proxies (addresses or networks, comma-separated) whose X-Forwarded-For is believed;
# from any other peer the header is ignored. Empty: the connection's address is the client's.
TRUSTED_PROXIES = env.env_list("TRUSTED_PROXIES", [])
try:
    import ipaddress as _ipaddress

    for _proxy in TRUSTED_PROXIES:
        _ipaddress.ip_network(_proxy, strict=False)
except ValueError as _exc:
    raise env.ConfigurationError(
        f"TRUSTED_PROXIES: {_exc}; accepted: comma-separated addresses or networks, e.g. '10.0.0.5,172.18.0.0/16'"
    ) from None
# The schema lists each operation's error responses too (apps/core/schema.py).
REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"] = "apps.core.schema.AutoSchema"
SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"] = [
    "drf_spectacular.hooks.postprocess_schema_enums",
    "apps.core.schema.postprocess",
]
# The API takes JSON bodies (form encodings cannot carry its nested objects and lists); the token
# endpoint also takes a form (apps/accounts/api.py).
REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"] = ["apps.core.jsondepth.JSONParser"]
REST_FRAMEWORK["DEFAULT_FILTER_BACKENDS"] = ["apps.core.filters.FilterBackend", "apps.core.filters.OrderingFilter"]

# --- Static files: compressed copies -----------------------------------------------------------
# collectstatic (scripts/demo.sh and the Docker build run it) writes a gzip copy beside every
# text asset; whitenoise sends it to browsers that accept gzip (plotly.min.js 4.8 MB -> 1.4 MB,
# the finance bundle most pages load 1.3 MB -> 0.4 MB).
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# With DEBUG the demo served static/ through the finders, uncompressed; once collectstatic has
# run, the collected, compressed copies are served instead (run it again after editing static/).
WHITENOISE_USE_FINDERS = DEBUG and not (STATIC_ROOT / "vendor" / "plotly.min.js.gz").exists()

# --- Metrics (apps/core/metrics.py, docs/metrics.md) -------------------------------------------
# Every process (web, Celery workers, bot hosts, beat, the Telegram poller) writes its Prometheus
# metrics to files in this directory (prometheus_client's multiprocess mode); the web endpoint
# ``/metrics`` collects them all. Empty: each process keeps its metrics in memory (the endpoint
# then shows the web process's own only).
METRICS_DIR = env.env_str("METRICS_DIR", str(BASE_DIR / "var" / "metrics") if DEBUG else "")
# ``/metrics`` answers a request carrying ``Authorization: Bearer <METRICS_TOKEN>`` or coming from
# one of METRICS_ALLOWED_NETWORKS; with neither set it refuses everyone.
METRICS_TOKEN = env.env_str("METRICS_TOKEN", "")
if METRICS_TOKEN and len(METRICS_TOKEN) < 16:
    raise env.ConfigurationError("METRICS_TOKEN is shorter than 16 characters; accepted: a random string of 16+")
METRICS_ALLOWED_NETWORKS = env.env_networks("METRICS_ALLOWED_NETWORKS", [])
MIDDLEWARE = ["apps.core.metrics.MetricsMiddleware", *MIDDLEWARE]

# --- Telegram control (apps/telegram, docs/desk.md) --------------------------------------------
# The bot token the poller (manage.py telegram_poll) reads commands with; empty: the poller
# refuses to start. Users link their chat from Settings with a one-time code.
TELEGRAM_CONTROL_BOT_TOKEN = env.env_str("TELEGRAM_CONTROL_BOT_TOKEN", "")
TELEGRAM_CONTROL_CODE_TTL_S = env.env_int("TELEGRAM_CONTROL_CODE_TTL_S", 600, minimum=30, maximum=86400)
TELEGRAM_CONTROL_CONFIRM_TTL_S = env.env_int("TELEGRAM_CONTROL_CONFIRM_TTL_S", 60, minimum=5, maximum=3600)
INSTALLED_APPS = [*INSTALLED_APPS, "apps.telegram"]

# --- Live bots' dead man's switch (workers/deadman.py) ------------------------------------------
# The exchange cancels a live bot's orders this long after its host last re-armed the countdown
# (venues with a countdown cancel-all); re-armed every second while the bot's lease is held.
DEADMAN_COUNTDOWN_MS = env.env_int("MM_DEADMAN_COUNTDOWN_MS", 15_000, minimum=1000, maximum=600_000)
# A live perpetual bot reads its position and the funding rate from the exchange this often.
PERP_POLL_MS = env.env_int("MM_PERP_POLL_MS", 5_000, minimum=200, maximum=600_000)
# A difference between the exchange's position and the booked one that the exchange's position
# stream shows is checked by a fetchPositions read this long after (longer than a fill takes to
# reach the bot; workers.perp_stream).
PERP_STREAM_CONFIRM_MS = env.env_int("MM_PERP_STREAM_CONFIRM_MS", 2_000, minimum=200, maximum=600_000)
# A live perpetual bot's streamed mark price (workers.perp_mark_stream) quiet this long is no longer
# trusted: the poll gives the mark and funding again until an update arrives.
PERP_MARK_STALE_MS = env.env_int("MM_PERP_MARK_STALE_MS", 10_000, minimum=500, maximum=600_000)
