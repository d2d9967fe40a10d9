from webapp.settings.base import *  # noqa: F403
from webapp.settings.base import env

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast user creation in tests
# Small and quick; a test's worker may override them through its environment.
TRAINING_MIN_FACES = env.int("TRAINING_MIN_FACES", default=8)
TRAINING_EPOCHS = env.int("TRAINING_EPOCHS", default=1)
TRAINING_FINETUNE_EPOCHS = env.int("TRAINING_FINETUNE_EPOCHS", default=1)
TRAINING_HEARTBEAT_SECONDS = 1
QUEUE_COUNT_SECONDS = 0  # the queue's count exact at every request (a test of its cache sets it)
TRAINING_HEARTBEAT_TIMEOUT = 4
# A Redis database of its own, so a `make run` worker never takes the tests' tasks (and the reverse).
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/15")
if DATABASES["default"]["ENGINE"] == "webapp.sqlite":
    # A file, not :memory:, so that a real worker process can share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "pytest-db.sqlite3")}
