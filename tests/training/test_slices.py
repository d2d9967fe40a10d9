"""Promotion judged where the user works: the users' slice (k-fold by person) and the reference slice."""

import numpy as np
import pytest

from ml.stats import Comparison
from tests import csvs
from tests.training.conftest import wait_for
from webapp.training.services import decide_slices


def comparison(improvement: float, low: float, high: float, *, n: int = 300, groups: int | None = 30) -> Comparison:
    return Comparison("accuracy", n, 0.8 + improvement, 0.8, improvement, low, high, 0.95, groups)


@pytest.mark.parametrize(
    ("user", "reference", "promoted", "reason"),
    [
        (comparison(0.06, 0.03, 0.09), comparison(-0.004, -0.012, 0.004, groups=None), True, "promoted: your faces"),
        (comparison(0.06, 0.03, 0.09), comparison(-0.02, -0.03, -0.01, groups=None), False, "reference slice drops"),
        (comparison(0.02, -0.01, 0.05), comparison(0.0, -0.01, 0.01, groups=None), False, "within noise on your"),
        (comparison(-0.02, -0.05, -0.01), comparison(0.0, -0.01, 0.01, groups=None), False, "not better on your"),
        (comparison(0.2, 0.1, 0.3, groups=5), comparison(0.0, -0.01, 0.01, groups=None), False, "from 5 people"),
        (comparison(0.2, 0.1, 0.3, n=30), comparison(0.0, -0.01, 0.01, groups=None), False, "(30 faces)"),
        # two checks fail: both are named
        (
            comparison(0.03, 0.0, 0.1),
            comparison(-0.0115, -0.0229, 0.0004, groups=None),
            False,
            "within noise on your faces; and the reference slice drops by 0.0115",
        ),
    ],
)
def test_the_rule_on_crafted_cases(settings, user, reference, promoted, reason):
    settings.PROMOTION_MIN_GROUPS, settings.PROMOTION_MIN_USER_FACES = 8, 40
    settings.PROMOTION_TOLERANCE_ACCURACY, settings.PROMOTION_MARGIN_ACCURACY = 0.01, 0.0
    decided, text = decide_slices("emotion", user=user, reference=reference)
    assert decided is promoted and reason in text
    assert "your faces: " in text and "reference: " in text  # both slices' figures, whatever the decision


def test_the_tolerance_is_in_pixels_for_keypoints(settings):
    settings.PROMOTION_TOLERANCE_RMSE_PX = 0.05
    user = Comparison("rmse_px", 300, 1.5, 1.8, 0.3, 0.2, 0.4, 0.95, 30)
    slightly_worse = Comparison("rmse_px", 500, 1.44, 1.40, -0.04, -0.06, -0.02, 0.95)
    assert decide_slices("keypoints", user=user, reference=slightly_worse)[0]
    worse = Comparison("rmse_px", 500, 1.47, 1.40, -0.07, -0.09, -0.05, 0.95)
    promoted, text = decide_slices("keypoints", user=user, reference=worse)
    assert not promoted and "drops by 0.0700 px, more than the tolerance 0.05 px" in text


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_retrain_with_a_users_faces_stores_both_slices(start_worker, redis_broker, labeled_faces, staff_client, dirs):
    """A lab's file of four people beside the reference file: the worker runs the domain recipe, one fold per person
    (fewer people than the recipe's five folds), and the version keeps both slices; four people are too few to
    promote."""
    from webapp.faces.interchange.services import faces_import
    from webapp.faces.models import Face

    rows = [f"{csvs.fer_row([0, 1, 3, 4, 5][i % 5], 500 + i)},S{i % 4}" for i in range(24)]
    faces_import(path=csvs.write(dirs / "lab.csv", "emotion,pixels,Usage,subject", rows), fmt="fer2013")
    lab = Face.objects.filter(source_name="lab.csv")
    assert sorted(set(lab.values_list("group", flat=True))) == ["S0", "S1", "S2", "S3"]
    for group in ("S0", "S1", "S2", "S3"):  # each person on one side of the stored split
        assert lab.filter(group=group).values("split").distinct().count() == 1

    plan = staff_client.get("/api/training-runs/plan/?kind=emotion").json()
    assert plan["recipe"] == "domain" and plan["user_faces"] == 24 and plan["reference"] == "fer.csv"

    start_worker(PROMOTION_MARGIN_ACCURACY="0")
    run = wait_for(staff_client.post("/api/training-runs/", {"kind": "emotion"}, format="json").json()["id"])
    assert run.status == "succeeded", run.log + run.error
    slices = run.version.metrics["slices"]
    assert slices["reference"]["dataset"] == "fer.csv"
    assert slices["reference"]["n"] == Face.objects.filter(source_name="fer.csv", split="val").count()
    user = slices["user"]
    assert user["n"] == 24 and user["groups"] == 4 and user["method"] == "4-fold by person"
    assert user["datasets"]["lab.csv"]["n"] == 24 and user["datasets"]["lab.csv"]["groups"] == 4
    assert 0 <= user["candidate"] <= 1 and np.isfinite(user["ci_low"])
    assert run.epochs == 5 and run.epoch == 5  # four fold models and the final one, one epoch each here
    assert not run.promoted and "your faces come from 4 people" in run.decision


