"""One sign-in limit for both ways in (the session form /accounts/login/ and the token API): failed sign-ins are
counted per client address (common.throttling.client_address, trusted proxies only) in the shared cache, at most
THROTTLE_LOGIN of them in its period; a correct sign-in clears the count, so an office behind one address is not
locked out by its own successes."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import SimpleRateThrottle

from webapp.common.throttling import client_address


def _limit() -> tuple[int, int]:
    rate = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["login"]
    return SimpleRateThrottle.parse_rate(None, rate)


def _key(request) -> str:
    return f"signin-failures:{client_address(request)}"


def signin_wait(request) -> int:
    """Seconds until this address may try again (0: now)."""
    count, period = _limit()
    failures = [t for t in cache.get(_key(request), []) if t > time.time() - period]
    if len(failures) < count:
        return 0
    return max(1, int(failures[0] + period - time.time()) + 1)


def signin_failed(request) -> None:
    count, period = _limit()
    now = time.time()
    failures = [t for t in cache.get(_key(request), []) if t > now - period][-count:]
    cache.set(_key(request), [*failures, now], period)


def signin_succeeded(request) -> None:
    cache.delete(_key(request))
