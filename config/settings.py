"""Braid settings: one file, driven by environment variables.

Without DATABASE_URL / REDIS_URL Braid runs on the embedded default (SQLite
file, django-q2 ORM broker, in-memory channel layer). With them it runs on
PostgreSQL and Redis, and scales out by adding qcluster processes.
"""

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.cpus import available_cpus
from config.env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("BRAID_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

# The embedded default (no DATABASE_URL) is a developer's machine: DEBUG is on
# unless told otherwise, so a fresh clone's `manage.py` just works. With
# DATABASE_URL (production) DEBUG is off unless told otherwise, and then the
# development SECRET_KEY is refused.
DEBUG = env_bool("DEBUG", not env_str("DATABASE_URL"))
_DEV_SECRET = "braid-insecure-development-key-do-not-use-in-production"
SECRET_KEY = env_str("SECRET_KEY", _DEV_SECRET)
if SECRET_KEY == _DEV_SECRET and not DEBUG:
    raise ImproperlyConfigured(
        "SECRET_KEY is the development default while DEBUG is off. "
        "Set SECRET_KEY (or DEBUG=1 for local development)."
    )
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "django_prometheus",
    "channels",
    "apps.nodes",
    "apps.teams",
    "apps.workflows",
    "apps.engine",
    "apps.schedules",
    "apps.operations",
    "apps.live",
    "apps.api",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "apps.api.middleware.BodySizeLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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

# --- Database -------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=600)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
        if env_bool("BRAID_ASGI", False):
            # The web process (config/asgi.py): a request's thread is new each time,
            # so connections come from a pool of BRAID_DB_POOL_MAX and go back to
            # it when the request ends (a persistent one per thread would leak).
            # Workers and the ticker keep one persistent connection per thread.
            DATABASES["default"]["CONN_MAX_AGE"] = 0
            DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
                "min_size": 2, "max_size": env_int("BRAID_DB_POOL_MAX", 20),
                "timeout": env_float("BRAID_DB_POOL_TIMEOUT_S", 10.0)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env_str("BRAID_SQLITE_PATH", str(VAR_DIR / "braid.sqlite3")),
            # WAL lets readers go on while one writer commits; IMMEDIATE takes the
            # write lock at BEGIN so two writers never deadlock upgrading a read lock.
            "OPTIONS": {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": (
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                    "PRAGMA busy_timeout=30000;"
                ),
            },
            "TEST": {"NAME": env_str("BRAID_SQLITE_TEST_PATH", "") or None},
        }
    }
IS_POSTGRES = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: django-q2 broker, channel layer, cache ---------------------------
REDIS_URL = env_str("REDIS_URL")

