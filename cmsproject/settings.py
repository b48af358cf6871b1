"""Settings, read from the environment only.

Two modes, chosen by environment alone (DESIGN.md, Runtime):
- embedded (nothing set): SQLite in the project folder, local-memory cache, in-memory channel
  layer, Celery tasks run in-process;
- services (`DATABASE_URL` and/or `REDIS_URL` set): PostgreSQL, Redis for cache, channel layer
  and Celery broker.

With DEBUG off the secret key and allowed hosts are required: we fail at import rather than run
a production process with a guessable key.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
# Local state of the embedded mode (SQLite file, generated secrets); never committed.
VAR_DIR = Path(os.environ.get("CMS_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY is required when DEBUG is off.")
    # DEBUG only: the key `make run` keeps in var/, else a fresh one per process; never a literal.
    _key_file = VAR_DIR / "secret-key"
    SECRET_KEY = _key_file.read_text().strip() if _key_file.exists() else secrets.token_urlsafe(50)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS")
if not ALLOWED_HOSTS:
    if not DEBUG:
        raise ImproperlyConfigured("ALLOWED_HOSTS is required when DEBUG is off.")
    ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]

DATABASE_URL = os.environ.get("DATABASE_URL", "")
REDIS_URL = os.environ.get("REDIS_URL", "")
SERVICES_MODE = bool(DATABASE_URL and REDIS_URL)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",  # its DRF filter backend renders a form template in the browsable API
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "graphene_django",
    "channels",
    "cmsproject.apps.CmsProjectConfig",
    "content.apps.ContentConfig",
    "customers.apps.CustomersConfig",
    "analytics.apps.AnalyticsConfig",
    "segmentation.apps.SegmentationConfig",
    "experiments.apps.ExperimentsConfig",
]

MIDDLEWARE = [
    # Outermost: the request id, the server span and the duration cover every answer, early ones
    # included (cmsproject/observability/middleware.py).
    "cmsproject.observability.middleware.ObservabilityMiddleware",
    "cmsproject.middleware.BodySizeLimitMiddleware",
    "cmsproject.middleware.ApiTrailingSlashMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "cmsproject.security.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "cmsproject.audit.AuditMiddleware",
    # Innermost, unlike WhiteNoise's usual advice: it is the only sync-only middleware, and here
    # the sync view runs in the same thread after it, so an ASGI request pays one thread hop
    # instead of three (bench/README.md). The middleware above it are lazy for static requests.
    "whitenoise.middleware.WhiteNoiseMiddleware",
]

ROOT_URLCONF = "cmsproject.urls"
WSGI_APPLICATION = "cmsproject.wsgi.application"
ASGI_APPLICATION = "cmsproject.asgi.application"

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

# --- Database ---------------------------------------------------------------------------------
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # An unreachable host (not a refused connection) must not hold a request or a task for the
    # kernel's TCP timeout of two minutes: give up after 5 s, which answers 503 (cmsproject.errors).
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
else:
    SQLITE_PATH = Path(os.environ.get("CMS_SQLITE_PATH", VAR_DIR / "cms.sqlite3"))
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": SQLITE_PATH,
            # WAL lets the one web process read while a background job writes.
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
            "TEST": {"NAME": os.environ.get("CMS_SQLITE_TEST_PATH") or None},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache, channel layer, Celery ---------------------------------------------------------------
CACHE_KEY_PREFIX = os.environ.get("CMS_CACHE_PREFIX", "cms")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CACHE_KEY_PREFIX,
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 2, "SOCKET_TIMEOUT": 2},
        }
    }
    # Fail open when Redis is away: throttles allow, cached reads fall back to the database, and
    # what truly needs Redis (the event buffer) answers 503 itself; never a 500 from the cache.
    DJANGO_REDIS_IGNORE_EXCEPTIONS = True
    DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "cmsproject.channel_layer.BlockingPoolRedisChannelLayer",
            "CONFIG": {
                # No read timeout: the layer waits for messages with a 5 s blocking pop, and
                # redis-py's default 5 s socket timeout killed that read on idle sockets, closing
                # one socket about every 5 s under load (bench/README.md, whole-system load).
                "hosts": [{"address": REDIS_URL, "socket_timeout": None}],
                "prefix": f"{CACHE_KEY_PREFIX}:asgi",
            },
        }
    }
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    CELERY_TASK_ALWAYS_EAGER = False
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CELERY_BROKER_URL = "memory://"
    CELERY_RESULT_BACKEND = "cache+memory://"
    # Embedded mode: tasks run in the calling process; cmsproject.scheduler runs the beat schedule.
    CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
# Embedded mode runs sent tasks on a background thread; the test suite runs them inline instead.
CMS_EMBEDDED_TASKS_INLINE = env_bool("CMS_EMBEDDED_TASKS_INLINE", False)
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Workers and beat reconnect to a lost broker for as long as it takes (Celery's default gives up
# after 100 attempts, about 45 minutes, and the worker exits): the drain resumes by itself.
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_TIMEZONE = "UTC"

# --- Auth ---------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

if env_bool("CMS_TEST_FAST_HASHER", False):
    # Test runs only (pytest sets it): PBKDF2's deliberate slowness would dominate the suite.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=5),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=1),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    "AUTH_HEADER_TYPES": ("Bearer",),
}
# Cookie mode for web clients: HTTP-only JWT cookies, CSRF enforced on unsafe methods.
JWT_ACCESS_COOKIE = "cms_access"
JWT_REFRESH_COOKIE = "cms_refresh"
JWT_REFRESH_COOKIE_PATH = "/api/v1/auth/"

COOKIES_SECURE = env_bool("CMS_COOKIES_SECURE", not DEBUG)
SESSION_COOKIE_SECURE = COOKIES_SECURE
CSRF_COOKIE_SECURE = COOKIES_SECURE
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if env_bool("CMS_BEHIND_TLS_PROXY", False):
    # Production behind a TLS-terminating proxy: trust its scheme header, insist on HTTPS.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("CMS_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = int(os.environ.get("CMS_HSTS_SECONDS", 60 * 60 * 24 * 30))
CSRF_FAILURE_VIEW = "cmsproject.errors.csrf_failure"

# Browser origins allowed to open the WebSocket (clients without an Origin are allowed).
CMS_ALLOWED_ORIGINS = env_list("CMS_ALLOWED_ORIGINS")

# --- REST API -----------------------------------------------------------------------------------
CMS_THROTTLE_RATES = {
    "anon": os.environ.get("CMS_THROTTLE_ANON", "100/min"),
    "user": os.environ.get("CMS_THROTTLE_USER", "1000/min"),
    "api_key": os.environ.get("CMS_THROTTLE_API_KEY", "1000/min"),
    "events": os.environ.get("CMS_THROTTLE_EVENTS", "600/min"),
    "login": os.environ.get("CMS_THROTTLE_LOGIN", "10/min"),
}
CMS_MAX_BODY_BYTES = int(os.environ.get("CMS_MAX_BODY_BYTES", 1024 * 1024))
DATA_UPLOAD_MAX_MEMORY_SIZE = CMS_MAX_BODY_BYTES

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "cmsproject.auth.ApiKeyAuthentication",
        "cmsproject.auth.BearerJWTAuthentication",
        "cmsproject.auth.CookieJWTAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": [
        "cmsproject.throttling.AnonThrottle",
        "cmsproject.throttling.UserThrottle",
        "cmsproject.throttling.ApiKeyThrottle",
    ],
    "DEFAULT_PARSER_CLASSES": ["cmsproject.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "cmsproject.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "cmsproject.errors.problem_exception_handler",
    # Client IPs (throttles, audit) come from REMOTE_ADDR unless we sit behind known proxies;
    # trusting X-Forwarded-For by default would let anyone pick their own throttle bucket.
    "NUM_PROXIES": int(os.environ.get("CMS_NUM_PROXIES", 0)),
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append(
        "rest_framework.renderers.BrowsableAPIRenderer"
    )

SPECTACULAR_SETTINGS = {
    "TITLE": "Headless CMS API",
    "DESCRIPTION": "Content, customers, events, segments, experiments. Contract: shared/API.md.",
    "VERSION": "1.0.0",
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        # Every operation documents its problem+json errors (API.md, Conventions).
        "cmsproject.openapi.postprocess_problem_responses",
    ],
    # Two models have a `kind`: name each enum after its model, not after a hash.
    "ENUM_NAME_OVERRIDES": {
        "ContentTypeKindEnum": "content.models.EntryType.Kind",
        "SegmentKindEnum": "segmentation.models.Segment.Kind",
        "ExperimentStatusEnum": "experiments.models.Experiment.Status",
        "ExperimentMethodEnum": "experiments.models.Experiment.Method",
        "FlagKindEnum": "experiments.models.FeatureFlag.Kind",
    },
}

GRAPHENE = {
    "SCHEMA": "cmsproject.schema.schema",
    "ATOMIC_MUTATIONS": True,
}
CMS_GRAPHQL_MAX_DEPTH = int(os.environ.get("CMS_GRAPHQL_MAX_DEPTH", 10))
CMS_GRAPHQL_MAX_COST = int(os.environ.get("CMS_GRAPHQL_MAX_COST", 5000))
# How long an API key read from the database is trusted as is (cmsproject.services).
CMS_API_KEY_CACHE_SECONDS = int(os.environ.get("CMS_API_KEY_CACHE_SECONDS", 60))
# Introspection (`__schema`, `__type`) maps the whole API for an attacker: off in production
# unless asked for. Clients read the SDL in cmsproject/api_contracts/schema.graphql instead.
CMS_GRAPHQL_INTROSPECTION = env_bool("CMS_GRAPHQL_INTROSPECTION", DEBUG)

# Refuse events whose type has not been registered (else unknown types are stored schema-less).
CMS_EVENTS_STRICT_TYPES = env_bool("CMS_EVENTS_STRICT_TYPES", False)

CMS_AUDIT_RETENTION_DAYS = int(os.environ.get("CMS_AUDIT_RETENTION_DAYS", 90))

# The WebSocket address the demo storefront gives browsers, when a proxy publishes it elsewhere.
CMS_PUBLIC_WS_URL = os.environ.get("CMS_PUBLIC_WS_URL", "")

# --- Content -------------------------------------------------------------------------------------
# Entry locales; a read in a locale an entry lacks falls back to CMS_FALLBACK_LOCALE.
CMS_LOCALES = env_list("CMS_LOCALES", "en,fr,de,es")
CMS_DEFAULT_LOCALE = os.environ.get("CMS_DEFAULT_LOCALE", CMS_LOCALES[0])
CMS_FALLBACK_LOCALE = os.environ.get("CMS_FALLBACK_LOCALE", CMS_DEFAULT_LOCALE)
if {CMS_DEFAULT_LOCALE, CMS_FALLBACK_LOCALE} - set(CMS_LOCALES):
    raise ImproperlyConfigured("CMS_DEFAULT_LOCALE and CMS_FALLBACK_LOCALE must be in CMS_LOCALES.")
# Uploads are the one body allowed past CMS_MAX_BODY_BYTES, up to this size.
CMS_MEDIA_MAX_BYTES = int(os.environ.get("CMS_MEDIA_MAX_BYTES", 20 * 1024 * 1024))
CMS_MEDIA_MAX_PIXELS = int(os.environ.get("CMS_MEDIA_MAX_PIXELS", 50_000_000))
# Serve MEDIA_ROOT at MEDIA_URL from Django (content.media_serving_urls). Embedded mode has nothing
# else to serve it; production puts a proxy or object storage in front and turns this off.
CMS_SERVE_MEDIA = env_bool("CMS_SERVE_MEDIA", not SERVICES_MODE)
# Outgoing webhooks: first retry after this many seconds, doubling up to CMS_WEBHOOK_MAX_ATTEMPTS.
CMS_WEBHOOK_BACKOFF_SECONDS = float(os.environ.get("CMS_WEBHOOK_BACKOFF_SECONDS", 10))
CMS_WEBHOOK_MAX_ATTEMPTS = int(os.environ.get("CMS_WEBHOOK_MAX_ATTEMPTS", 8))
CMS_WEBHOOK_TIMEOUT_SECONDS = float(os.environ.get("CMS_WEBHOOK_TIMEOUT_SECONDS", 5))
# Published payloads stay cached until purged by tag; this bounds what an unpurged key can cost.
CMS_CONTENT_CACHE_SECONDS = int(os.environ.get("CMS_CONTENT_CACHE_SECONDS", 60 * 60 * 24))
# Readers' pages of a type's entries (REST and GraphQL): any change of the type's entries drops
# them; this is only the safety net should that notice be lost (content.cache).
CMS_CONTENT_LIST_CACHE_SECONDS = int(os.environ.get("CMS_CONTENT_LIST_CACHE_SECONDS", 300))

# --- Notifications ------------------------------------------------------------------------------
# Email through Django: SMTP from the environment when EMAIL_HOST is set, else the console (the
# embedded mode prints messages where `make run` shows its log).
if os.environ.get("EMAIL_HOST"):
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = os.environ["EMAIL_HOST"]
    EMAIL_PORT = int(os.environ.get("EMAIL_PORT", 587))
    EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
    EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
# Any Django email backend by name (e.g. the file backend with EMAIL_FILE_PATH, for a staging box).
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", EMAIL_BACKEND)
if os.environ.get("EMAIL_FILE_PATH"):
    EMAIL_FILE_PATH = os.environ["EMAIL_FILE_PATH"]
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "shop@example.com")
# Channel name -> adapter class. A new channel is an adapter (customers.notifications.Channel) and
# a line here (or in CMS_NOTIFICATION_CHANNELS="name=dotted.Path,..."), never a change elsewhere.
CMS_NOTIFICATION_CHANNELS = {
    "email": "customers.notifications.EmailChannel",
    "in_app": "customers.notifications.InAppChannel",
    "sms": "customers.notifications.LogSmsChannel",
    "webhook": "customers.notifications.WebhookChannel",
    **dict(pair.split("=", 1) for pair in env_list("CMS_NOTIFICATION_CHANNELS", "") if "=" in pair),
}
# Channels for a customer who has not chosen any (preferences.channels), in order.
CMS_NOTIFICATION_DEFAULT_CHANNELS = env_list("CMS_NOTIFICATION_DEFAULT_CHANNELS", "in_app,email")
CMS_NOTIFICATION_MAX_ATTEMPTS = int(os.environ.get("CMS_NOTIFICATION_MAX_ATTEMPTS", 5))
# Cross-device session state lives this long after its last write.
CMS_SESSION_STATE_TTL_SECONDS = int(os.environ.get("CMS_SESSION_STATE_TTL_SECONDS", 7 * 24 * 3600))

# --- i18n, static -------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("CMS_STATIC_ROOT", BASE_DIR / "staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if not env_bool("CMS_STATIC_MANIFEST", not DEBUG)
            else "cmsproject.staticfiles.GzipManifestStaticFilesStorage"
        )
    },
}
MEDIA_ROOT = Path(os.environ.get("CMS_MEDIA_ROOT", VAR_DIR / "media"))
MEDIA_URL = "media/"

# Bench views (a bare Django view and a bare DRF view) exist only when a benchmark asks for them.
CMS_BENCH_VIEWS = env_bool("CMS_BENCH_VIEWS", False)

# --- Operations: metrics, logs, traces (cmsproject/observability/) ------------------------------
# A Prometheus scraper's `Authorization: Bearer <token>` for GET /metrics; unset: staff only.
CMS_METRICS_TOKEN = os.environ.get("CMS_METRICS_TOKEN", "")
# Multi-process metrics (services mode): prometheus_client reads the environment variable itself,
# before Django starts. `cmsproject.run` sets it to this directory and empties it at start.
PROMETHEUS_MULTIPROC_DIR = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or VAR_DIR / "metrics")
# `json`: one object per line with request_id and trace_id, for a log pipeline (services mode);
# `plain`: readable in a terminal (embedded mode, `make run`).
LOG_FORMAT = os.environ.get("LOG_FORMAT") or ("json" if SERVICES_MODE else "plain")
if LOG_FORMAT not in {"json", "plain"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or plain, got {LOG_FORMAT!r}")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"()": "cmsproject.observability.logs.PlainFormatter"},
        "json": {"()": "cmsproject.observability.logs.JsonFormatter"},
    },
    "filters": {"request_ids": {"()": "cmsproject.observability.logs.RequestIdsFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_ids"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.request": {"level": "ERROR"},
        "uvicorn.access": {"level": "WARNING"},
    },
}
