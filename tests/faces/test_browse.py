"""The Faces page's API: every filter of GET /api/faces/, their counts, the labels in the list, the kept picture."""

import io
import json
from datetime import timedelta

import pytest
from django.utils import timezone
from PIL import Image

from tests import csvs, factories
from webapp.faces.interchange.services import faces_import
from webapp.faces.labeling.models import FaceSummary
from webapp.faces.labeling.services import annotation_submit, prediction_record, summaries_refresh
from webapp.faces.models import Face

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(media):
    return media


def ids(client, query: str = "") -> list[int]:
    response = client.get(f"/api/faces/?{query}")
    assert response.status_code == 200, response.content
    return [face["id"] for face in response.json()["results"]]


@pytest.fixture
def shelf(tmp_path, staff):
    """Six faces: four imported from one FER file (labels sad, sad, happiness, anger), two uploaded photos; a labeler
    corrected one import (sad -> anger), a model guessed two."""
    rows = [csvs.fer_row(4, 1), csvs.fer_row(4, 2), csvs.fer_row(3, 3, "PublicTest"), csvs.fer_row(0, 4)]
    path = csvs.write(tmp_path / "lab.csv", csvs.FER_HEADER, rows)
    faces_import(path=path, fmt="fer2013", author=staff)
    imported = list(Face.objects.order_by("id"))
    person = factories.user("labeler", name="ada")
    annotation_submit(face=imported[0], author=person, emotion="anger")
    uploads = [factories.face(), factories.face()]
    version = factories.version()
    # 7 classes in the default order: anger, disgust, fear, happiness, sad, surprise, neutral
    prediction_record(
        face=imported[1], version=version, author=person, probabilities=factories.probabilities(4), uncertainty=0.7
    )
    prediction_record(
        face=uploads[0], version=version, author=person, probabilities=factories.probabilities(3), uncertainty=0.2
    )
    return {"imported": imported, "uploads": uploads, "person": person}


def test_each_filter_alone(client_for, shelf):
    a, b, c, d = (f.pk for f in shelf["imported"])
    u1, u2 = (f.pk for f in shelf["uploads"])
    client = client_for("labeler")
    assert ids(client) == [u2, u1, d, c, b, a]  # newest first
    assert ids(client, "dataset=lab.csv") == [d, c, b, a]
    assert ids(client, "dataset=uploads") == [u2, u1]
    assert ids(client, "source=upload") == [u2, u1]
    held_out = [f for f in (u2, u1) if Face.objects.get(pk=f).split == "val"]  # uploads: by a hash of their photo
    assert ids(client, "split=val") == [*held_out, c]
    assert ids(client, "emotion=anger") == [d, a]  # a: the labeler's correction decides
    assert ids(client, "emotion=none") == [u2, u1]
    assert ids(client, "guess=sad") == [b]
    assert ids(client, "guess=none") == [u2, d, c, a]
    assert ids(client, "mismatch=true") == []  # b: label sad, guess sad
    assert ids(client, "mismatch=false") == [b]
    assert ids(client, "state=labeled") == [d, c, b, a]
    assert ids(client, "state=unlabeled") == [u2, u1]
    assert ids(client, "state=disputed") == [a]  # imported sad, corrected to anger
    assert ids(client, "labeler=ada") == [a]
    assert ids(client, "uncertainty_min=0.5") == [b]
    assert ids(client, "uncertainty_max=0.5") == [u1]
    assert ids(client, f"q={a}") == [a]
    assert ids(client, "q=lab.c") == [d, c, b, a]
    assert ids(client, f"q={Face.objects.get(pk=u1).checksum[:10]}") == [u1]
    group = Face.objects.get(pk=u1).group
    assert ids(client, f"group={group}") == [u1]
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
    assert ids(client, f"created_after={tomorrow}") == []
    assert ids(client, f"created_before={timezone.localdate().isoformat()}") == [u2, u1, d, c, b, a]


def test_filters_combine_and_order(client_for, shelf):
    a, b, c, d = (f.pk for f in shelf["imported"])
    u1, _ = (f.pk for f in shelf["uploads"])
    client = client_for("labeler")
    assert ids(client, "dataset=lab.csv&emotion=sad") == [b]
    assert ids(client, "dataset=lab.csv&state=disputed&labeler=ada") == [a]
    assert ids(client, "dataset=uploads&guess=happiness") == [u1]
    assert ids(client, "ordering=id&dataset=lab.csv") == [a, b, c, d]
    assert ids(client, "ordering=-emotion_uncertainty")[:2] == [b, u1]  # faces nobody predicted come last
    assert ids(client, "ordering=emotion&dataset=lab.csv") == [a, d, c, b]  # anger, anger (ties by id), happiness, sad


