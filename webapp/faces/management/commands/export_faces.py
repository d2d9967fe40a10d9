from pathlib import Path

from django.core.management.base import BaseCommand
from tqdm import tqdm

from webapp.faces.interchange.formats import WRITERS, count_for


class Command(BaseCommand):
    help = "Export faces with their current labels (newest human, else imported) as Kaggle CSV, FER2013 CSV or COCO."

    def add_arguments(self, parser):
        parser.add_argument("--format", required=True, choices=list(WRITERS))
        parser.add_argument("path")

    def handle(self, *args, path, format, **options):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tqdm(total=count_for(format), desc="exporting", unit="face", disable=options["verbosity"] == 0) as bar:
            n = WRITERS[format](path, progress=lambda done: bar.update(done - bar.n))
        self.stdout.write(self.style.SUCCESS(f"exported {n} faces to {path} ({format})"))
