from django.core.management.base import BaseCommand, CommandError

from webapp.training import services
from webapp.training.management.commands.retrain import follow
from webapp.training.models import TrainingRun


class Command(BaseCommand):
    help = (
        "Score every labeled face of the users' slices by how unlikely models that never saw its person find its "
        "label (k folds by person, on the workers); the Faces page and GET /api/faces/?ordering=-emotion_suspicion "
        "then list the likeliest wrong labels first."
    )

    def add_arguments(self, parser):
        parser.add_argument("--kind", default="emotion", choices=["emotion", "keypoints"])
        parser.add_argument("--wait", action="store_true", help="print progress until the check ends")

    def handle(self, *args, kind, wait, **options):
        try:
            run, created = services.run_request(kind=kind, trigger="command", job=TrainingRun.Job.LABEL_CHECK)
        except services.BrokerUnavailable as exc:
            raise CommandError(str(exc)) from exc
        if not created and run.job != TrainingRun.Job.LABEL_CHECK:
            raise CommandError(f"run {run.pk} ({run.job} of {kind}) is {run.status}; check the labels when it ends")
        self.stdout.write(f"label check: run {run.pk} {'queued' if created else f'already {run.status}; following it'}")
        if wait:
            follow(run, self.stdout)
            self.stdout.write(self.style.SUCCESS(f"run {run.pk} succeeded: {run.decision}"))