def test_the_list_carries_labels_and_guesses(client_for, shelf):
    a = shelf["imported"][0]
    body = client_for("labeler").get("/api/faces/?dataset=lab.csv&ordering=id").json()["results"]
    first, second = body[0], body[1]
    assert first["id"] == a.pk
    assert first["labels"] == {"keypoints": None, "emotion": "anger"}
    assert first["label_sources"] == {"keypoints": None, "emotion": "human"}
    assert first["disputed"] is True and first["dataset"] == "lab.csv"
    assert second["labels"]["emotion"] == "sad" and second["label_sources"]["emotion"] == "import"
    assert second["guess"] == "sad" and second["guess_probability"] == pytest.approx(0.6)


def test_facets_count_each_value_with_the_other_filters(client_for, shelf):
    client = client_for("labeler")
    facets = client.get("/api/faces/facets/").json()
    assert facets["dataset"] == {"lab.csv": 4, "uploads": 2}
    assert facets["emotion"] == {"anger": 2, "none": 2, "happiness": 1, "sad": 1}
    assert facets["state"] == {"unlabeled": 2, "labeled": 4, "review": 0, "disputed": 1}
    assert facets["guess"] == {"none": 4, "happiness": 1, "sad": 1}
    narrowed = client.get("/api/faces/facets/?dataset=uploads&emotion=anger").json()
    assert narrowed["dataset"] == {"lab.csv": 2}  # its own filter left out: what choosing another dataset shows
    assert narrowed["emotion"] == {"none": 2}  # within the uploads
    assert narrowed["state"] == {"unlabeled": 0, "labeled": 0, "review": 0, "disputed": 0}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("split=nowhere", "split"),
        ("source=zzz", "source"),
        ("state=happy", "state"),
        ("mismatch=maybe", "mismatch"),
        ("labeler=nobody-by-that-name", "labeler"),
        ("created_after=yesterday", "created_after"),
        ("uncertainty_min=lots", "uncertainty_min"),
        ("uncertainty_max=nan", "uncertainty_max"),
        ("ordering=shoe_size", "ordering"),
        ("labeled=bogus", "labeled"),
    ],
)
def test_a_bad_filter_is_a_400_naming_it(client_for, query, field):
    for url in ("/api/faces/", "/api/faces/facets/"):
        response = client_for("labeler").get(f"{url}?{query}")
        assert response.status_code == 400, (url, response.content)
        assert field in json.dumps(response.json())


@pytest.mark.parametrize(("role", "expected"), [("anonymous", 403), ("outsider", 403), ("labeler", 200)])
def test_the_face_browser_is_for_labelers(client_for, role, expected):
    factories.face()
    for url in ("/api/faces/", "/api/faces/facets/"):
        assert client_for(role).get(url).status_code == expected


def test_the_summary_follows_every_write_and_rebuilds_the_same(shelf):
    a, b = shelf["imported"][:2]
    before = {s.face_id: (s.emotion, s.emotion_source, s.disputed, s.guess) for s in FaceSummary.objects.all()}
    assert before[a.pk] == ("anger", "human", True, None)
    assert before[b.pk] == ("sad", "import", False, "sad")
    FaceSummary.objects.all().delete()
    assert summaries_refresh() == len(before)
    after = {s.face_id: (s.emotion, s.emotion_source, s.disputed, s.guess) for s in FaceSummary.objects.all()}
    assert after == before
    annotation_submit(face=b, author=shelf["person"], skip=True)  # unusable: no label any more
    assert FaceSummary.objects.get(face=b).emotion is None


# --- the picture a face was found in ------------------------------------------------------------------------


def _picture(size=(320, 240)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (120, 90, 60)).save(out, "JPEG")
    return out.getvalue()


def _send(client, crops: list[bytes], picture: bytes | None = None, boxes=None):
    data = {"crops": [io.BytesIO(c) for c in crops], "name": "party.jpg"}
    if picture is not None:
        data["picture"] = io.BytesIO(picture)
    if boxes is not None:
        data["boxes"] = json.dumps(boxes)
    return client.post("/api/faces/upload/", data, format="multipart")


BOX = [[10, 20], [106, 20], [106, 116], [10, 116]]


