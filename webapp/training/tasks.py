from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings


@shared_task(
    name="webapp.training.tasks.retrain",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.TRAINING_SOFT_TIME_LIMIT,
    time_limit=settings.TRAINING_TIME_LIMIT,
)
def retrain(run_id: int) -> None:
    """Takes a run id; everything else is read from the database. Safe to deliver twice."""
    from webapp.training.services import run_execute

    run_execute(run_id)


@worker_ready.connect
def _reap_on_start(**_):
    """A worker that starts after a crash marks the runs its predecessor left running as failed."""
    from webapp.training.services import runs_reap_stale

    runs_reap_stale()
