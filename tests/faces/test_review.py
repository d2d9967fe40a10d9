"""Several labelers per face, their consensus, and a reviewer when they disagree (LABELS_PER_FACE = 2)."""

import pytest

from tests import factories
from webapp.faces.labeling.selectors import current_labels
from webapp.faces.models import Face

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _two_labels(settings):
    settings.LABELS_PER_FACE = 2


def _points(shift: float) -> list[dict]:
    return [{"x": 30.0 + i + shift, "y": 40.0, "visible": True} for i in range(15)]


def _save(client, face, **body):
    response = client.post(f"/api/faces/{face.pk}/annotations/", body, format="json")
    assert response.status_code == 201, response.content
    return response


def test_a_face_waits_for_a_second_labeler_and_their_consensus_is_the_label(client_for):
    ann, bob = client_for("labeler"), client_for("labeler")
    face, other = factories.face(), factories.face()
    _save(ann, face, emotion="sad")
    face.refresh_from_db()
    assert not face.human_emotion  # one labeler of two
    # Ann is not served her own face again; Bob is
    assert ann.get("/api/queue/next/?task=emotion").json()["face"]["id"] == other.pk
    assert bob.get("/api/queue/next/?task=emotion").json()["face"]["id"] == face.pk
    _save(bob, face, emotion="sad")
    face.refresh_from_db()
    assert face.human_emotion and not face.review_emotion
    assert current_labels(task="emotion")[face.pk] == "sad"
    # points: two labelers 1 px apart agree, and the label is their mean
    _save(ann, other, points=_points(0))
    _save(bob, other, points=_points(1))
    other.refresh_from_db()
    assert other.human_keypoints and not other.review_keypoints
    assert current_labels(task="keypoints")[other.pk][0]["x"] == pytest.approx(30.5)


def test_disagreeing_labelers_send_the_face_to_a_reviewer_whose_decision_is_the_label(client_for):
    ann, bob, boss = client_for("labeler"), client_for("labeler"), client_for("staff")
    face = factories.face()
    _save(ann, face, emotion="sad")
    _save(bob, face, emotion="happiness")
    face.refresh_from_db()
    assert face.review_emotion
    body = boss.get("/api/review/next/?task=emotion").json()
    assert (
        body["face"]["id"] == face.pk
        and sorted(body["labels"].values()) == ["happiness", "sad"]
        and body["remaining"] == 1
    )
    assert ann.get("/api/review/next/?task=emotion").status_code == 403
    refused = ann.post(f"/api/faces/{face.pk}/annotations/", {"emotion": "sad", "review": True}, format="json")
    assert refused.status_code == 403
    _save(boss, face, emotion="sad", review=True)
    face.refresh_from_db()
    assert not face.review_emotion and face.human_emotion
    assert current_labels(task="emotion")[face.pk] == "sad"
    assert boss.get("/api/review/next/?task=emotion").json()["face"] is None
    # points far apart go to review too
    points_face = factories.face()
    _save(ann, points_face, points=_points(0))
    _save(bob, points_face, points=_points(5))
    assert Face.objects.get(pk=points_face.pk).review_keypoints


@pytest.mark.parametrize("per_face", [1, 2])
def test_one_face_read_alone_has_the_labels_the_whole_table_gives_it(settings, per_face):
    from webapp.faces.labeling.selectors import face_labels
    from webapp.faces.models import Annotation, Task

    settings.LABELS_PER_FACE = per_face
    ann, bob, boss = factories.user(), factories.user(), factories.user("staff")
    imported, labeled, skipped, reviewed, bare = (factories.face() for _ in range(5))
    add, origin = Annotation.objects.create, Annotation.Origin
    for face in (imported, labeled, skipped, reviewed):
        add(face=face, origin=origin.IMPORT, points=factories.points(1), emotion="surprise")
    add(face=labeled, origin=origin.HUMAN, author=ann, emotion="sad")
    add(face=labeled, origin=origin.HUMAN, author=bob, emotion="sad", points=factories.points(2))
    add(face=skipped, origin=origin.HUMAN, author=ann, skip=True)
    add(face=reviewed, origin=origin.HUMAN, author=ann, emotion="disgust")
    add(face=reviewed, origin=origin.HUMAN, author=bob, emotion="happiness")
    add(face=reviewed, origin=origin.REVIEW, author=boss, emotion="happiness")
    for face in (imported, labeled, skipped, reviewed, bare):
        assert face_labels(face) == {task: current_labels(task=task).get(face.pk) for task in Task.values}
    assert face_labels(skipped) == {"keypoints": None, "emotion": None}
    assert face_labels(reviewed)["emotion"] == "happiness" and face_labels(imported)["emotion"] == "surprise"


