from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from ml.datasets import READERS, DatasetError, count_lines
from webapp.faces.interchange.services import faces_import


class Command(BaseCommand):
    help = (
        "Import faces and their labels from a Kaggle keypoints, FER2013 or icml CSV (plain or .gz), or a Label "
        "Studio JSON export. Idempotent."
    )

    def add_arguments(self, parser):
        parser.add_argument("--format", required=True, choices=[*READERS, "label-studio"])
        parser.add_argument(
            "--relabel",
            action="store_true",
            help="faces already present take this file's label (repairs an import read in the wrong format)",
        )
        parser.add_argument(
            "--add-classes",
            action="store_true",
            help="a class name the label set lacks is added to it (default: such a row is a bad row)",
        )
        parser.add_argument("path")

    def handle(self, *args, path, format, relabel=False, add_classes=False, **options):
        quiet = options["verbosity"] == 0
        if format == "label-studio":
            return self._label_studio(path)
        try:
            total = count_lines(path)
        except OSError as exc:
            raise CommandError(f"{path}: {exc}") from exc
        except DatasetError as exc:
            raise CommandError(str(exc)) from exc
        # rows are read and stored a chunk at a time: one bar over the file's rows
        bar = tqdm(total=total, desc="importing", unit="row", disable=quiet, mininterval=0.5)

        def on_read(line: int) -> None:
            bar.update(line - bar.n)

        try:
            report = faces_import(path=path, fmt=format, on_read=on_read, relabel=relabel, add_classes=add_classes)
        except DatasetError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            bar.close()
        for error in report.errors:
            self.stderr.write(f"skipped {error}")
        self.stdout.write(self.style.SUCCESS(report.summary()))

    def _label_studio(self, path: str) -> None:
        from pathlib import Path

        from webapp.faces.interchange.labelstudio.protocol import TaskError, read_export
        from webapp.faces.interchange.labelstudio.services import faces_import_label_studio

        try:
            payload = read_export(Path(path).read_text(encoding="utf-8-sig"))
            report = faces_import_label_studio(payload=payload, author=None, name=Path(path).name)
        except (OSError, ValueError, TaskError) as exc:
            raise CommandError(f"{path}: {exc}") from exc
        for error in report.errors:
            self.stderr.write(f"skipped {error}")
        self.stdout.write(self.style.SUCCESS(report.summary()))
