"""What a retrain would do, shown before anyone starts one: faces, recipe, estimated time."""

import pytest

from tests import csvs
from webapp.training.models import TrainingRun

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_plan_names_the_recipe_faces_and_an_estimate(labeled_faces, staff_client):
    body = staff_client.get("/api/training-runs/plan/?kind=keypoints&from_scratch=true").json()
    assert body["mode"] == "from scratch" and body["recipe"] == "from-scratch" and body["schedule"] == "cosine"
    assert body["faces"]["train"] + body["faces"]["val"] == 30 and body["estimated_seconds"] > 0
    assert "shipped baseline" in body["basis"] and body["estimate"].endswith(("s", "min", "h"))
    fine = staff_client.get("/api/training-runs/plan/?kind=emotion").json()
    assert fine["mode"] == "fine-tune" and fine["recipe"] == "fine-tuning"
    assert body["blocked"] is None and fine["blocked"] is None
    assert TrainingRun.objects.count() == 0  # a plan starts nothing


def test_the_estimate_follows_this_workers_last_run(labeled_faces, staff_client):
    TrainingRun.objects.create(
        kind="keypoints",
        status=TrainingRun.Status.SUCCEEDED,
        metrics={"train_seconds": 100.0, "epochs_run": 10, "n_train": 10},  # 1 s per face and epoch
    )
    body = staff_client.get("/api/training-runs/plan/?kind=keypoints&from_scratch=1").json()
    assert body["estimated_seconds"] == pytest.approx(body["epochs"] * body["faces"]["train"] * 1.0)
    assert "run " in body["basis"]


@pytest.mark.parametrize(
    ("query", "status"), [("kind=keypoints", 403), ("kind=nope", 400), ("kind=emotion&from_scratch=maybe", 400)]
)
def test_a_bad_plan_request_is_a_clear_4xx(labeled_faces, staff_client, client_for, query, status):
    client = client_for("labeler") if status == 403 else staff_client
    assert client.get(f"/api/training-runs/plan/?{query}").status_code == status


def test_the_plan_says_when_a_retrain_would_fail_at_once(staff_client, dirs):
    """Seven keypoint faces, none in validation: the plan says so (the Models page disables Retrain with it)."""
    from webapp.faces.interchange.services import faces_import

    faces_import(path=csvs.keypoints_csv(dirs / "few.csv", n=7), fmt="kaggle-keypoints")
    body = staff_client.get("/api/training-runs/plan/?kind=keypoints").json()
    assert body["blocked"].startswith("Not enough labeled keypoints faces to train: 7 (")
    assert staff_client.get("/api/training-runs/plan/?kind=emotion").json()["blocked"].startswith("Not enough")


def test_the_plan_checks_the_reference_dataset_as_the_run_does_and_says_how_to_fix_it(staff_client, dirs):
    """A new user's finding: the first 2,000 lines of FER2013 (all Training rows), then a later chunk: the plan said a
    retrain was possible and the run failed 25 s later on the reference file's 0 validation faces."""
    from webapp.faces.interchange.services import faces_import
    from webapp.registry.services import baseline_register
    from webapp.training.services import run_execute

    baseline_register()  # a served emotion version: the retrain fine-tunes it, the users' faces beside a reference
    first = [csvs.fer_row([0, 1, 3, 4, 5][i % 5], 300 + i) for i in range(30)]  # all Training
    faces_import(path=csvs.write(dirs / "fer_2000.csv", csvs.FER_HEADER, first), fmt="fer2013")
    later = [csvs.fer_row([0, 1, 3, 4, 5][i % 5], 400 + i, "PublicTest" if i % 2 else "Training") for i in range(12)]
    faces_import(path=csvs.write(dirs / "fer_later.csv", csvs.FER_HEADER, later), fmt="fer2013")
    plan = staff_client.get("/api/training-runs/plan/?kind=emotion").json()
    assert plan["reference"] == "fer_2000.csv"
    assert plan["blocked"].startswith("The reference dataset fer_2000.csv needs training and validation faces (30 / 0)")
    assert "TRAINING_REFERENCE_DATASET" in plan["blocked"] and "PublicTest" in plan["blocked"]
    # the run stops on the same words, at its first step
    run = TrainingRun.objects.create(kind="emotion")
    run_execute(run.pk)
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.FAILED and plan["blocked"] in run.error
    # from scratch there is no reference to replay: nothing blocks it
    scratch = staff_client.get("/api/training-runs/plan/?kind=emotion&from_scratch=true").json()
    assert scratch["blocked"] is None


def test_a_run_the_reaper_marked_failed_never_ends_succeeded(labeled_faces):
    """The worker's final writes go through one guard: a run marked failed while its worker was silent stays failed
    when that worker comes back and finishes (4 of the final writes had no guard on the current status)."""
    from webapp.training.services import _finish

    run = TrainingRun.objects.create(kind="emotion", status=TrainingRun.Status.RUNNING)
    TrainingRun.objects.filter(pk=run.pk).update(status=TrainingRun.Status.FAILED, error="the worker stopped")
    assert _finish(run.pk, TrainingRun.Status.SUCCEEDED, decision="late") is False
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.FAILED and run.decision == "" and run.error == "the worker stopped"
    running = TrainingRun.objects.create(kind="emotion", status=TrainingRun.Status.RUNNING)
    assert _finish(running.pk, TrainingRun.Status.SUCCEEDED, decision="done") is True
    running.refresh_from_db()
    assert running.status == TrainingRun.Status.SUCCEEDED and running.finished_at is not None
