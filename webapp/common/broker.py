"""Whether the Celery broker answers: asked before work is queued, so a request says the queue is down instead of
hanging or losing the work (training runs, recordings, the guesses after an import)."""

from webapp.celery import app


class BrokerUnavailable(Exception):
    pass


def broker_check() -> None:
    """Raise BrokerUnavailable unless the Celery broker answers now."""
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=0, timeout=2)
    except Exception as exc:  # kombu raises many transport-specific errors
        raise BrokerUnavailable(
            f"the task queue ({app.conf.broker_url.split('://')[0]}) is not reachable: {exc}"
        ) from exc
