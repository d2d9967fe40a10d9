from webapp.settings.base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast user creation in tests
TRAINING_MIN_FACES = 8
TRAINING_EPOCHS = 1
TRAINING_FINETUNE_EPOCHS = 1
TRAINING_HEARTBEAT_SECONDS = 1
TRAINING_HEARTBEAT_TIMEOUT = 4
