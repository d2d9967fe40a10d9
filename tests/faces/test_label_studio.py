"""Label Studio's JSON both ways and our ML backend's endpoints (the real Label Studio: tests/interop/)."""

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from ml import align
from ml.schema import DEFAULT_LABELS, KEYPOINTS
from tests import factories
from tests.ml.test_detect import group_photo
from webapp.faces.interchange.labelstudio import protocol as ls
from webapp.faces.labeling.selectors import current_labels
from webapp.faces.models import Annotation, Face

pytestmark = pytest.mark.usefixtures("media")


@pytest.fixture
def shipped_models(settings, repo_root, db):
    from webapp.registry.services import baseline_register

    settings.BASELINE_MODELS_DIR = repo_root / "models" / "baseline"
    return {v.kind: v for v in baseline_register() if v.number == 1}  # the served ones (v2: the seed's five)


def _uri(image: Image.Image) -> str:
    out = io.BytesIO()
    image.save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def _import(client, tasks) -> dict:
    upload = io.BytesIO(json.dumps(tasks).encode())
    upload.name = "project-1.json"
    response = client.post("/api/datasets/import/", {"format": "label-studio", "file": upload}, format="multipart")
    assert response.status_code == 201, response.content
    return response.json()


def _task(image_uri: str, result: list, author: dict | None = None, task_id: int = 1) -> dict:
    annotation = {"result": result, "created_at": "2026-11-30T10:00:00.000000Z"}
    if author:
        annotation["completed_by"] = author
    return {"id": task_id, "data": {"image": image_uri}, "annotations": [annotation]}


def test_the_config_names_our_15_keypoints_and_the_label_sets_classes(client, db):
    response = client.get("/api/label-studio/config/")
    assert response.status_code == 200 and response["Content-Type"].startswith("application/xml")
    from xml.etree import ElementTree

    view = ElementTree.fromstring(response.content)
    assert view.find("Image").get("name") == "image" and view.find("Image").get("value") == "$image"
    assert [label.get("value") for label in view.find("KeyPointLabels")] == list(KEYPOINTS)
    assert [choice.get("value") for choice in view.find("Choices")] == list(DEFAULT_LABELS)
    # radio buttons: a click on the class the model chose confirms it (a checkbox would untick it)
    assert view.find("Choices").get("choice") == "single-radio"
    assert view.find("RectangleLabels").get("name") == "face"
    from webapp.labels.services import labelset_add

    labelset_add(names=["contempt"])  # the config follows the set
    view = ElementTree.fromstring(client.get("/api/label-studio/config/").content)
    assert [choice.get("value") for choice in view.find("Choices")] == [*DEFAULT_LABELS, "contempt"]


def test_our_export_imported_back_keeps_every_point_emotion_and_author(client_for, shipped_models, staff):
    labeler = factories.user("labeler", name="ada")
    labeler.email = "ada@lab.example"
    labeler.save()
    faces = [factories.face(seed) for seed in range(3)]
    from webapp.faces.labeling.services import annotation_submit

    for i, face in enumerate(faces):
        annotation_submit(face=face, author=labeler, points=factories.points(i), emotion=DEFAULT_LABELS[i])
    before = {f.checksum: (current_labels(task="keypoints")[f.pk], current_labels(task="emotion")[f.pk]) for f in faces}
    client = client_for("staff")
    response = client.get("/api/datasets/export/label-studio/")
    assert response.status_code == 200
    tasks = json.loads(b"".join(response.streaming_content))
    assert len(tasks) == 3
    (prediction,) = tasks[0]["predictions"]
    assert prediction["model_version"] == "emotion-ai-studio keypoints v1 + emotion v1" and 0 < prediction["score"] <= 1
    assert sum(r["type"] == "keypointlabels" for r in prediction["result"]) == 15
    assert tasks[0]["annotations"][0]["completed_by"]["email"] == "ada@lab.example"
    Face.objects.all().delete()  # a fresh instance, as far as faces go

    report = _import(client, tasks)
    assert report["created"] == 3 and report["errors"] == []
    for face in Face.objects.all():
        points, emotion = before[face.checksum]
        now = current_labels(task="keypoints")[face.pk]
        assert max(abs(a[k] - b[k]) for a, b in zip(points, now, strict=True) for k in "xy") < 0.5
        assert current_labels(task="emotion")[face.pk] == emotion
        (annotation,) = face.annotations.all()
        assert annotation.author == labeler and annotation.origin == Annotation.Origin.HUMAN
    assert _import(client, tasks)["created"] == 0 and Annotation.objects.count() == 3  # idempotent


