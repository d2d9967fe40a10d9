import re
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from webapp.faces.labeling.models import Annotation
from webapp.faces.labeling.services import summaries_refresh
from webapp.pages.permissions import LABELERS_GROUP
from webapp.registry.models import ActiveVersion
from webapp.registry.services import baseline_register, tflite_backfill


def credentials_path() -> Path:
    """Where the first admin password is kept: admin-password.txt for the default database (SQLite in VAR_DIR),
    a file named after the database for any other, so a test or second instance never overwrites the default's."""
    db = settings.DATABASES["default"]
    if str(db["NAME"]) == str(settings.VAR_DIR / "db.sqlite3"):
        return settings.VAR_DIR / "admin-password.txt"
    where = "-".join(str(part) for part in (db.get("HOST") or "local", Path(str(db["NAME"])).name) if part)
    return settings.VAR_DIR / f"admin-password-{re.sub(r'[^A-Za-z0-9._-]+', '_', where)}.txt"


class Command(BaseCommand):
    help = (
        "First-run set-up (idempotent): labelers group, shipped baseline models as v1, TFLite files of older "
        "versions, the Faces page's summary of faces labeled before it, a local admin account."
    )

    def handle(self, *args, **options):
        Group.objects.get_or_create(name=LABELERS_GROUP)
        for version in baseline_register():
            served = " and made it active" if ActiveVersion.objects.filter(version=version).exists() else ""
            self.stdout.write(f"registered the shipped baseline {version}{served}")
        missing = list(
            Annotation.objects.filter(face__summary__isnull=True).values_list("face_id", flat=True).distinct()
        )
        if missing:
            written = summaries_refresh(face_ids=missing)
            self.stdout.write(f"summarised {written} labeled faces for the Faces page (stored before it existed)")
        for version in tflite_backfill():
            self.stdout.write(f"wrote the TFLite file of {version} (the web process runs it with LiteRT)")
        User = get_user_model()
        if not User.objects.filter(is_superuser=True).exists():
            password = secrets.token_urlsafe(12)
            User.objects.create_superuser("admin", "admin@localhost", password)
            credentials = credentials_path()
            credentials.write_text(f"admin\n{password}\n")
            credentials.chmod(0o600)
            self.stdout.write(f"created the local admin: user 'admin', password '{password}' (saved in {credentials})")
        else:
            self.stdout.write(f"admin account exists (first password kept in {credentials_path()})")