def test_crops_sent_with_their_picture_keep_it_once_with_each_box(client_for, settings):
    client = client_for("labeler")
    picture = _picture()
    other = [[150.5, 40], [230, 40], [230, 120], [150.5, 120]]
    response = _send(client, [factories.png(1), factories.png(2)], picture, [BOX, other])
    assert response.status_code == 201, response.content
    faces = response.json()["faces"]
    assert [f["box"] for f in faces] == [BOX, other]
    stored = {Face.objects.get(pk=f["id"]).original for f in faces}
    assert len(stored) == 1 and (settings.MEDIA_ROOT / stored.pop()).read_bytes() == picture  # one file, as sent
    got = client.get(faces[0]["original_url"])
    assert got.status_code == 200 and got["Content-Type"] == "image/jpeg"
    assert b"".join(got.streaming_content) == picture
    again = _send(client, [factories.png(3)], picture, [BOX])
    assert Face.objects.get(pk=again.json()["faces"][0]["id"]).original == Face.objects.get(pk=faces[0]["id"]).original


def test_the_picture_is_never_shown_to_anyone_signed_out(client_for):
    response = _send(client_for("labeler"), [factories.png(4)], _picture(), [BOX])
    url = response.json()["faces"][0]["original_url"]
    assert client_for("anonymous").get(url).status_code == 403
    assert client_for("outsider").get(url).status_code == 403
    assert client_for("staff").get(url).status_code == 200
    assert not url.startswith("/media/")


@pytest.mark.parametrize(
    ("boxes", "message"),
    [
        (None, "one box per crop"),
        ([BOX, BOX], "one box per crop"),
        ([[[0, 0], [1, 1], [2, 2]]], "four [x, y] corners"),
        ([[[0, 0], [1, 1], [2, 2], ["a", 3]]], "finite numbers"),
        ([[[0, 0], [1, 1], [2, 2], [5000, 3]]], "far outside"),
    ],
)
def test_bad_boxes_store_nothing(client_for, boxes, message):
    response = _send(client_for("labeler"), [factories.png(5)], _picture(), boxes)
    assert response.status_code == 400 and message in json.dumps(response.json()), response.content
    assert Face.objects.count() == 0


def test_a_picture_that_is_not_an_image_stores_nothing(client_for):
    response = _send(client_for("labeler"), [factories.png(6)], b"%PDF-1.4 not a picture", [BOX])
    assert response.status_code == 400, response.content
    assert Face.objects.count() == 0


def test_a_face_without_a_kept_picture_has_no_original_url(client_for):
    face = factories.face()
    Face.objects.filter(pk=face.pk).update(original="")
    client = client_for("labeler")
    assert client.get(f"/api/faces/{face.pk}/").json()["original_url"] is None
    assert client.get(f"/api/faces/{face.pk}/original/").status_code == 404


# --- bulk actions --------------------------------------------------------------------------------------------


def test_excluded_faces_leave_training_and_exports_and_come_back(client_for, shelf, tmp_path):
    from webapp.faces.interchange.formats import write_fer2013
    from webapp.faces.labeling.models import Exclusion
    from webapp.faces.labeling.selectors import training_set

    a, b = shelf["imported"][:2]
    staff = client_for("staff")
    before = len(training_set(task="emotion").face_ids)
    response = staff.post(
        "/api/faces/bulk/", {"action": "exclude", "ids": [a.pk, b.pk], "note": "blurred"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json() == {"action": "exclude", "selected": 2, "changed": 2}
    assert len(training_set(task="emotion").face_ids) == before - 2
    assert write_fer2013(tmp_path / "out.csv") == before - 2
    assert ids(staff, "excluded=true&ordering=id") == [a.pk, b.pk]
    assert staff.get(f"/api/faces/{a.pk}/").json()["excluded"] is True
    again = staff.post("/api/faces/bulk/", {"action": "exclude", "ids": [a.pk]}, format="json").json()
    assert again["changed"] == 0  # already out: no second row
    back = staff.post("/api/faces/bulk/", {"action": "include", "filter": {"excluded": "true"}}, format="json").json()
    assert back == {"action": "include", "selected": 2, "changed": 2}
    assert len(training_set(task="emotion").face_ids) == before
    history = list(Exclusion.objects.filter(face=a).order_by("id").values_list("excluded", "note", "author__username"))
    assert history == [(True, "blurred", history[0][2]), (False, "", history[0][2])]  # both kept, with who


def test_send_for_review_by_filter(client_for, shelf):
    staff = client_for("staff")
    response = staff.post(
        "/api/faces/bulk/", {"action": "review", "task": "emotion", "filter": {"dataset": "lab.csv"}}, format="json"
    )
    assert response.json()["changed"] == 4
    assert ids(staff, "state=review&ordering=id") == [f.pk for f in shelf["imported"]]
    nxt = staff.get("/api/review/next/?task=emotion").json()
    assert nxt["face"]["id"] in {f.pk for f in shelf["imported"]}


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"action": "delete", "ids": [1]}, 400, "action"),
        ({"action": "exclude"}, 400, "ids"),
        ({"action": "exclude", "ids": [1], "filter": {}}, 400, "ids"),
        ({"action": "exclude", "filter": {"state": "sleepy"}}, 400, "state"),
        ({"action": "exclude", "ids": [1], "color": "red"}, 400, "color"),
    ],
)
def test_a_bad_bulk_request_changes_nothing(client_for, shelf, body, status, field):
    from webapp.faces.labeling.models import Exclusion

    response = client_for("staff").post("/api/faces/bulk/", body, format="json")
    assert response.status_code == status and field in json.dumps(response.json()), response.content
    assert not Exclusion.objects.exists()


