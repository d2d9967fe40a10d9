"""Settings from the environment (django-environ). Local defaults need nothing: SQLite and files under var/."""

from pathlib import Path

import environ

from webapp import limits

BASE_DIR = Path(__file__).resolve().parents[2]
VAR_DIR = Path(environ.Env().str("VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.Env(
    DEBUG=(bool, True),
    ALLOWED_HOSTS=(list, ["127.0.0.1", "localhost", "[::1]", "testserver"]),
)


def env_float(name: str, default: float | None) -> float | None:
    """A number setting. Not env.float: django-environ drops the "e" of "1e-4" (a separator guess) and fails."""
    raw = env.str(name, default="")
    if raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise environ.ImproperlyConfigured(f"{name} must be a number such as 0.01 or 1e-4, got {raw!r}") from None


DEBUG = env("DEBUG")
# A local, development-only default; production.py refuses to start without a real SECRET_KEY.
SECRET_KEY = env.str("SECRET_KEY", default="insecure-local-development-key-" + "x" * 20)
ALLOWED_HOSTS = env("ALLOWED_HOSTS")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from the package, not a CDN
    "webapp.labels",
    "webapp.faces",
    "webapp.registry",
    "webapp.training",
    "webapp.recordings",
    "webapp.pages",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files from STATIC_ROOT in every role that runs collectstatic (production); runserver serves them itself.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "webapp.urls"
WSGI_APPLICATION = "webapp.wsgi.application"

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
            ]
        },
    }
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server read while a worker writes; the timeout rides out short write locks. synchronous=NORMAL
    # is SQLite's advice for WAL: no fsync per commit (a power cut may lose the last commits, never corrupt the file),
    # which matters since every queue request writes its lease and SQLite has one writer at a time.
    DATABASES["default"]["ENGINE"] = "webapp.sqlite"  # Django's backend with a fair writer lock (webapp/sqlite)
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
# Reuse connections across requests (a new PostgreSQL connection per request cost more than the query itself).
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"  # one sign-in page: the admin's login redirects here too
LOGIN_REDIRECT_URL = "/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
# The image keeps its own (STATIC_ROOT=/app/staticfiles): under VAR_DIR, a volume made by an older image would keep
# serving that image's files after an upgrade.
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "staticfiles")))
# The browser's face detector, built from an npm package by `python -m ml detector` (make deps does it).
DETECTOR_DIR = Path(env.str("DETECTOR_DIR", default=str(BASE_DIR / "build" / "detector")))
# From node_modules, the folders the pages (and the benchmarks' face-api) load: collectstatic hashes and compresses
# each file it collects, and the whole of node_modules is 350 MB.
VENDOR_DIRS = [
    "@tensorflow/tfjs/dist",
    "@tensorflow/tfjs-backend-wasm/dist",
    "@vladmandic/face-api/dist",
    "@vladmandic/face-api/model",
    "chart.js/dist",
]
STATICFILES_DIRS = [
    BASE_DIR / "static",
    ("detector", DETECTOR_DIR),
    *((f"vendor/{folder}", BASE_DIR / "node_modules" / folder) for folder in VENDOR_DIRS),
]
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = "/media/"  # face images are served through the API (labelers only), never from here
# Exported model versions: models/<kind>/v<N>/, each written once and never modified.
MODELS_ROOT = Path(env.str("MODELS_ROOT", default=str(VAR_DIR / "models")))
# The small baseline exports that ship in the repository, registered as v1 on a fresh install.
BASELINE_MODELS_DIR = Path(env.str("BASELINE_MODELS_DIR", default=str(BASE_DIR / "models" / "baseline")))

