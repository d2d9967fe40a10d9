import io

import numpy as np
import pytest
from django.test import Client
from PIL import Image
from rest_framework.test import APIClient

from tests import factories
from webapp.faces.models import Annotation, Face, Prediction

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(media):
    return media


def _upload(client, data: bytes):
    return client.post("/api/faces/upload/", {"image": io.BytesIO(data)}, format="multipart")


# --- permissions ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "expected"), [("anonymous", 403), ("outsider", 403), ("labeler", 201), ("staff", 201)]
)
def test_annotation_submit_permissions(client_for, role, expected):
    face = factories.face()
    response = client_for(role).post(f"/api/faces/{face.pk}/annotations/", {"emotion": "sad"}, format="json")
    assert response.status_code == expected, response.content
    assert Annotation.objects.filter(face=face, origin="human").count() == (1 if expected == 201 else 0)


@pytest.mark.parametrize(("role", "expected"), [("anonymous", 403), ("outsider", 403), ("labeler", 201)])
def test_upload_and_prediction_permissions(client_for, role, expected):
    client = client_for(role)
    uploaded = _upload(client, factories.png(1))
    assert uploaded.status_code == expected
    # the labeler's own upload (the demo's path) with the served version; the others a face of nobody's
    face = Face.objects.get(pk=uploaded.json()["faces"][0]["id"]) if expected == 201 else factories.face()
    version = _served()
    body = {"version": version.pk, "probabilities": factories.probabilities(), "uncertainty": 0.4}
    assert client.post(f"/api/faces/{face.pk}/predictions/", body, format="json").status_code == expected


def test_a_labeler_records_only_the_served_versions_prediction_of_a_face_it_holds_or_added(client_for, labeler):

    from webapp.faces.labeling.services import face_take

    client = APIClient()
    client.force_authenticate(labeler)
    served, other = _served(), _version()
    face = factories.face()
    url = f"/api/faces/{face.pk}/predictions/"
    body = {"version": served.pk, "probabilities": factories.probabilities(), "uncertainty": 0.4}
    refused = client.post(url, body, format="json")  # not held, not added: another's face
    assert refused.status_code == 403 and "not held, labeled or added by you" in refused.json()["detail"]
    face_take(face=face, task="emotion", user=labeler)
    assert client.post(url, body, format="json").status_code == 201  # the label page's call
    saved = factories.face()  # a quick save released the lease before the page's call landed: still its face
    client.post(f"/api/faces/{saved.pk}/annotations/", {"emotion": "sad"}, format="json")
    assert client.post(f"/api/faces/{saved.pk}/predictions/", body, format="json").status_code == 201
    stale = client.post(url, {**body, "version": other.pk}, format="json")
    assert stale.status_code == 400 and "is not the served emotion version (v1)" in stale.json()["detail"]
    # the bounds hold for everyone: staff may name any version, not any figure
    staff = client_for("staff")
    assert staff.post(url, {**body, "version": other.pk}, format="json").status_code == 201
    for who in (client, staff):
        for bad in (1.5, -0.1):
            answer = who.post(url, {**body, "uncertainty": bad}, format="json")
            assert answer.status_code == 400 and "uncertainty is in [0, 1]" in answer.json()["detail"]
        wrong_kind = who.post(url, {**body, "task": "keypoints"}, format="json")
        assert wrong_kind.status_code == 400 and "predicts emotion, not keypoints" in wrong_kind.json()["detail"]
    keypoints = {"version": _version("keypoints").pk, "points": _points(), "uncertainty": 200}
    points = staff.post(url, keypoints, format="json")
    assert points.status_code == 400 and "in [0, 135.76]" in points.json()["detail"]
    assert Prediction.objects.filter(face=face).count() == 2 and face.predictions.first().author.is_staff


@pytest.mark.parametrize("role", ["anonymous", "outsider"])
def test_reads_need_a_labeler(client_for, role):
    face = factories.face()
    client = client_for(role)
    for url in [
        "/api/faces/",
        f"/api/faces/{face.pk}/",
        f"/api/faces/{face.pk}/image/",
        "/api/queue/next/?task=emotion",
    ]:
        assert client.get(url).status_code == 403, url


