"""Production: everything that matters must come from the environment; refuse to start without it."""

from django.core.exceptions import ImproperlyConfigured

from webapp.settings.base import *  # noqa: F403
from webapp.settings.base import env

DEBUG = False
try:
    SECRET_KEY = env.str("SECRET_KEY")
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
except ImproperlyConfigured as exc:
    raise ImproperlyConfigured(
        f"production settings need SECRET_KEY and ALLOWED_HOSTS in the environment: {exc}"
    ) from exc
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("production settings need a non-empty ALLOWED_HOSTS")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
