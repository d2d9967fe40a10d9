"""Who is asking: the client's address, trusting X-Forwarded-For only from proxies this deployment names.

DRF's own get_ident believes X-Forwarded-For from anyone (with NUM_PROXIES unset it keys by the whole header), so a
client that sent a new value on each try was a new address each time: wrong passwords were never limited, and the
limit it could reach was the real address's. Here a header is read only when the request comes from one of
TRUSTED_PROXIES (addresses or networks; none by default), and then the address is the nearest hop that is not one of
them: the client as the first trusted proxy saw it.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from rest_framework import throttling


@lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(p.strip(), strict=False) for p in proxies if p.strip())


def _trusted(address: str, networks) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(request) -> str:
    meta = getattr(request, "META", {})
    remote = meta.get("REMOTE_ADDR", "") or "unknown"
    networks = _networks(tuple(settings.TRUSTED_PROXIES))
    if not networks or not _trusted(remote, networks):
        return remote
    hops = [hop.strip() for hop in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            return hop
    return remote


class ScopedRateThrottle(throttling.ScopedRateThrottle):
    """DRF's scoped throttle, keyed by ``client_address`` for anonymous requests."""

    def get_ident(self, request):
        return client_address(request)
