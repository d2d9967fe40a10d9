"""Production: everything that matters must come from the environment; refuse to start without it."""

import os

from django.core.exceptions import ImproperlyConfigured

from webapp.settings.base import *  # noqa: F403
from webapp.settings.base import env

_missing = [name for name in ("SECRET_KEY", "ALLOWED_HOSTS", "CACHE_URL") if not os.environ.get(name, "").strip()]
if _missing:
    # The base settings have local defaults for these; production must never fall back on them.
    raise ImproperlyConfigured(
        "production settings need SECRET_KEY, ALLOWED_HOSTS and CACHE_URL in the environment; missing: "
        + ", ".join(_missing)
    )
if CACHES["default"]["BACKEND"].endswith(("locmem.LocMemCache", "dummy.DummyCache")):
    # Throttles (uploads, writes, sign-in) count in the cache: a per-process cache lets each gunicorn process count
    # on its own, N processes N times the limit.
    raise ImproperlyConfigured(
        "CACHE_URL must name a cache shared by every process (redis://…, as compose runs), not "
        + os.environ["CACHE_URL"]
    )
DEBUG = False
# Hashed names (cached for a year by WhiteNoise) and gzip/brotli copies, made by collectstatic.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "webapp.staticstorage.StaticStorage"},
}
SECRET_KEY = env.str("SECRET_KEY")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
