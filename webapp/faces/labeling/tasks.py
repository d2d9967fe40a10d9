from celery import shared_task
from django.db import transaction

from webapp.common.broker import BrokerUnavailable, broker_check


@shared_task(name="webapp.faces.labeling.tasks.guess", acks_late=True, reject_on_worker_lost=True)
def guess() -> int:
    """The served emotion model's guess of every face that has none from it (after an import). Idempotent."""
    from webapp.faces.labeling.services import guesses_record

    return guesses_record()


def guess_later() -> str:
    """Queue ``guess`` once the transaction commits; what the import report says of it. The import never fails on
    this: with the task queue down it says how to run it by hand."""
    try:
        broker_check()
    except BrokerUnavailable as exc:
        return f"the model's guesses were not queued ({exc}): run `manage.py guess_faces`"
    transaction.on_commit(guess.delay)
    return "the served model's guesses of the new faces are being made by a worker"