def test_a_whole_photo_with_two_labeled_faces_stores_two_crops_cut_from_the_human_points(client_for, shipped_models):
    from webapp.faces.store.detection import analyze_photo

    photo = group_photo()
    found, _ = analyze_photo(photo)
    result = []
    for face in found:  # a labeler's points: the model's, moved by a pixel
        result += ls.keypoint_results(face.points + 1.0, photo.width, photo.height, start=len(result))
    report = _import(client_for("staff"), [_task(_uri(photo), result, {"id": 7, "email": "bo@lab.example"})])
    assert report["created"] == 2 and report["errors"] == []
    for face in Face.objects.all():
        (annotation,) = face.annotations.all()
        points = np.array([[p["x"], p["y"]] for p in annotation.points])
        eye, lip = align.anchors(points)
        # the crop is cut from the labeler's own points: their anchors sit where the stored framing puts them
        assert np.allclose((eye + lip) / 2, align.FACE_FRAMING.center, atol=0.05)
        assert annotation.author.email == "bo@lab.example" and not annotation.author.is_active
        assert annotation.created_at.isoformat().startswith("2026-11-30T10:00:00")


def test_a_future_date_in_the_file_is_clamped_so_a_later_correction_is_the_label(client_for, shipped_models):
    from django.utils import timezone

    from webapp.faces.labeling.services import annotation_submit

    crop = _uri(Image.fromarray(np.full((96, 96), 128, np.uint8)))
    tasks = [_task(crop, [ls.emotion_result("happiness", 0)], {"email": "ada@lab.example"})]
    tasks[0]["annotations"][0]["created_at"] = "9999-12-31T23:59:59Z"
    before = timezone.now()
    report = _import(client_for("staff"), tasks)
    assert report["errors"] == [] and report["created"] == 1
    (face,) = Face.objects.all()
    (imported,) = face.annotations.all()
    assert before <= imported.created_at <= timezone.now()  # the import's time, not the year 9999
    annotation_submit(face=face, author=factories.user("labeler"), emotion="sad")
    assert current_labels(task="emotion")[face.pk] == "sad"  # the labeler's later correction is the label
    # a time in the past is kept as the file says it, read as UTC when it names no zone
    tasks[0]["annotations"][0]["created_at"] = "2025-02-03T04:05:06"
    tasks[0]["data"]["image"] = _uri(Image.fromarray(np.full((96, 96), 90, np.uint8)))
    _import(client_for("staff"), tasks)
    newest = Annotation.objects.exclude(face=face).get()
    assert newest.created_at.isoformat() == "2025-02-03T04:05:06+00:00"