# Uploads: JPEG/PNG/WEBP only, decoded to check; the pixel limit also lowers Pillow's bomb guard.
UPLOAD_MAX_BYTES = env.int("UPLOAD_MAX_BYTES", default=10 * 1024 * 1024)
UPLOAD_MAX_PIXELS = env.int("UPLOAD_MAX_PIXELS", default=40_000_000)
# An import over the web holds its rows in memory (~18 MB per 1,000 rows): larger files go through the command line.
IMPORT_MAX_ROWS = env.int("IMPORT_MAX_ROWS", default=60_000)
# a CSV uploaded to the Import page, as sent (a .gz counts compressed): 60,000 FER2013 rows are ~590 MB uncompressed
IMPORT_MAX_BYTES = env.int("IMPORT_MAX_BYTES", default=1024**3)
UPLOAD_MAX_ASPECT = env_float("UPLOAD_MAX_ASPECT", 8.0)  # longer side / shorter side: a strip holds no face
# Whole photos are brought down to this longer side before detection: the cost of finding faces stays bounded whatever
# the upload (a 40-megapixel photo in a few hundred ms), and the stored 96x96 crops lose nothing a face needs.
DETECT_MAX_SIDE = env.int("DETECT_MAX_SIDE", default=2048)
DATA_UPLOAD_MAX_MEMORY_SIZE = UPLOAD_MAX_BYTES + 1024 * 1024

# Label Studio: task images are fetched from this server alone, with its API token (as its own ML backends do), and
# its annotations reach our webhook; LABEL_STUDIO_RETRAIN: a new annotation there is imported and queues a retrain.
LABEL_STUDIO_URL = env.str("LABEL_STUDIO_URL", default="")
LABEL_STUDIO_API_KEY = env.str("LABEL_STUDIO_API_KEY", default="")
LABEL_STUDIO_TIMEOUT = env_float("LABEL_STUDIO_TIMEOUT", 10.0)  # one image, start to end (an import's each task)
# all the images of one request (a predict of many tasks), start to end: a dripping server holds no worker past it
LABEL_STUDIO_REQUEST_SECONDS = env_float("LABEL_STUDIO_REQUEST_SECONDS", limits.OUTGOING_SECONDS)
if max(LABEL_STUDIO_REQUEST_SECONDS, LABEL_STUDIO_TIMEOUT) >= limits.REQUEST_SECONDS:
    raise environ.ImproperlyConfigured(
        f"LABEL_STUDIO_REQUEST_SECONDS ({LABEL_STUDIO_REQUEST_SECONDS:g}) and LABEL_STUDIO_TIMEOUT "
        f"({LABEL_STUDIO_TIMEOUT:g}) must be shorter than a request's budget, REQUEST_TIMEOUT_SECONDS "
        f"({limits.REQUEST_SECONDS:g}; webapp/limits.py)"
    )
LABEL_STUDIO_RETRAIN = env.bool("LABEL_STUDIO_RETRAIN", default=False)
# A Label Studio JSON export uploaded over the web is parsed whole: larger ones go through `manage.py import_faces`
LABEL_STUDIO_IMPORT_MAX_BYTES = env.int("LABEL_STUDIO_IMPORT_MAX_BYTES", default=50 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

# Proxies (addresses or networks, comma-separated) whose X-Forwarded-For is believed when a request comes from them;
# none by default, so a client cannot pick the address its sign-in attempts are counted under (webapp.common.throttling)
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "webapp.pages.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["webapp.pages.permissions.IsLabeler"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "webapp.pages.pagination.Pagination",
    "DEFAULT_PARSER_CLASSES": [
        "webapp.pages.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_RATES": {
        "uploads": env.str("THROTTLE_UPLOADS", default="30/minute"),
        "writes": env.str("THROTTLE_WRITES", default="120/minute"),
        # sign-in attempts for a token, per client address: guessing passwords is slow
        "login": env.str("THROTTLE_LOGIN", default="10/minute"),
    },
    "EXCEPTION_HANDLER": "webapp.pages.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Emotion AI Studio API",
    "DESCRIPTION": "Faces, corrections, the labeling queue, model versions and retraining runs.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "TaskEnum": "webapp.faces.models.Task.choices",
        "RecordingSourceEnum": "webapp.recordings.models.RECORDING_SOURCES",
        "RecordingStatusEnum": "webapp.recordings.models.RECORDING_STATUSES",
        "FaceSourceEnum": "webapp.faces.store.models.FACE_SOURCES",
        "TrainingRunStatusEnum": "webapp.training.models.RUN_STATUSES",
    },
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "webapp.pages.schema.add_error_responses",
        "webapp.labels.schema.add_label_set_enum",
    ],
}

