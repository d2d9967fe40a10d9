"""Each web request's time budget and body size, in one place: gunicorn (webapp/gunicorn.py), the proxy in front of
it (``manage.py proxy_config``, docs/deploy.md) and the app's own outgoing fetches (settings) all read them here.

Django-free on purpose: gunicorn reads this file before Django is set up. Every figure can be set in the environment.

- A client has ``HEADER_SECONDS`` to send its request line and headers and may pause at most ``BODY_SECONDS`` between
  two reads of a body; the proxy enforces both, and buffers the whole request before gunicorn sees it, so a slow or
  dripping client (slowloris) holds a few bytes of nginx, never a gunicorn worker (docs/deploy.md: measured).
- ``REQUEST_SECONDS``: the longest a request may take in the app. gunicorn's timeout and the proxy's read timeout
  are this; the app's own fetches (Label Studio's images) stop well inside it (``OUTGOING_SECONDS``).
"""

import os


def _number(name: str, default: float) -> float:
    value = float(os.environ.get(name, default))
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


HEADER_SECONDS = _number("REQUEST_HEADER_SECONDS", 10)
BODY_SECONDS = _number("REQUEST_BODY_SECONDS", 30)
REQUEST_SECONDS = _number("REQUEST_TIMEOUT_SECONDS", 60)
# what a request may spend waiting on other servers, all its fetches together: the rest is for its own work
OUTGOING_SECONDS = REQUEST_SECONDS / 2