def test_session_writes_need_the_csrf_token(labeler):
    face = factories.face()
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(labeler)
    url = f"/api/faces/{face.pk}/annotations/"
    refused = browser.post(url, {"emotion": "sad"}, content_type="application/json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    browser.get("/")  # the page sets the csrftoken cookie
    token = browser.cookies["csrftoken"].value
    accepted = browser.post(url, {"emotion": "sad"}, content_type="application/json", headers={"X-CSRFToken": token})
    assert accepted.status_code == 201


def test_token_auth_for_scripts(labeler):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=labeler)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/api/faces/").status_code == 200
    # the labelers group is read with the token, not asked again by the permission
    assert sum('"auth_group"' in q["sql"] for q in queries.captured_queries) == 1
    outsider = Token.objects.create(user=factories.user("none"))
    client.credentials(HTTP_AUTHORIZATION=f"Token {outsider.key}")
    assert client.get("/api/faces/").status_code == 403
    client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    assert client.get("/api/faces/").json()["detail"] == "Invalid token."  # a 401 (see the bad-token test below)
    # the user read with the token is the right one, flags and all (a staff-only call, an annotation's author)
    staff = Token.objects.create(user=factories.user("staff"))
    client.credentials(HTTP_AUTHORIZATION=f"Token {staff.key}")
    assert client.get("/api/training-runs/").status_code == 200
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert client.get("/api/training-runs/").status_code == 403
    face = factories.face(seed=3)
    saved = client.post(f"/api/faces/{face.pk}/annotations/", {"emotion": "sad"}, format="json")
    assert saved.status_code == 201 and saved.json()["author"] == labeler.username
    token.user.is_active = False
    token.user.save()
    assert client.get("/api/faces/").json()["detail"] == "User inactive or deleted."


# --- uploads ---------------------------------------------------------------------------------------------------


def test_upload_stores_the_original_and_a_96px_grey_frame(client_for, settings):
    from tests.e2e.conftest import astronaut

    client = client_for("labeler")
    out = io.BytesIO()
    astronaut(300).save(out, "JPEG")
    data = out.getvalue()
    response = _upload(client, data)
    assert response.status_code == 201, response.content
    face = Face.objects.get(pk=response.json()["faces"][0]["id"])
    frame = Image.open(settings.MEDIA_ROOT / face.image)
    assert frame.size == (96, 96) and frame.mode == "L"
    assert (settings.MEDIA_ROOT / face.original).read_bytes() == data
    again = _upload(client, data)
    assert again.status_code == 200 and again.json()["faces"][0]["id"] == face.pk  # same pixels, same face
    image = client.get(f"/api/faces/{face.pk}/image/")
    assert image.status_code == 200 and image["Content-Type"] == "image/png"