def test_an_annotator_is_credited_to_an_existing_user_only_by_that_users_e_mail(client_for, shipped_models, staff):
    ada = factories.user("labeler", name="ada")
    ada.email = "Ada@Lab.example"
    ada.save()
    staff.email = "boss@lab.example"
    staff.save()
    crop = lambda value: _uri(Image.fromarray(np.full((96, 96), value, np.uint8)))  # noqa: E731
    tasks = [
        _task(crop(100), [ls.emotion_result("happiness", 0)], {"email": "ada@lab.example"}, task_id=1),
        # a name in the file is anyone's: the staff user's username credits nothing to the staff user
        _task(crop(110), [ls.emotion_result("sad", 0)], {"email": staff.username}, task_id=2),
        _task(crop(120), [ls.emotion_result("anger", 0)], {"email": "new@lab.example"}, task_id=3),
    ]
    report = _import(client_for("staff"), tasks)
    assert report["errors"] == [] and report["created"] == 3
    by_emotion = {a.emotion: a.author for a in Annotation.objects.select_related("author")}
    assert by_emotion["happiness"] == ada
    assert by_emotion["sad"] != staff and by_emotion["sad"].username == f"label-studio:{staff.username}"
    made = by_emotion["anger"]
    assert made.email == "new@lab.example" and made.username == "label-studio:new@lab.example"
    for account in (by_emotion["sad"], by_emotion["anger"]):
        assert not account.is_active and not account.has_usable_password()
    assert report["annotators"] == {
        "ada@lab.example": {"user": "ada", "existed": True},
        staff.username: {"user": f"label-studio:{staff.username}", "existed": False},
        "new@lab.example": {"user": "label-studio:new@lab.example", "existed": False},
    }
    assert "credited by e-mail to existing accounts: ada@lab.example -> ada" in report["summary"]
    assert "label-studio:new@lab.example" in report["summary"]
    # our export names the made account by its e-mail (or username): imported again, it maps back to the same one
    report = _import(client_for("staff"), tasks)
    assert report["created"] == 0 and Annotation.objects.count() == 3


def test_every_bad_task_is_reported_by_id_and_stores_nothing_while_good_ones_land(client_for, shipped_models):
    crop = _uri(Image.fromarray(np.full((96, 96), 128, np.uint8)))
    full = ls.keypoint_results(np.array(factories.points_array(0)), 96, 96)
    outside = json.loads(json.dumps(full))
    outside[0]["value"]["x"] = 140.0
    unknown = json.loads(json.dumps(full))
    unknown[0]["value"]["keypointlabels"] = ["left_ear"]
    tasks = [
        _task(crop, [*full, ls.emotion_result("happiness", 15)], task_id=1),  # good
        {"id": 2, "data": {}},  # no image
        _task(crop, outside, task_id=3),
        _task(crop, unknown, task_id=4),
        _task(crop, full[:14], task_id=5),  # 14 of 15
        _task(_uri(group_photo()), [ls.emotion_result("disgust", 0)], task_id=6),  # one emotion for two faces
        _task("data:image/png;base64," + base64.b64encode(b"not an image").decode(), [], task_id=7),
        _task("http://elsewhere.example/a.jpg", [], task_id=8),  # LABEL_STUDIO_URL is not set
        "not a task",
    ]
    report = _import(client_for("staff"), tasks)
    assert report["created"] == 1
    errors = "\n".join(report["errors"])
    for task_id in (2, 3, 4, 5, 6, 7, 8):
        assert f"task {task_id}:" in errors, errors
    assert "task #9" in errors and len(report["errors"]) == 8
    assert "outside the image" in errors and "left_ear" in errors and "14 of 15" in errors
    assert "one emotion for a photo of 2 faces" in errors and "LABEL_STUDIO_URL" in errors
    assert Face.objects.count() == 1 and Annotation.objects.count() == 1


def test_images_are_fetched_from_label_studio_alone(settings):
    settings.LABEL_STUDIO_URL = "http://127.0.0.1:9"
    with pytest.raises(ls.TaskError, match="not on LABEL_STUDIO_URL"):
        ls.task_image_bytes("http://169.254.169.254/latest/meta-data")
    with pytest.raises(ls.TaskError, match="did not send it"):
        ls.task_image_bytes("/data/upload/1/face.png")  # on that host, which is down