# --- Braid engine ----------------------------------------------------------
_CPUS = available_cpus()
BRAID = {
    # Worker processes per qcluster; the engine coalesces wake-ups to this many.
    "WORKERS": env_int("BRAID_WORKERS", 2, minimum=1),
    # Node runs one worker claims at a time (group commit is the lever).
    "CLAIM_BATCH": env_int("BRAID_CLAIM_BATCH", 32, minimum=1),
    # PostgreSQL: prepare the engine's bulk statements (off behind a pooler that
    # cannot keep prepared statements, e.g. PgBouncer before 1.21 in transaction mode).
    "PG_PREPARE": env_bool("BRAID_PG_PREPARE", True),
    # Node runs one worker may have in flight at once (async I/O runs concurrently;
    # threads, processes and event-loop places are bounded per kind below).
    "MAX_INFLIGHT": env_int("BRAID_MAX_INFLIGHT", 256, minimum=1),
    # Threads for blocking (sync) handlers inside one worker, and processes for
    # CPU-bound `python` nodes that ask for them ("mode": "process"); both default
    # from the CPUs the container really has (affinity and cgroup quota).
    "THREADS": env_int("BRAID_THREADS", min(32, 4 * _CPUS), minimum=1),
    "PROCESSES": env_int("BRAID_PROCESSES", _CPUS, minimum=1),
    # Async (event-loop) handlers one worker runs at once: waiting on I/O costs a
    # coroutine, so hundreds fit (W5: 500 requests to a 100 ms server).
    "ASYNC_SLOTS": env_int("BRAID_ASYNC_SLOTS", 256, minimum=1),
    # A claimed node run belongs to its worker for this long without a heartbeat.
    "LEASE_S": env_float("BRAID_LEASE_S", 30.0, minimum=1.0),
    # A worker hands its wake-up back after this long so q2's timeout never hits it.
    "DRAIN_BUDGET_S": env_float("BRAID_DRAIN_BUDGET_S", 60.0, minimum=1.0),
    # On SIGTERM a worker finishes what it runs for this long, then hands the rest back.
    "HANDBACK_S": env_float("BRAID_HANDBACK_S", 25.0, minimum=0.0),
    # How many times a node may lose its worker (lease expiry) before it fails.
    "LEASE_LOSS_LIMIT": env_int("BRAID_LEASE_LOSS_LIMIT", 3, minimum=1),
    # Ticker: how often it wakes due timers, and how often it reaps.
    "TICK_S": env_float("BRAID_TICK_S", 0.1, minimum=0.01),
    "REAP_EVERY_S": env_float("BRAID_REAP_EVERY_S", 2.0, minimum=0.1),
    # READY work older than this with no wake-up queued gets a wake-up re-sent.
    "LOST_WAKEUP_S": env_float("BRAID_LOST_WAKEUP_S", 2.0, minimum=0.1),
    # "Why is it not moving?" says no worker is running after this long unseen.
    "WORKER_SILENT_S": env_float("BRAID_WORKER_SILENT_S", 60.0, minimum=1.0),
    # Limits on what users send.
    "MAX_DEFINITION_BYTES": env_int("BRAID_MAX_DEFINITION_BYTES", 256 * 1024),
    "MAX_NODES": env_int("BRAID_MAX_NODES", 500),
    "MAX_PAYLOAD_BYTES": env_int("BRAID_MAX_PAYLOAD_BYTES", 1024 * 1024),
    "MAX_NODE_TIMEOUT_S": env_float("BRAID_MAX_NODE_TIMEOUT_S", 900.0),
    # CEL expressions: size and nesting bounds checked before the library sees
    # one, and the time budget of one evaluation that is not proven cheap (it
    # then runs in one of EXPRESSION_PROCESSES sandbox processes).
    "EXPRESSION_MAX_CHARS": env_int("BRAID_EXPRESSION_MAX_CHARS", 4096, minimum=1),
    "EXPRESSION_MAX_DEPTH": env_int("BRAID_EXPRESSION_MAX_DEPTH", 100, minimum=1),
    "EXPRESSION_BUDGET_S": env_float("BRAID_EXPRESSION_BUDGET_S", 1.0, minimum=0.01),
    "EXPRESSION_PROCESSES": env_int("BRAID_EXPRESSION_PROCESSES", 2, minimum=1),
    # The HTTP node refuses private networks unless a host or CIDR is listed here.
    "HTTP_ALLOW": env_list("BRAID_HTTP_ALLOW", []),
    # An HTTP response body larger than this fails the node (read as it streams in).
    "HTTP_MAX_RESPONSE_BYTES": env_int("BRAID_HTTP_MAX_RESPONSE_BYTES", 1024 * 1024, minimum=1),
    # Connections per host held by one worker's shared HTTP client.
    "HTTP_MAX_CONNECTIONS": env_int("BRAID_HTTP_MAX_CONNECTIONS", 512, minimum=1),
}

# Queues: workers claim READY work by queue weight, then priority, then age.
# A queue can be paused (admin, services): its work waits, nothing is lost.
# `claim_batch` caps how many of a queue's runs one claim takes while heavier
# queues have work: bulk queues then take small bites, so a worker comes back for
# urgent work sooner (shorter transactions); alone, they get full bites.
# `timeout_s` and `retry` are the defaults for nodes that set none of their own;
# `retention_days` deletes finished executions (with their runs and events) that old.
# `worker_share` is the most of a worker's in-flight slots a queue's new work may take.
BRAID_QUEUES = {
    "realtime": {"weight": 8, "claim_batch": 32, "timeout_s": 30, "retention_days": 7},
    "default": {"weight": 4, "claim_batch": 32, "timeout_s": 300, "retention_days": 30},
    "scheduled": {"weight": 2, "claim_batch": 8, "timeout_s": 300, "retention_days": 30,
                  "worker_share": 0.75,
                  "retry": {"max_attempts": 3, "backoff_s": 5, "max_backoff_s": 300}},
    "background": {"weight": 1, "claim_batch": 2, "timeout_s": 300, "retention_days": 14,
                   "worker_share": 0.5,
                   "retry": {"max_attempts": 5, "backoff_s": 10, "max_backoff_s": 600}},
}
# Every node has a timeout: its own, else its queue's, else this. All stay within
# MAX_NODE_TIMEOUT_S, which django-q2's task timeout below is sized to outlast.
BRAID["NODE_TIMEOUT_S"] = env_float("BRAID_NODE_TIMEOUT_S", 300.0, minimum=1.0)
for _name, _policy in BRAID_QUEUES.items():
    if _policy.get("timeout_s", BRAID["NODE_TIMEOUT_S"]) > BRAID["MAX_NODE_TIMEOUT_S"]:
        raise ImproperlyConfigured(f"queue {_name!r}: timeout_s is above BRAID_MAX_NODE_TIMEOUT_S")