# --- the label set changed between the served version and the candidate ------------------------------------------


def recall(value: float, low: float, high: float, n: int = 30, groups: int = 10) -> dict:
    return {"recall": value, "ci_low": low, "ci_high": high, "n": n, "groups": groups}


@pytest.mark.parametrize(
    ("shared", "recalls", "promoted", "reason"),
    [
        (comparison(0.0, -0.01, 0.01), {"contempt": recall(0.8, 0.6, 0.95)}, True, "contempt recall 0.800"),
        # above chance (1/8) in its figure, not over its whole interval: noise never promotes
        (comparison(0.0, -0.01, 0.01), {"contempt": recall(0.3, 0.1, 0.5)}, False, "not above chance (0.125)"),
        (comparison(-0.03, -0.05, -0.01), {"contempt": recall(0.8, 0.6, 0.95)}, False, "shared classes drop by 0.0300"),
        (comparison(0.0, -0.01, 0.01), {}, False, "no face of the new class contempt"),
    ],
)
def test_the_rule_when_the_label_set_grew(settings, shared, recalls, promoted, reason):
    from webapp.training.services import decide_new_classes

    settings.PROMOTION_TOLERANCE_ACCURACY = 0.01
    decided, text = decide_new_classes(
        "emotion", shared={"fer.csv": shared}, recalls=recalls, new=["contempt"], classes=8
    )
    assert decided is promoted and reason in text


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_retrain_after_the_set_grows_learns_the_new_class(
    start_worker, redis_broker, labeled_faces, staff_client, dirs
):
    """A class no version knows (contempt) is added and a lab's file names it: the retrain regrows the served
    version's head (the shared classes from the parent), the new version says the new set, and the run stores each
    class's recall with its interval by person and judges the candidate by the rule for a changed set."""
    from django.core.management import call_command

    from webapp.faces.interchange.services import faces_import
    from webapp.labels.selectors import label_set
    from webapp.registry.selectors import version_manifest

    call_command("labelset", "emotion", "--add", "contempt", verbosity=0)
    names = ["contempt", "happiness", "anger", "surprise"]
    rows = [
        f"{names[i % 4]},{csvs.pixels(csvs.synthetic_face(600 + i, side=48)[0])},Training,S{i % 6}" for i in range(24)
    ]
    faces_import(path=csvs.write(dirs / "lab.csv", "emotion,pixels,Usage,subject", rows), fmt="fer2013")  # < fer.csv

    start_worker()
    run = wait_for(staff_client.post("/api/training-runs/", {"kind": "emotion"}, format="json").json()["id"])
    assert run.status == "succeeded", run.log + run.error
    assert "the label set is" in run.log and "says anger" in run.log
    manifest = version_manifest(run.version)
    assert manifest["labels"] == list(label_set().labels) and manifest["labels"][-1] == "contempt"
    metrics = run.version.metrics
    assert metrics["classes_added"] == ["contempt"]
    contempt = metrics["per_class_recall_ci"]["contempt"]
    assert (
        contempt["n"] == 6
        and contempt["groups"] <= 6
        and contempt["ci_low"] <= contempt["recall"] <= contempt["ci_high"]
    )
    assert "contempt recall" in run.decision and "shared classes" in run.decision