# Celery. An explicit CELERY_BROKER_URL wins. Otherwise the local Redis if it answers at start-up, else kombu's
# SQLAlchemy transport on a SQLite file in var/ (a real broker and worker either way, with nothing to install).
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"
SQLITE_BROKER_URL = f"sqla+sqlite:///{VAR_DIR / 'celery-broker.sqlite3'}"


def _redis_answers(host: str = "127.0.0.1", port: int = 6379) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=0.3) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="") or (
    LOCAL_REDIS_URL if _redis_answers() else SQLITE_BROKER_URL
)
CELERY_RESULT_BACKEND = None  # progress lives in TrainingRun rows, not in a result backend
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True  # a training killed with its worker is redelivered, not lost
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # one long training at a time per worker process
TRAINING_SOFT_TIME_LIMIT = env.int("TRAINING_SOFT_TIME_LIMIT", default=2 * 3600)
TRAINING_TIME_LIMIT = env.int("TRAINING_TIME_LIMIT", default=TRAINING_SOFT_TIME_LIMIT + 300)
# Longer than the hard limit, so Redis never hands a still-running training to a second worker. (Only Redis/SQS
# know this option; kombu's SQLAlchemy transport would pass it to create_engine, which refuses it.)
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {"visibility_timeout": TRAINING_TIME_LIMIT + 600} if CELERY_BROKER_URL.startswith(("redis", "sqs")) else {}
)
CELERY_TASK_ROUTES = {"webapp.training.tasks.retrain": {"queue": "training"}}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# Recorded video (webapp/recordings): a recording keeps at most this many per-frame results (a 2-hour session at 10
# frames/s with 4 faces is 288,000), a worker analyses files of at most this length, within this time.
RECORDING_MAX_ROWS = env.int("RECORDING_MAX_ROWS", default=300_000)
RECORDING_MAX_SECONDS = env.int("RECORDING_MAX_SECONDS", default=4 * 3600)
RECORDING_TIME_LIMIT = env.int("RECORDING_TIME_LIMIT", default=6 * 3600)
# a file longer than 1.5 x this is cut into shares of about this many seconds that several workers analyse at once
# (ml.video.segments; 0: one worker reads every file whole)
RECORDING_SEGMENT_SECONDS = env.float("RECORDING_SEGMENT_SECONDS", default=60.0)
# An uploaded video file's size limit (bytes); the browser analyses any size without uploading it.
RECORDING_MAX_UPLOAD_BYTES = env.int("RECORDING_MAX_UPLOAD_BYTES", default=2 * 1024**3)

