"""manage.py bootstrap: first-run set-up that never clobbers another instance's admin password file."""

import pytest
from django.core.management import call_command

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media")]


def test_bootstrap_against_another_database_keeps_the_default_password_file(settings, capsys):
    default_file = settings.VAR_DIR / "admin-password.txt"
    default_file.write_text("admin\nthe-default-instance-password\n")
    call_command("bootstrap")
    out = capsys.readouterr().out
    assert default_file.read_text() == "admin\nthe-default-instance-password\n"
    (written,) = [p for p in settings.VAR_DIR.glob("admin-password-*.txt")]
    password = written.read_text().split()[1]
    assert password in out and str(written) in out
    call_command("bootstrap")  # idempotent: the account exists, nothing is rewritten
    assert written.read_text().split()[1] == password and str(written) in capsys.readouterr().out


def test_the_default_database_keeps_its_usual_file(settings):
    from webapp.pages.management.commands.bootstrap import credentials_path

    settings.DATABASES = {
        **settings.DATABASES,
        "default": {**settings.DATABASES["default"], "NAME": settings.VAR_DIR / "db.sqlite3"},
    }
    assert credentials_path() == settings.VAR_DIR / "admin-password.txt"
