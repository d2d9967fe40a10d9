import time

from django.core.management.base import BaseCommand, CommandError

from webapp.training import services
from webapp.training.models import TrainingRun


class Command(BaseCommand):
    help = "Ask the workers to retrain a model; with --wait, follow the run and fail if it fails."

    def add_arguments(self, parser):
        parser.add_argument("--kind", required=True, choices=["keypoints", "emotion"])
        parser.add_argument("--from-scratch", action="store_true", help="default: fine-tune the active version")
        parser.add_argument("--wait", action="store_true", help="print progress until the run ends")

    def handle(self, *args, kind, from_scratch, wait, **options):
        try:
            run, created = services.run_request(kind=kind, from_scratch=from_scratch, trigger="command")
        except services.BrokerUnavailable as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"run {run.pk} {'queued' if created else f'already {run.status}; following it'}")
        if created:
            plan = services.run_plan(kind=kind, from_scratch=from_scratch)
            self.stdout.write(
                f"plan: {plan['mode']} with the {plan['recipe']} recipe on {plan['faces']['train']} faces, up to "
                f"{plan['epochs']} epochs (estimated {plan['estimate']}, {plan['basis']})"
            )
        if wait:
            follow(run, self.stdout)
            self.stdout.write(self.style.SUCCESS(f"run {run.pk} succeeded: v{run.version.number}; {run.decision}"))


def follow(run: TrainingRun, out) -> None:
    """Print a run's progress until it ends; a run that did not succeed is a CommandError."""
    shown = ""
    while True:
        services.runs_reap_stale()
        run.refresh_from_db()
        line = f"{run.status} epoch {run.epoch}/{run.epochs or '?'}"
        if run.val_loss is not None:
            line += f" loss {run.loss:.5f} val_loss {run.val_loss:.5f}"
        if run.eta_seconds:
            line += f" eta {run.eta_seconds:.0f}s"
        if line != shown:
            out.write(line)
            shown = line
        if not run.is_active:
            break
        time.sleep(1)
    if run.status != TrainingRun.Status.SUCCEEDED:
        raise CommandError(f"run {run.pk} {run.status}: {run.error or run.log.splitlines()[-1:]}")