# Retraining policy.
TRAINING_MIN_FACES = env.int("TRAINING_MIN_FACES", default=20)  # labeled faces needed, train + validation
# Epochs and rates come from the recipes (ml.train.RECIPES / FINETUNE_RECIPES: from scratch, for keypoints the very
# recipe that made the shipped baseline, for emotion its distilled student's schedule without the teachers). These
# override them when set, e.g. for quick trials; unset by default.
TRAINING_EPOCHS = env.int("TRAINING_EPOCHS", default=None)  # from scratch
TRAINING_FINETUNE_EPOCHS = env.int("TRAINING_FINETUNE_EPOCHS", default=None)
TRAINING_LEARNING_RATE = env_float("TRAINING_LEARNING_RATE", None)
TRAINING_FINETUNE_LEARNING_RATE = env_float("TRAINING_FINETUNE_LEARNING_RATE", None)
TRAINING_SEED = env.int("TRAINING_SEED", default=None)  # the recipes' 1337 unless set (benchmarks vary it)
TRAINING_VAL_PERCENT = env.int("TRAINING_VAL_PERCENT", default=15)
# A new version is promoted only if it beats the active one by this margin (px of RMSE / accuracy points).
PROMOTION_MARGIN_RMSE_PX = env_float("PROMOTION_MARGIN_RMSE_PX", 0.0)
PROMOTION_MARGIN_ACCURACY = env_float("PROMOTION_MARGIN_ACCURACY", 0.0)
# Automatic promotion needs this many validation faces (and, for emotion, every class among them), and the paired
# bootstrap interval of the improvement (at this confidence) above the margin; else the run stays a candidate.
PROMOTION_MIN_FACES = env.int("PROMOTION_MIN_FACES", default=200)
PROMOTION_CONFIDENCE = env_float("PROMOTION_CONFIDENCE", 0.95)
# Where users have labeled faces of their own (datasets beside the reference one, the largest unless named here), a
# retrain runs the domain recipe (ml.domain) and is judged per slice: the users' faces must improve beyond noise in a
# k-fold by person, from at least this many people and faces, and the reference slice (its fixed validation faces)
# may drop by at most the tolerance.
TRAINING_REFERENCE_DATASET = env.str("TRAINING_REFERENCE_DATASET", default="")
# The users' fine-tune is blended back toward the served version's weights (ml.recipes.DomainRecipe.blend: 0.5 for
# emotion); 1 serves the fine-tune as it is, for a team whose users are only its own people. Unset: the recipe's.
TRAINING_DOMAIN_BLEND = env_float("TRAINING_DOMAIN_BLEND", None)
if TRAINING_DOMAIN_BLEND is not None and not 0 < TRAINING_DOMAIN_BLEND <= 1:
    raise environ.ImproperlyConfigured(f"TRAINING_DOMAIN_BLEND must be in (0, 1], got {TRAINING_DOMAIN_BLEND}")
PROMOTION_TOLERANCE_ACCURACY = env_float("PROMOTION_TOLERANCE_ACCURACY", 0.01)
PROMOTION_TOLERANCE_RMSE_PX = env_float("PROMOTION_TOLERANCE_RMSE_PX", 0.05)
PROMOTION_MIN_GROUPS = env.int("PROMOTION_MIN_GROUPS", default=8)
PROMOTION_MIN_USER_FACES = env.int("PROMOTION_MIN_USER_FACES", default=40)
# Start a retrain automatically after this many new human labels of a kind (0: off).
AUTO_RETRAIN_AFTER_LABELS = env.int("AUTO_RETRAIN_AFTER_LABELS", default=0)
# How long the labeling queue keeps a served face for its labeler (the label page renews it every third of this).
LABEL_LEASE_SECONDS = env.int("LABEL_LEASE_SECONDS", default=120)
# The queue says how many faces still need a label exactly up to this many, and "more than this" beyond (counting every
# one of 100k faces on each request cost more than serving the face).
QUEUE_COUNT_LIMIT = env.int("QUEUE_COUNT_LIMIT", default=10_000)
# A bulk action on a face-list filter (the Faces page) changes at most this many faces at once.
BULK_MAX_FACES = env.int("BULK_MAX_FACES", default=100_000)
QUEUE_COUNT_SECONDS = env.int("QUEUE_COUNT_SECONDS", default=2)  # how long the label page's count is reused (0: never)
# How many labelers each face needs per task. 1: the newest human label is the label. 2 or more: the face stays in the
# queue (for labelers who have not labeled it) until that many have, then their consensus is the label; if they
# disagree (different emotions, or points further apart than REVIEW_POINT_PX on average) a reviewer decides.
LABELS_PER_FACE = env.int("LABELS_PER_FACE", default=1)
REVIEW_POINT_PX = env_float("REVIEW_POINT_PX", 2.0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
# A running training beats every few seconds; a run silent for longer than the timeout lost its worker.
TRAINING_HEARTBEAT_SECONDS = env.int("TRAINING_HEARTBEAT_SECONDS", default=10)
TRAINING_HEARTBEAT_TIMEOUT = env.int("TRAINING_HEARTBEAT_TIMEOUT", default=120)