def test_a_redirect_off_label_studio_is_not_followed(settings):
    import http.server
    import threading

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.startswith("/data/upload/"):
                self.send_response(302)
                self.send_header("Location", f"http://127.0.0.2:{self.server.server_port}/meta-data")
            else:
                self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings.LABEL_STUDIO_URL = f"http://127.0.0.1:{server.server_port}"
        with pytest.raises(ls.TaskError, match="redirected off"):
            ls.task_image_bytes("/data/upload/1/face.png")
    finally:
        server.shutdown()


def test_a_dripping_image_holds_a_predict_no_longer_than_its_budget_and_bad_urls_are_that_tasks_error(
    client_for, shipped_models, settings
):
    """One byte every 0.3 s (each read far inside the per-read timeout) once held a worker for minutes: a request has
    one deadline for all its fetches, so six such tasks end within it, each with its reason; a URL with a space,
    CR/LF or NUL is its task's error, not a 500 for the batch."""
    import http.server
    import threading
    import time

    class Drip(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", "10000")
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b"\x89")
                    self.wfile.flush()
                    time.sleep(0.3)
            except OSError:
                pass  # the client gave up, as it should

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Drip)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings.LABEL_STUDIO_URL = f"http://127.0.0.1:{server.server_port}"
        settings.LABEL_STUDIO_REQUEST_SECONDS, settings.LABEL_STUDIO_TIMEOUT = 2.0, 1.5
        tasks = [{"id": i, "data": {"image": f"/data/upload/{i}.png"}} for i in range(6)]
        tasks += [{"id": 7, "data": {"image": "/data/a b.jpg"}}, {"id": 8, "data": {"image": "/data/a\r\nb\x00.jpg"}}]
        started = time.monotonic()
        response = client_for("staff").post("/api/label-studio/predict", {"tasks": tasks}, format="json")
        took = time.monotonic() - started
    finally:
        server.shutdown()
    assert response.status_code == 200, response.content
    errors = [r.get("error", "") for r in response.json()["results"]]
    assert took < 4, took  # the 2 s budget, and no more than one read past it
    assert all(e for e in errors) and any("not fetched within this request's 2 s" in e for e in errors[:6])
    assert "no spaces or control characters" in errors[6] and "no spaces or control characters" in errors[7]


def test_the_ml_backend_needs_a_staff_user_over_basic_auth(client, shipped_models, staff, settings):
    assert client.get("/api/label-studio/health").status_code in (401, 403)
    labeler = factories.user("labeler")
    for user, expected in ((labeler, 403), (staff, 200)):
        auth = "Basic " + base64.b64encode(f"{user.username}:pw".encode()).decode()
        response = client.get("/api/label-studio/health", HTTP_AUTHORIZATION=auth)
        assert response.status_code == expected
    assert response.json()["status"] == "UP"
    # not set up to read Label Studio's images: health says why, and setup refuses (Label Studio shows that)
    settings.LABEL_STUDIO_URL, settings.LABEL_STUDIO_API_KEY = "", ""
    problems = client.get("/api/label-studio/health", HTTP_AUTHORIZATION=auth).json()["problems"]
    assert "LABEL_STUDIO_URL is not set" in problems[0] and "LABEL_STUDIO_API_KEY is not set" in problems[1]

    def setup():
        body = {"project": "1.1"}
        return client.post("/api/label-studio/setup", body, HTTP_AUTHORIZATION=auth, content_type="application/json")

    refused = setup()
    assert refused.status_code == 400 and "every prediction would be empty" in refused.json()["detail"]
    settings.LABEL_STUDIO_URL, settings.LABEL_STUDIO_API_KEY = "http://127.0.0.1:8080", "token"
    assert client.get("/api/label-studio/health", HTTP_AUTHORIZATION=auth).json()["problems"] == []
    assert setup().json()["model_version"] == "emotion-ai-studio keypoints v1 + emotion v1"


