"""The label check through the real worker: fold models by person score a lab's labels; the suspects come first."""

import numpy as np
import pytest

from ml.label_check import precision_at_k, suspicion_of
from tests import csvs
from tests.training.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_suspicion_is_one_minus_the_given_labels_probability():
    from ml.datasets import FaceData

    data = FaceData(
        format="t",
        images=np.zeros((3, 96, 96), np.uint8),
        lines=np.arange(3),
        labels=np.array([0, 1, 2]),
        label_names=("a", "b", "c"),
    )
    outputs = np.array([[0.9, 0.05, 0.05], [0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    suspicion, suggested = suspicion_of("emotion", outputs, data)
    np.testing.assert_allclose(suspicion, [0.1, 0.8, 0.2])
    assert suggested.tolist() == [0, 0, 2]
    assert precision_at_k(suspicion, np.array([False, True, False])) == 1.0
    assert precision_at_k(suspicion, np.array([False, False, True]), k=2) == 0.5


def test_a_label_check_scores_the_lab_file_and_orders_the_faces_page(
    start_worker, redis_broker, labeled_faces, staff_client, dirs
):
    from webapp.faces.labeling.models import FaceSummary
    from webapp.faces.labeling.services import annotation_submit
    from webapp.faces.models import Face

    rows = [f"{csvs.fer_row([0, 1, 3, 4, 5][i % 5], 700 + i)},S{i % 4}" for i in range(24)]
    from webapp.faces.interchange.services import faces_import

    faces_import(path=csvs.write(dirs / "lab.csv", "emotion,pixels,Usage,subject", rows), fmt="fer2013")
    start_worker()
    response = staff_client.post("/api/label-check/", {"kind": "emotion"}, format="json")
    assert response.status_code == 201, response.content
    assert staff_client.post("/api/training-runs/", {"kind": "emotion"}, format="json").status_code == 409  # one flight
    run = wait_for(response.json()["id"])
    assert run.status == "succeeded", run.log + run.error
    assert run.job == "label_check" and run.version is None  # nothing to serve: a check makes no version
    assert run.metrics["label_check"]["faces"] == 24 and run.metrics["label_check"]["folds"] == 4
    assert run.epochs == 4 and "checked 24 labels of 4 people" in run.decision
    lab = Face.objects.filter(source_name="lab.csv")
    assert FaceSummary.objects.filter(face__in=lab, emotion_suspicion__isnull=False).count() == 24
    assert not FaceSummary.objects.filter(face__source_name="fer.csv", emotion_suspicion__isnull=False).exists()
    body = staff_client.get("/api/faces/?dataset=lab.csv&ordering=-emotion_suspicion&limit=50").json()["results"]
    suspicion = [face["emotion_suspicion"] for face in body]
    assert suspicion == sorted(suspicion, reverse=True) and all(0 <= s <= 1 for s in suspicion)
    top = body[0]
    assert top["emotion_suggestion"] and top["source_line"] and top["source_name"] == "lab.csv"
    # a person corrects the top suspect: the verdict was about the old label, so it goes
    face = Face.objects.get(pk=top["id"])
    other = next(k for k in ("anger", "sad") if k != top["labels"]["emotion"])
    annotation_submit(face=face, author=run.requested_by, emotion=other)
    assert FaceSummary.objects.get(face=face).emotion_suspicion is None


def test_a_label_check_with_no_lab_file_says_what_is_missing(start_worker, redis_broker, labeled_faces, staff_client):
    start_worker()
    run = wait_for(staff_client.post("/api/label-check/", {}, format="json").json()["id"])
    assert run.status == "failed" and "No labeled faces beside the reference dataset" in run.error


def test_only_staff_ask_for_a_label_check(client_for):
    for role in ("anonymous", "labeler"):
        assert client_for(role).post("/api/label-check/", {"kind": "emotion"}, format="json").status_code == 403
    assert client_for("staff").post("/api/label-check/", {"kind": "ears"}, format="json").status_code == 400


def test_a_keypoint_label_check_names_points_far_from_the_fold_models(
    start_worker, redis_broker, labeled_faces, staff_client, dirs
):
    from ml.schema import KEYPOINT_COLUMNS
    from webapp.faces.interchange.services import faces_import
    from webapp.faces.labeling.models import FaceSummary

    rows = [f"{csvs.keypoint_row(900 + i)},S{i % 3}" for i in range(18)]
    header = ",".join([*KEYPOINT_COLUMNS, "Image", "subject"])
    faces_import(path=csvs.write(dirs / "lab-points.csv", header, rows), fmt="kaggle-keypoints")
    start_worker()
    run = wait_for(staff_client.post("/api/label-check/", {"kind": "keypoints"}, format="json").json()["id"])
    assert run.status == "succeeded", run.log + run.error
    assert run.metrics["label_check"] == {**run.metrics["label_check"], "faces": 18, "people": 3, "folds": 3}
    assert "checked the points of 18 faces of 3 people" in run.decision
    scored = FaceSummary.objects.filter(face__source_name="lab-points.csv", keypoints_suspicion__isnull=False)
    assert scored.count() == 18 and all(s.keypoints_suspicion >= 0 for s in scored)
    body = staff_client.get("/api/faces/?dataset=lab-points.csv&ordering=-keypoints_suspicion").json()["results"]
    distances = [face["keypoints_suspicion"] for face in body]
    assert distances == sorted(distances, reverse=True)
