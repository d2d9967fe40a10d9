"""``manage.py guess_faces``: the served emotion model's guess of every face that has none from it, here and now
(an import queues the same on a worker; this is for when the task queue was down)."""

from django.core.management.base import BaseCommand

from webapp.faces.labeling.services import guesses_record


class Command(BaseCommand):
    help = "Record the served emotion model's guess of every face that has none from it (after an import)."

    def handle(self, *args, **options):
        self.stdout.write(self.style.SUCCESS(f"{guesses_record()} faces guessed"))