def test_with_two_labelers_per_face_the_second_labels_blind(client_for, settings):
    """The queue shows no labeler another's answer (the model's guess only); a label says where it comes from."""
    from tests import factories
    from webapp.faces.labeling.services import annotation_submit

    settings.LABELS_PER_FACE = 2
    face = factories.face()
    ann = factories.user("labeler", "ann")
    annotation_submit(face=face, author=ann, emotion="sad")
    served = client_for("labeler").get("/api/queue/next/?task=emotion").json()["face"]
    assert served["id"] == face.pk and served["labels"] == {} and served["label_sources"] == {}
    detail = client_for("staff").get(f"/api/faces/{face.pk}/").json()
    assert detail["labels"]["emotion"] == "sad" and detail["label_sources"]["emotion"] == "labelers"
    settings.LABELS_PER_FACE = 1
    detail = client_for("staff").get(f"/api/faces/{face.pk}/").json()
    assert detail["label_sources"] == {"keypoints": None, "emotion": "human"}


def test_a_tie_between_two_labelers_is_no_label_until_a_reviewer_decides(client_for, settings):
    from tests import factories
    from webapp.faces.labeling.selectors import current_labels
    from webapp.faces.labeling.services import annotation_submit

    settings.LABELS_PER_FACE = 2
    face = factories.face()
    annotation_submit(face=face, author=factories.user("labeler"), emotion="sad")
    annotation_submit(face=face, author=factories.user("labeler"), emotion="surprise")
    assert face.pk not in current_labels(task="emotion")  # not trained on, not exported
    review = client_for("staff").get("/api/review/next/?task=emotion").json()
    assert review["face"]["id"] == face.pk and review["consensus"] is None  # nothing pre-selected
    annotation_submit(face=face, author=factories.user("staff"), emotion="happiness", origin="review")
    assert current_labels(task="emotion")[face.pk] == "happiness"


def test_labeling_blind_no_labeler_reads_anothers_label_or_name_until_the_face_is_settled(client_for):
    from rest_framework.test import APIClient

    def client(user):
        c = APIClient()
        c.force_authenticate(user)
        return c

    ann, bob, carl = (factories.user("labeler", name=name) for name in ("ann", "bob", "carl"))
    boss = client_for("staff")
    face, untouched = factories.face(), factories.face()
    _save(client(ann), face, emotion="sad")

    def reads(who) -> dict:
        c = client(who) if not isinstance(who, APIClient) else who
        detail = c.get(f"/api/faces/{face.pk}/").json()
        listed = lambda q: [f["id"] for f in c.get(f"/api/faces/?{q}").json()["results"]]  # noqa: E731
        return {
            "label": detail["labels"]["emotion"],
            "source": detail["label_sources"]["emotion"],
            "history": [(a["author"], a["emotion"]) for a in c.get(f"/api/faces/{face.pk}/annotations/").json()],
            "by_ann": listed("labeler=ann"),
            "sad": listed("emotion=sad"),
            "all": listed(""),
            "sad_count": c.get("/api/faces/facets/").json()["emotion"].get("sad", 0),
        }

    hidden = reads(bob)  # ann's label is not bob's to read: not by the face, its history, a filter or a count
    assert hidden == {
        "label": None,
        "source": None,
        "history": [],
        "by_ann": [],
        "sad": [],
        "all": [untouched.pk],
        "sad_count": 0,
    }
    assert reads(carl) == hidden
    own = reads(ann)  # her own label, as she gave it
    assert own["label"] == "sad" and own["history"] == [("ann", "sad")] and own["by_ann"] == [face.pk]
    seen = reads(boss)  # staff review: they see every label and name
    assert seen["history"] == [("ann", "sad")] and seen["by_ann"] == [face.pk] and seen["sad_count"] == 1

    _save(client(bob), face, emotion="sad")  # two labelers agree: the face is settled, and open to all
    settled = reads(carl)
    assert settled["label"] == "sad" and settled["source"] == "labelers" and settled["by_ann"] == [face.pk]
    assert sorted(settled["history"]) == [("ann", "sad"), ("bob", "sad")] and settled["sad_count"] == 1
