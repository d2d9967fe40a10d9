from celery import shared_task
from django.conf import settings


@shared_task(
    name="webapp.recordings.tasks.analyze",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.RECORDING_TIME_LIMIT,
    time_limit=settings.RECORDING_TIME_LIMIT + 60,
)
def analyze(recording_id: int) -> None:
    """Takes a recording id; the file and the rate are read from its row. Safe to deliver twice."""
    from webapp.recordings.services import recording_analyze

    recording_analyze(recording_id)
