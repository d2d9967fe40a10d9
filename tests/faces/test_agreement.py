"""Agreement between labelers, on crafted annotations whose figures are known by hand."""

import pytest

from tests import factories
from webapp.faces.labeling.agreement import fleiss_kappa
from webapp.faces.labeling.services import annotation_submit

pytestmark = pytest.mark.django_db


def test_fleiss_kappa_on_textbook_cases():
    assert fleiss_kappa([[0, 0], [1, 1], [2, 2]]) == pytest.approx(1.0)  # always the same: perfect
    # two raters who never agree on two balanced classes: per-face agreement 0, chance 0.5 -> -1
    assert fleiss_kappa([[0, 1], [1, 0]]) == pytest.approx(-1.0)
    # Fleiss (1971)-style check by hand: faces (0,0,1) and (1,1,1): P = (1/3 + 1)/2 = 2/3; shares 2/6, 4/6 ->
    # chance 1/9 + 4/9 = 5/9; kappa = (2/3 - 5/9) / (4/9) = 0.25
    assert fleiss_kappa([[0, 0, 1], [1, 1, 1]]) == pytest.approx(0.25)
    assert fleiss_kappa([[3]]) is None  # one rater: no agreement to measure


def _points(shift: float) -> list[dict]:
    return [{"x": 40.0 + shift, "y": 40.0, "visible": True} for _ in range(15)]


def test_the_agreement_api_on_crafted_labels(client_for):
    ann, bob, cy = (factories.user("labeler", name) for name in ("ann", "bob", "cy"))
    a, b, c = factories.face(), factories.face(), factories.face()
    for face, labels in ((a, ("sad", "sad", "sad")), (b, ("sad", "happiness", "sad"))):
        for who, label in zip((ann, bob, cy), labels, strict=True):
            annotation_submit(face=face, author=who, emotion=label)
    annotation_submit(face=c, author=ann, points=_points(0))
    annotation_submit(face=c, author=bob, points=_points(3))  # 3 px apart at every point
    annotation_submit(face=c, author=bob, points=_points(4))  # Bob's newest counts: 4 px
    annotation_submit(face=factories.face(), author=cy, emotion="anger")  # one labeler only: not shared

    body = client_for("staff").get("/api/labeling/agreement/").json()
    assert body["keypoints"] == {"faces": 1, "mean_distance_px": 4.0, "pairs": 1}
    # faces (2,2,2) and (2,3,2) in five classes: P = (1 + 1/3)/2 = 2/3; shares 5/6, 1/6 -> chance 26/36
    assert body["emotion"]["faces"] == 2 and body["emotion"]["unanimous_share"] == 0.5
    assert body["emotion"]["fleiss_kappa"] == pytest.approx((2 / 3 - 26 / 36) / (1 - 26 / 36), abs=1e-4)
    by_name = {row["labeler"]: row for row in body["labelers"]}
    assert by_name["bob"]["emotion_agreement_with_others"] == 0.5  # chose happiness where the others chose sad
    assert by_name["ann"]["emotion_agreement_with_others"] == 1.0
    assert by_name["bob"]["keypoints_distance_to_others_px"] == 4.0 and by_name["cy"]["faces"] == 3
    assert client_for("labeler").get("/api/labeling/agreement/").status_code == 403