@pytest.mark.parametrize(("role", "expected"), [("anonymous", 403), ("labeler", 403), ("staff", 200)])
def test_only_staff_act_on_many_faces(client_for, shelf, role, expected):
    response = client_for(role).post("/api/faces/bulk/", {"action": "review", "ids": [1]}, format="json")
    assert response.status_code == expected


def test_queue_first_serves_those_faces_before_any_other_until_labeled(client_for, shelf):
    from webapp.faces.labeling.services import annotation_submit

    staff = client_for("staff")
    u2 = shelf["uploads"][1]  # no emotion label, no prediction: the queue would serve it after the predicted one
    assert staff.get("/api/queue/next/?task=emotion").json()["face"]["id"] != u2.pk
    staff.delete(f"/api/faces/{shelf['uploads'][0].pk}/lease/")
    done = staff.post("/api/faces/bulk/", {"action": "queue_first", "ids": [u2.pk]}, format="json").json()
    assert done["changed"] == 1
    labeler = client_for("labeler")
    assert labeler.get("/api/queue/next/?task=emotion").json()["face"]["id"] == u2.pk
    labeler.delete(f"/api/faces/{u2.pk}/lease/")
    annotation_submit(face=Face.objects.get(pk=u2.pk), author=shelf["person"], emotion="sad")
    assert not Face.objects.get(pk=u2.pk).queue_first  # labeled: no longer first


def test_export_a_selection(client_for, shelf):
    import csv as csv_module

    a, _, c, _ = shelf["imported"]
    staff = client_for("staff")
    picked = staff.get(f"/api/datasets/export/fer2013/?ids={a.pk},{c.pk}")
    rows = list(csv_module.reader(io.StringIO(b"".join(picked.streaming_content).decode())))
    assert len(rows) == 3  # the header and the two picked faces
    filtered = staff.get("/api/datasets/export/fer2013/?emotion=sad")
    rows = list(csv_module.reader(io.StringIO(b"".join(filtered.streaming_content).decode())))
    assert len(rows) == 2 and rows[1][0] == "4"  # b: sad (FER code 4)
    everything = staff.get("/api/datasets/export/fer2013/")
    assert len(list(csv_module.reader(io.StringIO(b"".join(everything.streaming_content).decode())))) == 5
    assert staff.get("/api/datasets/export/fer2013/?ids=1,x").status_code == 400


@pytest.mark.parametrize(
    "query", ["created_after=0001-01-01T00:00:00%2B14:00", "created_before=9999-12-31", "created_after=1e400"]
)
def test_dates_beyond_any_clock_are_a_400(client_for, query):
    assert client_for("labeler").get(f"/api/faces/?{query}").status_code == 400


def test_numbers_beyond_any_float_are_a_400(client_for, shelf):
    staff = client_for("staff")
    huge = 10**400
    response = staff.post("/api/faces/bulk/", {"action": "review", "ids": [huge]}, format="json")
    assert response.status_code == 400
    face = shelf["uploads"][0]
    response = staff.post(f"/api/faces/{face.pk}/photo-faces/", {"box": [huge, 0, 20, 20]}, format="json")
    assert response.status_code == 400
    response = _send(staff, [factories.png(7)], _picture(), [[[huge, 0], [1, 1], [2, 2], [3, 3]]])
    assert response.status_code == 400


@pytest.mark.parametrize("path", ["/api/faces/", "/api/faces/facets/"])
def test_a_control_character_in_any_filter_is_a_400_naming_it(client_for, path):
    """On PostgreSQL (make pytest-postgres runs this folder there too) a NUL in a text filter was a 500."""
    from webapp.faces.labeling.browse import FILTERS

    labeler = client_for("labeler")
    for name in FILTERS:
        for bad in ("a\x00b", "line\nbreak", "\x1b[31m"):
            response = labeler.get(path, {name: bad})
            assert response.status_code == 400, (name, bad, response.status_code)
            assert response.json()["detail"].startswith(f"{name}: holds a control character"), response.json()
