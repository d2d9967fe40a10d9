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