# django-q2 is only the wake-up channel: payloads are ids, results are not the
# record (the engine's tables are), and a lost task is re-sent by the ticker.
_Q_TIMEOUT = int(BRAID["DRAIN_BUDGET_S"] + BRAID["MAX_NODE_TIMEOUT_S"] + 60)
Q_CLUSTER = {
    "name": "braid",
    "workers": BRAID["WORKERS"],
    "recycle": 5000,
    "timeout": _Q_TIMEOUT,
    "retry": _Q_TIMEOUT + 60,  # keep timeout < retry or the ORM broker re-delivers
    "max_attempts": 1,
    "ack_failures": True,
    "queue_limit": 4,
    "save_limit": 20,
    "catch_up": False,
    "poll": env_float("BRAID_Q_POLL", 0.05, minimum=0.01),
    "label": "Task queue",
    "log_level": env_str("Q_LOG_LEVEL", "WARNING"),
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# Live progress: a channel's capacity is what a follower may fall behind by before
# messages drop (it then refills from the table, so 1,000 only saves queries).
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # channels-redis blocks 5 s in BZPOPMIN waiting for messages; redis-py 8's
            # default 5 s socket timeout would cut idle followers off mid-wait.
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}],
                       "capacity": 1000},
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer",
                                  "CONFIG": {"capacity": 1000}}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Live progress over WebSocket (apps/live, docs/live.md).
BRAID_LIVE = {
    "HEARTBEAT_S": env_float("BRAID_LIVE_HEARTBEAT_S", 20.0, minimum=0.05),
    # Embedded default: how often a web process with followers polls the event table.
    "POLL_S": env_float("BRAID_LIVE_POLL_S", 0.05, minimum=0.005),
    # ctx.emit chunks leave as one node.output.delta frame per this long or this size.
    "DELTA_FLUSH_S": env_float("BRAID_LIVE_DELTA_FLUSH_S", 0.05, minimum=0.005),
    "DELTA_MAX_BYTES": env_int("BRAID_LIVE_DELTA_MAX_BYTES", 4096, minimum=64),
    "TICKET_TTL_S": env_float("BRAID_LIVE_TICKET_TTL_S", 30.0, minimum=1.0),
}
# Alerts: how often the evaluator runs (once across all tickers) and how often each
# ticker's host records its resource sample. Rule defaults are in
# apps/operations/rules.py; override them per deployment here, or per rule in the admin.
BRAID_ALERT_EVERY_S = env_float("BRAID_ALERT_EVERY_S", 15.0, minimum=1.0)
BRAID_MONITOR_EVERY_S = env_float("BRAID_MONITOR_EVERY_S", 15.0, minimum=1.0)
BRAID_ALERT_RULES = {
    # The seed's environment names for the resource thresholds.
    "host_cpu": {"threshold": env_float("CPU_ALERT_THRESHOLD", 80.0)},
    "host_memory": {"threshold": env_float("MEMORY_ALERT_THRESHOLD", 85.0)},
}
# Alert e-mail goes through Django's mail settings (EMAIL_HOST…); the sender is:
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "braid@localhost")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)

# Prometheus scrapes /metrics with this bearer token (staff sessions may too).
BRAID_METRICS_TOKEN = env_str("BRAID_METRICS_TOKEN")

# --- Auth, API, i18n, static ---------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Team roles grant their ROLE_PERMISSIONS on the team's objects: admin and API agree.
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "apps.engine.team_roles.TeamRoleBackend",
]
# The API (apps/api): bearer tokens for programs, the session (with CSRF) for the
# browser; no Basic auth. Everything needs a login; tokens need the method's scope.
BRAID_API = {
    "MAX_BODY_BYTES": env_int("BRAID_API_MAX_BODY_BYTES", 2 * 1024 * 1024, minimum=1024),
    "MAX_JSON_DEPTH": env_int("BRAID_API_MAX_JSON_DEPTH", 64, minimum=8),
}
DATA_UPLOAD_MAX_MEMORY_SIZE = BRAID_API["MAX_BODY_BYTES"]
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.api.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "apps.api.permissions.TokenScope",
    ],
    "DEFAULT_THROTTLE_CLASSES": [
        "apps.api.throttling.PerTokenThrottle",
        "apps.api.throttling.PerUserThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "token": env_str("BRAID_API_TOKEN_RATE", "6000/min"),
        "user": env_str("BRAID_API_USER_RATE", "12000/min"),
    },
    "DEFAULT_PARSER_CLASSES": ["apps.api.parsers.SafeJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "apps.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "apps.api.errors.exception_handler",
    # `?format=export` is ours (a version's definition), not DRF's renderer switch.
    "URL_FORMAT_OVERRIDE": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Braid API",
    "DESCRIPTION": "Publish workflows, start and follow executions, operate queues and "
                   "schedules. Errors are always {\"error\": {\"code\", \"message\", "
                   "\"details\"}}. See docs/api.md.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # The Swagger UI's files come from drf-spectacular-sidecar through static/: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
# Executions take milliseconds: show times to the second everywhere.
FORMAT_MODULE_PATH = ["config.formats"]

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]

# --- Security (production) --------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True

LOG_FORMAT = env_str("LOG_FORMAT", "plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"()": "config.logformat.PlainFormatter",
                  "format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "config.logformat.JsonFormatter"},
    },
    # LOG_FORMAT=json: one JSON object a line, with execution, node and attempt fields.
    "handlers": {"console": {"class": "logging.StreamHandler",
                             "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django-q": {"level": env_str("Q_LOG_LEVEL", "WARNING")}},
}