def _bomb_png(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height: tiny on disk, huge when decoded."""
    image = Image.new("1", (width, height))
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "file is empty"),
        (b"this is not an image at all", "not a readable JPEG, PNG or WEBP"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "not a readable JPEG, PNG or WEBP"),
        ("gif", "GIF images are not accepted"),
        ("bomb", "larger than 40 megapixels, the limit"),
        ("large", "the limit is 10 MB"),
    ],
)
def test_bad_uploads_get_a_400_saying_what_is_wrong(client_for, data, message):
    if data == "gif":
        out = io.BytesIO()
        Image.new("L", (10, 10)).save(out, "GIF")
        data = out.getvalue()
    elif data == "bomb":
        data = _bomb_png(8000, 6250)  # 50 megapixels, about 6 KB on disk
        assert len(data) < 100_000
    elif data == "large":
        data = b"\xff\xd8\xff" + b"\x00" * (10 * 1024 * 1024 + 1)
    response = _upload(client_for("labeler"), data)
    assert response.status_code == 400, response.content
    assert message in response.json()["detail"]
    assert Face.objects.count() == 0


def test_a_renamed_text_file_is_refused_by_decoding_not_by_name(client_for):
    response = client_for("labeler").post(
        "/api/faces/upload/", {"image": ("face.jpg", io.BytesIO(b"GIF89a not really"), "image/jpeg")}
    )
    assert response.status_code == 400


# --- annotations -----------------------------------------------------------------------------------------------


def _points(**change):
    points = factories.points()
    if change:
        index = change.pop("index", 0)
        points[index] = {**points[index], **change}
    return points


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"points": _points()[:14]}, "points", "expected exactly 15 points, got 14"),
        ({"points": _points(x=96.0)}, "points", "points[0].x = 96 is outside the image [0, 96)"),
        ({"points": _points(index=3, y=-0.5)}, "points", "points[3].y = -0.5 is outside the image"),
        ({"points": _points(x="12")}, "points", "points[0].x must be a number"),
        ({"points": _points(visible="yes")}, "points", "points[0].visible must be true or false"),
        ({"points": "15 points"}, "points", "expected exactly 15 points"),
        ({"emotion": "contempt"}, "emotion", "must be a class of the label set (anger, disgust, fear, happiness, sad"),
        ({"emotion": 5}, "emotion", "must be a class of the label set"),
        ({"emotion": ["sad"]}, "emotion", "Not a valid string"),
        ({}, "points", "send points, an emotion, or skip=true"),
    ],
)
def test_bad_annotations_get_a_400_naming_the_field_and_write_nothing(client_for, body, field, message):
    face = factories.face()
    response = client_for("labeler").post(f"/api/faces/{face.pk}/annotations/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert message in response.json()["detail"]
    assert not Annotation.objects.filter(face=face, origin="human").exists()


def test_non_finite_numbers_are_refused():
    from django.core.exceptions import ValidationError

    from webapp.faces.labeling.services import validate_points

    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValidationError, match="finite"):
            validate_points(_points(x=bad))


def test_corrections_append_and_history_keeps_every_row(client_for):
    face = factories.face()
    client = client_for("labeler")
    url = f"/api/faces/{face.pk}/annotations/"
    first = client.post(url, {"points": _points(), "emotion": "sad"}, format="json").json()
    second = client.post(url, {"points": _points(x=40.0), "emotion": "Happiness"}, format="json").json()
    history = client.get(url).json()
    assert [a["id"] for a in history] == [second["id"], first["id"]]
    assert history[0]["emotion_label"] == "happiness" and history[1]["emotion_label"] == "sad"
    assert history[0]["author"] and history[0]["created_at"]
    detail = client.get(f"/api/faces/{face.pk}/").json()
    assert detail["labels"]["emotion"] == "happiness" and detail["labels"]["keypoints"][0]["x"] == 40.0
    annotation = Annotation.objects.get(pk=first["id"])
    annotation.emotion = 0
    with pytest.raises(RuntimeError, match="append-only"):
        annotation.save()


# --- predictions and the queue ---------------------------------------------------------------------------------


def _version(kind: str = "emotion"):
    return factories.version(kind)


def _served(kind: str = "emotion"):
    """A version of ``kind`` promoted: the one the pages serve."""
    from webapp.registry.services import version_promote

    version = factories.version(kind)
    version_promote(version=version)
    return version


def test_queue_serves_unlabeled_faces_first_then_the_most_uncertain(client_for, settings):
    client = client_for("labeler")
    faces = [factories.face() for _ in range(4)]
    version = _version("emotion")
    staff = client_for("staff")  # staff record any version's predictions on any face
    for face, uncertainty in zip(faces, [0.1, 0.9, 0.5, 0.7], strict=True):
        body = {"version": version.pk, "probabilities": factories.probabilities(), "uncertainty": uncertainty}
        assert staff.post(f"/api/faces/{face.pk}/predictions/", body, format="json").status_code == 201
    client.post(f"/api/faces/{faces[1].pk}/annotations/", {"emotion": "sad"}, format="json")  # labeled by a person

    order = []
    for _ in range(4):
        exclude = ",".join(str(i) for i in order)
        body = client.get(f"/api/queue/next/?task=emotion&exclude={exclude}").json()
        order.append(body["face"]["id"])
    assert order == [faces[3].pk, faces[2].pk, faces[0].pk, faces[1].pk]
    body = client.get("/api/queue/next/?task=emotion").json()
    assert body["remaining"] == 3 and body["remaining_capped"] is False
    # the keypoints queue is separate: no face has a human keypoint label yet
    assert client.get("/api/queue/next/?task=keypoints").json()["remaining"] == 4
    # counting stops at QUEUE_COUNT_LIMIT, and says so
    settings.QUEUE_COUNT_LIMIT = 2
    body = client.get("/api/queue/next/?task=keypoints").json()
    assert body["remaining"] == 2 and body["remaining_capped"] is True
    settings.QUEUE_COUNT_LIMIT = 4
    body = client.get("/api/queue/next/?task=keypoints").json()
    assert body["remaining"] == 4 and body["remaining_capped"] is False
    assert client.get("/api/queue/next/?task=age").status_code == 400


def test_the_queue_never_serves_a_face_staff_excluded_nor_counts_it(client_for, staff, settings):
    from webapp.faces.labeling.services import faces_bulk

    settings.QUEUE_COUNT_SECONDS = 0
    client = client_for("labeler")
    kept, excluded = factories.face(), factories.face()
    faces_bulk(action="exclude", face_ids=[excluded.pk], author=staff)
    served = client.get("/api/queue/next/?task=emotion").json()
    assert served["face"]["id"] == kept.pk and served["remaining"] == 1
    nothing = client.get(f"/api/queue/next/?task=emotion&exclude={kept.pk}").json()
    assert nothing["face"] is None  # the excluded face is not served after the others either
    faces_bulk(action="include", face_ids=[excluded.pk], author=staff)  # taken back in: served again
    assert client.get(f"/api/queue/next/?task=emotion&exclude={kept.pk}").json()["face"]["id"] == excluded.pk


def test_prediction_validation(client_for):
    client = client_for("staff")
    face = factories.face()
    emotion, keypoints = _version("emotion"), _version("keypoints")
    url = f"/api/faces/{face.pk}/predictions/"
    bad = client.post(
        url, {"version": emotion.pk, "probabilities": [0.5, 0.5, 0.5, 0, 0, 0, 0], "uncertainty": 1}, format="json"
    )
    assert bad.status_code == 400 and "sum to 1" in bad.json()["detail"]
    assert client.post(url, {"version": keypoints.pk, "uncertainty": 1}, format="json").status_code == 400
    off_frame = _points(x=-3.0)  # a model may place a point just off the frame; it is stored as said
    ok = client.post(url, {"version": keypoints.pk, "points": off_frame, "uncertainty": 2.5}, format="json")
    assert ok.status_code == 201
    assert Face.objects.get(pk=face.pk).keypoints_uncertainty == 2.5
    assert Prediction.objects.count() == 1


def test_face_list_filters(client_for):
    client = client_for("labeler")
    a, b = factories.face(), factories.face()
    client.post(f"/api/faces/{a.pk}/annotations/", {"emotion": "disgust"}, format="json")
    ids = lambda q: [f["id"] for f in client.get(f"/api/faces/?{q}").json()["results"]]  # noqa: E731
    assert ids("labeled=emotion") == [a.pk]
    assert ids("labeled=unlabeled:emotion") == [b.pk]
    assert set(ids("source=upload")) == {a.pk, b.pk}


def test_a_rotated_phone_photo_is_stored_upright_with_its_format(client_for, settings):
    from tests.e2e.conftest import astronaut

    # the pixels lie on their side; the EXIF orientation says to turn them 90 degrees clockwise for display
    image = astronaut(300).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif)
    response = _upload(client_for("labeler"), out.getvalue())
    assert response.status_code == 201, response.content  # found: the face was turned upright before detection
    face = Face.objects.get(pk=response.json()["faces"][0]["id"])
    assert face.original.endswith(".jpg")


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/api/faces/?labeled=bogus", "labeled"),
        ("/api/faces/?labeled=keypoints:", "labeled"),
        ("/api/faces/?labeled=unlabeled:bogus", "labeled"),
        ("/api/faces/?limit=100000000000000000000", "limit"),
        ("/api/faces/?limit=", "limit"),
        ("/api/faces/?limit=-3", "limit"),
        ("/api/faces/?offset=100000000000000000000", "offset"),
        ("/api/queue/next/?task=emotion&exclude=99999999999999999999", "exclude"),
        ("/api/queue/next/?task=emotion&exclude=-4", "exclude"),
    ],
)
def test_absurd_query_parameters_get_a_400_naming_the_parameter(client_for, url, field):
    response = client_for("labeler").get(url)
    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]


def test_a_large_limit_is_cut_to_the_maximum_and_paging_still_works(client_for):
    for _ in range(3):
        factories.face()
    body = client_for("labeler").get("/api/faces/?limit=5000&offset=1").json()
    assert body["count"] == 3 and len(body["results"]) == 2


def test_a_16_bit_png_is_scaled_not_clipped(client_for, settings):
    """A 16-bit grey gradient keeps its tones (Pillow's own conversion would store it almost all white)."""
    ramp = (np.linspace(0, 65535, 96 * 96).reshape(96, 96)).astype(np.uint16)
    out = io.BytesIO()
    Image.fromarray(ramp).save(out, "PNG")  # a uint16 array is a 16-bit grey picture
    response = _upload(client_for("labeler"), out.getvalue())
    assert response.status_code == 201, response.content
    face = Face.objects.get(pk=response.json()["faces"][0]["id"])
    stored = np.asarray(Image.open(settings.MEDIA_ROOT / face.image), np.float64)
    assert abs(stored.mean() - 127.5) < 2 and stored.min() < 3 and stored.max() > 252


def test_a_phone_mpo_photo_is_accepted_as_the_jpeg_it_holds(client_for, settings):
    first = Image.fromarray(np.full((96, 96, 3), 90, np.uint8))
    out = io.BytesIO()
    first.save(out, "MPO", save_all=True, append_images=[Image.new("RGB", (96, 96), (200, 10, 10))])
    assert Image.open(io.BytesIO(out.getvalue())).format == "MPO"
    response = _upload(client_for("labeler"), out.getvalue())
    assert response.status_code == 201, response.content
    face = Face.objects.get(pk=response.json()["faces"][0]["id"])
    assert face.original.endswith(".jpg")
    assert abs(np.asarray(Image.open(settings.MEDIA_ROOT / face.image), np.float64).mean() - 90) < 3


@pytest.mark.parametrize("url", ["/api/auth/token/", "/api/training-runs/"])
def test_json_nested_past_any_real_payload_is_a_400(client_for, url):
    body = '{"username": ' + "[" * 990 + "]" * 990 + ', "password": "x", "kind": "keypoints"}'
    response = client_for("staff").post(url, body, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert "nested deeper than 64 levels" in response.json()["detail"]


def test_ordinary_json_still_parses(client_for):
    face = factories.face()
    nested = {"emotion": "sad", "points": [[[["fine"]]]]}  # parsed, then refused by the points' own check
    response = client_for("labeler").post(f"/api/faces/{face.pk}/annotations/", nested, format="json")
    assert response.status_code == 400 and "points" in response.json()["errors"], response.content
    assert "parse error" not in response.json()["detail"]


@pytest.mark.parametrize("url", ["/api/auth/token/", "/api/faces/{}/annotations/"])
def test_a_body_past_the_limit_is_a_json_413(client_for, settings, url):
    url = url.format(factories.face().pk)
    body = '{"username": "' + "a" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10) + '"}'
    response = client_for("labeler").post(url, body, content_type="application/json")
    assert response.status_code == 413, response.content[:300]
    assert response.json()["detail"].startswith("Request body too large: at most")


@pytest.mark.parametrize(
    ("method", "url", "status", "says"),
    [
        ("get", "/api/models/?kind=bogus", 400, "kind: must be one of keypoints, emotion"),
        ("get", "/api/training-runs/?kind=bogus", 400, "kind: must be one of keypoints, emotion"),
        ("get", "/api/no-such-thing/", 404, "No such API route: /api/no-such-thing/"),
        ("post", "/api/models/null,null/promote/", 404, "No such API route"),
    ],
)
def test_wrong_queries_and_routes_get_the_api_error_shape(client_for, method, url, status, says):
    response = getattr(client_for("staff"), method)(url)
    assert response.status_code == status and response["Content-Type"] == "application/json"
    assert says in response.json()["detail"]


def test_a_junk_picture_never_reaches_the_queue(client_for):
    """A 1x1 PNG used to be stored and served first (no label, no prediction); now it goes through detection."""
    response = _upload(client_for("labeler"), factories.png(0, size=(1, 1)))
    assert response.status_code == 422 and "No face found" in response.json()["detail"]
    assert (
        not Face.objects.exists() and client_for("labeler").get("/api/queue/next/?task=emotion").json()["face"] is None
    )


# --- hostile requests (issue #21) -----------------------------------------------------------------------------


def test_guessing_passwords_for_a_token_is_throttled(settings):
    from django.core.cache import cache

    cache.clear()
    factories.user("labeler", "target")
    client = APIClient()
    statuses = [
        client.post("/api/auth/token/", {"username": "target", "password": f"guess{i}"}).status_code for i in range(12)
    ]
    assert statuses[:10] == [400] * 10 and statuses[10:] == [429, 429]
    assert "throttled" in client.post("/api/auth/token/", {"username": "target", "password": "pw"}).json()["detail"]
    cache.clear()
    assert client.post("/api/auth/token/", {"username": "target", "password": "pw"}).status_code == 200


def test_the_session_sign_in_form_is_limited_as_the_token_is_and_a_right_password_clears_the_count(client):
    from django.core.cache import cache

    cache.clear()
    factories.user("labeler", "target")
    wrong = [
        client.post("/accounts/login/", {"username": "target", "password": f"guess{i}"}).status_code for i in range(12)
    ]
    assert wrong[:10] == [200] * 10 and wrong[10:] == [429, 429]  # the form again, then refused
    refused = client.post("/accounts/login/", {"username": "target", "password": "pw"})
    assert refused.status_code == 429 and "Too many failed sign-ins" in refused.content.decode()
    assert int(refused["Retry-After"]) > 0
    cache.clear()
    api = APIClient()
    for _ in range(3):  # an office behind one address: nine mistakes and a right password, again and again
        for i in range(9):
            assert client.post("/accounts/login/", {"username": "target", "password": f"x{i}"}).status_code == 200
        assert client.post("/accounts/login/", {"username": "target", "password": "pw"}).status_code == 302
        for i in range(9):
            assert api.post("/api/auth/token/", {"username": "target", "password": f"x{i}"}).status_code == 400
        assert api.post("/api/auth/token/", {"username": "target", "password": "pw"}).status_code == 200


def test_a_new_x_forwarded_for_on_each_try_does_not_escape_the_sign_in_limit(settings):
    """X-Forwarded-For is believed only from TRUSTED_PROXIES (none by default): a client rotating it is still one
    address; behind a trusted proxy the address is the hop before it."""
    from django.core.cache import cache

    cache.clear()
    factories.user("labeler", "target")
    client = APIClient()

    def tries(n: int, **meta) -> list[int]:
        return [
            client.post(
                "/api/auth/token/",
                {"username": "target", "password": f"guess{i}"},
                HTTP_X_FORWARDED_FOR=f"198.51.100.{i}",
                **meta,
            ).status_code
            for i in range(n)
        ]

    assert tries(12) == [400] * 10 + [429, 429]
    right = client.post("/api/auth/token/", {"username": "target", "password": "pw"}, HTTP_X_FORWARDED_FOR="10.9.9.9")
    assert right.status_code == 429  # the real address is limited whatever the header says
    cache.clear()
    settings.TRUSTED_PROXIES = ["127.0.0.0/8"]  # behind our own proxy: each forwarded client counts on its own
    assert tries(12, REMOTE_ADDR="127.0.0.1") == [400] * 12
    from webapp.common.throttling import client_address

    request = type(
        "R", (), {"META": {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "6.6.6.6, 203.0.113.7, 127.0.0.2"}}
    )
    assert client_address(request) == "203.0.113.7"  # the nearest untrusted hop, not the client's own claim
    request.META["REMOTE_ADDR"] = "192.0.2.1"  # not a trusted proxy: its header is ignored
    assert client_address(request) == "192.0.2.1"


def test_a_nul_byte_in_a_model_file_path_is_a_404_not_a_500(client, settings):
    from webapp.registry.services import baseline_register

    settings.BASELINE_MODELS_DIR = settings.BASE_DIR / "models" / "baseline"
    version = baseline_register()[0]
    response = client.get(f"/model-files/{version.artifact_dir}/%00.json")
    assert response.status_code == 404
    assert client.get(f"/model-files/{version.artifact_dir}/model.json").status_code == 200


@pytest.mark.parametrize("path", ["/api/faces/%0Ax/", "/api/%0A/", "/api/faces/1/%0D%0Aimage/"])
def test_a_newline_in_an_api_path_gets_the_apis_json_404(client, path):
    response = client.get(path)
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert "No such API route" in response.json()["detail"]


@pytest.mark.parametrize("query", ["source=zzz", "split=nowhere", "labeled=bogus"])
def test_an_unknown_filter_value_is_a_400_naming_the_choices(client_for, query):
    response = client_for("labeler").get(f"/api/faces/?{query}")
    assert response.status_code == 400 and "must be one of" in str(response.json())


def test_an_unreadable_upload_says_so_without_python_internals(client_for):
    response = _upload(client_for("labeler"), b"this is not a picture at all")
    assert response.status_code == 400
    message = str(response.json())
    assert "not a readable JPEG, PNG or WEBP image" in message and "BytesIO" not in message and "0x" not in message


@pytest.mark.parametrize("path", ["/api/models/active/", "/api/faces/"])
def test_a_bad_token_is_a_401_with_its_scheme_and_no_token_keeps_the_403(path):
    client = APIClient()
    response = client.get(path, HTTP_AUTHORIZATION="Token not-a-real-token")
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Token")
    assert response.json()["detail"] == "Invalid token."
    assert client.get("/api/models/active/").status_code == 200
    assert client.get("/api/faces/").status_code == 403  # no credentials, a role needed: unchanged


def test_the_queue_count_is_reused_for_queue_count_seconds(client_for, settings):
    from django.core.cache import cache

    cache.clear()
    settings.QUEUE_COUNT_SECONDS = 60
    client = client_for("labeler")
    faces = [factories.face() for _ in range(3)]
    assert client.get("/api/queue/next/?task=emotion").json()["remaining"] == 3
    client.post(f"/api/faces/{faces[0].pk}/annotations/", {"emotion": "sad"}, format="json")
    assert client.get("/api/queue/next/?task=emotion").json()["remaining"] == 3  # the figure of a moment ago
    cache.clear()
    assert client.get("/api/queue/next/?task=emotion").json()["remaining"] == 2


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/faces/{face}/annotations/", {"emotion": "sad", "emotoin": "happiness"}, "emotoin"),
        ("/api/training-runs/", {"kind": "emotion", "epochs": -1}, "epochs"),
        ("/api/models/rollback/", {"kind": "emotion", "to": 1}, "to"),
        ("/api/labelsets/emotion/", {"labels": ["anger", "sad"], "retire": ["fear"]}, "retire"),
    ],
)
def test_a_field_an_operation_does_not_take_is_a_400_naming_it_and_nothing_happens(client_for, path, body, field):
    from webapp.labels.models import LabelSetChange
    from webapp.training.models import TrainingRun

    face = factories.face()
    client = client_for("staff")
    method = client.put if "labelsets" in path else client.post
    response = method(path.format(face=face.pk), body, format="json")
    assert response.status_code == 400 and field in response.json()["errors"], response.content
    assert "unknown field; this operation takes" in response.json()["detail"]
    assert not Annotation.objects.exists() and not TrainingRun.objects.exists() and not LabelSetChange.objects.exists()


def test_a_skip_with_a_label_is_refused_and_a_bad_body_is_a_400_before_a_lease_409():

    from webapp.faces.labeling.services import queue_take

    face = factories.face()
    client = APIClient()
    client.force_authenticate(factories.user("labeler"))
    both = client.post(f"/api/faces/{face.pk}/annotations/", {"skip": True, "emotion": "sad"}, format="json")
    assert both.status_code == 400 and "skip=true marks the face unusable" in both.json()["detail"]
    queue_take(task="emotion", user=factories.user("labeler"))  # another labeler now holds the face
    bad = client.post(f"/api/faces/{face.pk}/annotations/", {"emotion": "nope"}, format="json")
    assert bad.status_code == 400 and "must be a class of the label set" in bad.json()["detail"]
    held = client.post(f"/api/faces/{face.pk}/annotations/", {"emotion": "sad"}, format="json")
    assert held.status_code == 409
    assert not Annotation.objects.filter(origin="human").exists()