def test_wrong_basic_auth_passwords_are_limited_per_address(client, staff, settings):
    from django.core.cache import cache

    cache.clear()
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK}
    settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {
        **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
        "login": "3/minute",
    }
    wrong = "Basic " + base64.b64encode(f"{staff.username}:guess".encode()).decode()
    right = "Basic " + base64.b64encode(f"{staff.username}:pw".encode()).decode()
    codes = [
        client.get("/api/label-studio/health", HTTP_AUTHORIZATION=wrong, HTTP_X_FORWARDED_FOR=f"198.51.100.{i}")
        for i in range(4)
    ]
    assert [c.status_code for c in codes] == [401, 401, 401, 429]  # a new X-Forwarded-For each time changes nothing
    assert client.get("/api/label-studio/health", HTTP_AUTHORIZATION=right).status_code == 429  # the address waits
    cache.clear()
    assert client.get("/api/label-studio/health", HTTP_AUTHORIZATION=right).status_code == 200


def test_predict_gives_15_regions_per_face_and_the_emotion_of_a_one_face_photo(client_for, shipped_models):
    from tests.e2e.conftest import astronaut

    tasks = [{"id": 1, "data": {"image": _uri(group_photo())}}, {"id": 2, "data": {"image": _uri(astronaut(400))}}]
    response = client_for("staff").post("/api/label-studio/predict", {"tasks": tasks}, format="json")
    assert response.status_code == 200, response.content
    two, one = response.json()["results"]
    for prediction, faces in ((two, 2), (one, 1)):
        kinds = [r["type"] for r in prediction["result"]]
        assert kinds.count("keypointlabels") == 15 * faces
        assert kinds.count("choices") == (1 if faces == 1 else 0)
        assert prediction["model_version"].endswith("keypoints v1 + emotion v1") and 0 < prediction["score"] <= 1
        for region in prediction["result"]:
            if region["type"] == "keypointlabels":
                assert 0 <= region["value"]["x"] <= 100 and 0 <= region["value"]["y"] <= 100
        # each face is a box named by its number, its 15 points nested under it (not 30 points of the same names)
        boxes = {r["id"]: r for r in prediction["result"] if r["type"] == "rectanglelabels"}
        assert len(boxes) == faces
        for k, (box_id, box) in enumerate(boxes.items()):
            assert box["meta"]["text"][0].startswith(f"face {k + 1}: ")
            points = [r for r in prediction["result"] if r.get("parentID") == box_id]
            assert sorted(r["value"]["keypointlabels"][0] for r in points) == sorted(KEYPOINTS)
            v = box["value"]
            for r in points:  # inside their face's box
                assert v["x"] <= r["value"]["x"] <= v["x"] + v["width"]
                assert v["y"] <= r["value"]["y"] <= v["y"] + v["height"]
    # the two faces' eyes lie on their own halves of the 640-px photo
    xs = [r["value"]["x"] for r in two["result"] if r["value"].get("keypointlabels") == ["left_eye_center"]]
    assert sorted(x < 50 for x in xs) == [False, True]
    assert Face.objects.count() == 0  # predicting stores nothing
    # a project made with the config before the face boxes gets its points as before, without boxes it cannot show
    old_config = '<View><Image name="image" value="$image"/><KeyPointLabels name="keypoints" toName="image"/></View>'
    response = client_for("staff").post(
        "/api/label-studio/predict", {"tasks": tasks[1:], "label_config": old_config}, format="json"
    )
    (result,) = response.json()["results"]
    assert [r["type"] for r in result["result"]].count("rectanglelabels") == 0
    assert not any("parentID" in r for r in result["result"])


def test_the_webhook_does_nothing_unless_retraining_from_label_studio_is_on(client_for, shipped_models, settings):
    settings.LABEL_STUDIO_RETRAIN = False
    event = {"action": "ANNOTATION_CREATED", "task": {"id": 1, "data": {}}, "annotation": {"result": []}}
    response = client_for("staff").post("/api/label-studio/webhook", event, format="json")
    assert response.status_code == 200 and response.json()["status"] == "ignored"
    assert Face.objects.count() == 0
