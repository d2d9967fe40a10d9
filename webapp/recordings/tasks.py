from celery import shared_task
from django.conf import settings

# a video's analysis: redelivered if its worker is lost (each task is safe to run twice), within the time limit
_ON_A_WORKER = dict(
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.RECORDING_TIME_LIMIT,
    time_limit=settings.RECORDING_TIME_LIMIT + 60,
)


@shared_task(name="webapp.recordings.tasks.analyze", **_ON_A_WORKER)
def analyze(recording_id: int) -> None:
    """Takes a recording id; the file and the rate are read from its row. Safe to deliver twice."""
    from webapp.recordings.services import recording_analyze

    recording_analyze(recording_id)


@shared_task(name="webapp.recordings.tasks.analyze_segment", **_ON_A_WORKER)
def analyze_segment(recording_id: int, index: int) -> None:
    """One share of a long file (ml.video.segments); the worker that finishes the last joins them. Safe to deliver
    twice: a share already written is not analysed again."""
    from webapp.recordings.services import recording_analyze_segment

    recording_analyze_segment(recording_id, index)
