from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from ml.schema import PRESETS
from webapp.labels import selectors, services


class Command(BaseCommand):
    help = "Print the label set of a task, or change it: add, retire or reorder classes, or apply a preset."

    def add_arguments(self, parser):
        parser.add_argument("task", choices=["emotion"])
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--add", nargs="+", metavar="CLASS", help="add classes (a retired one comes back)")
        group.add_argument("--retire", nargs="+", metavar="CLASS", help="stop offering and training classes")
        group.add_argument("--order", metavar="A,B,C", help="the whole set in display order")
        group.add_argument("--preset", choices=list(PRESETS), help="one of the ready-made sets")
        parser.add_argument(
            "--serve",
            action="store_true",
            help="also serve the newest registered version trained on exactly this set (e.g. a shipped baseline)",
        )

    def handle(self, *args, task, add, retire, order, preset, serve=False, **options):
        try:
            if add:
                services.labelset_add(task=task, names=add)
            elif retire:
                services.labelset_retire(task=task, names=retire)
            elif order:
                services.labelset_change(task=task, labels=order.split(","), note="ordered")
            elif preset:
                services.labelset_preset(task=task, preset=preset)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        current = selectors.label_set(task=task)
        self.stdout.write(", ".join(current.labels))
        if current.retired:
            self.stdout.write(f"retired: {', '.join(current.retired)}")
        if serve:
            self._serve(task, current.labels)
        served = _served_labels(task)
        if served is not None and tuple(served) != current.labels:
            missing = [k for k in current.labels if k not in served]
            self.stdout.write(
                f"the served {task} version says {', '.join(served)}"
                + (f"; a retrain teaches it {', '.join(missing)}" if missing else "")
            )

    def _serve(self, task: str, labels) -> None:
        from webapp.registry.selectors import active_version, newest_version_with_labels
        from webapp.registry.services import version_promote

        version = newest_version_with_labels(kind=task, labels=labels)
        if version is None:
            raise CommandError(f"no registered {task} version says exactly {', '.join(labels)}: retrain to make one")
        if version != active_version(kind=task):
            version_promote(version=version, reason=f"serves the label set {', '.join(labels)}")
        self.stdout.write(f"serving {version}")


def _served_labels(task: str):
    from webapp.registry.selectors import active_version, version_manifest

    version = active_version(kind=task)
    return version_manifest(version).get("labels") if version else None
