"""The served model's guess of imported faces (a new user's finding: 7,454 of 7,472 imported faces had none, so the
Faces page's guess filters and "label differs from guess" showed nothing after an import). A real worker makes them."""

import io
import time

import pytest
from django.core.management import call_command

from tests import csvs
from webapp.faces.models import Face, Prediction

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def served(settings, repo_root, dirs):
    from webapp.registry.services import baseline_register

    settings.BASELINE_MODELS_DIR = repo_root / "models" / "baseline"
    return {v.kind: v for v in baseline_register() if v.number == 1}


def _import(client, path):
    with path.open("rb") as f:
        upload = io.BytesIO(f.read())
    upload.name = path.name
    response = client.post("/api/datasets/import/", {"format": "fer2013", "file": upload}, format="multipart")
    assert response.status_code == 201, response.content
    return response.json()


def test_an_imports_faces_get_the_served_models_guess_from_a_worker(
    start_worker, redis_broker, served, staff_client, dirs
):
    from webapp.registry.selectors import version_labels

    start_worker()
    rows = [csvs.fer_row([0, 3, 4, 5][i % 4], 500 + i) for i in range(12)]
    report = _import(staff_client, csvs.write(dirs / "lab.csv", csvs.FER_HEADER, rows))
    assert report["created"] == 12 and "being made by a worker" in report["guesses"]
    deadline = time.monotonic() + 120
    while Prediction.objects.count() < 12 and time.monotonic() < deadline:
        time.sleep(0.3)
    labels = version_labels(served["emotion"])
    for prediction in Prediction.objects.all():
        assert prediction.version == served["emotion"] and prediction.author is None
        assert len(prediction.probabilities) == len(labels) and abs(sum(prediction.probabilities) - 1) < 1e-3
        assert prediction.uncertainty == pytest.approx(1 - max(prediction.probabilities), abs=1e-6)
    assert not Face.objects.filter(emotion_uncertainty__isnull=True).exists()  # the emotion queue's order too
    listed = staff_client.get("/api/faces/?limit=100").json()["results"]
    assert all(face["guess"] in labels for face in listed)
    differ = staff_client.get("/api/faces/?mismatch=true").json()["count"]
    agree = staff_client.get("/api/faces/?mismatch=false").json()["count"]
    assert differ + agree == 12  # every face has a label and a guess to compare
    # importing the same file again adds nothing, and guesses nothing twice
    assert _import(staff_client, dirs / "lab.csv")["created"] == 0 and Prediction.objects.count() == 12


def test_with_the_task_queue_down_the_import_lands_and_says_how_to_guess(served, staff_client, dirs, monkeypatch):
    from webapp.celery import app

    monkeypatch.setattr(app.conf, "broker_url", "redis://127.0.0.1:1/0")  # nothing listens there
    rows = [csvs.fer_row([0, 3, 4, 5][i % 4], 600 + i) for i in range(6)]
    report = _import(staff_client, csvs.write(dirs / "down.csv", csvs.FER_HEADER, rows))
    assert report["created"] == 6 and "run `manage.py guess_faces`" in report["guesses"]
    assert "run `manage.py guess_faces`" in report["summary"] and Prediction.objects.count() == 0
    out = io.StringIO()
    call_command("guess_faces", stdout=out)
    assert "6 faces guessed" in out.getvalue() and Prediction.objects.count() == 6
