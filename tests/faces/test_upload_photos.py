"""POST /api/faces/upload/ with whole photos: detected and aligned on the server, one stored face per face."""

import io

import numpy as np
import pytest
from PIL import Image

from ml import align
from tests.e2e.conftest import astronaut
from tests.ml.test_detect import group_photo
from webapp.faces.models import Face
from webapp.faces.store.images import read_frame

pytestmark = pytest.mark.usefixtures("media")


@pytest.fixture
def shipped_models(settings, repo_root, db):
    """The real shipped models active, as on a fresh `make run`: alignment needs a keypoint model that works."""
    from webapp.registry.services import baseline_register

    settings.BASELINE_MODELS_DIR = repo_root / "models" / "baseline"
    return {v.kind: v for v in baseline_register() if v.number == 1}  # the served ones (v2: the seed's five)


def _upload(client, image: Image.Image, fmt: str = "JPEG", name: str = "photo.jpg"):
    out = io.BytesIO()
    image.save(out, fmt)
    out.seek(0)
    out.name = name
    return client.post("/api/faces/upload/", {"image": out}, format="multipart")


def _anchors_in_stored(face: Face) -> np.ndarray:
    """Where the shipped keypoint model, run through the same alignment, puts the eye/lip anchor midpoint."""
    from ml.pipeline import LoadedModel
    from webapp.registry.selectors import active_version, version_dir

    model = LoadedModel.from_dir(version_dir(active_version(kind="keypoints")))
    crop = Image.fromarray(read_frame(_path(face)))
    seed = align.reframe_matrix(align.FACE_FRAMING, model.framing)
    points = model([align.warp(crop, seed)]).reshape(15, 2) * 96
    eye, lip = align.anchors(align.apply(align.invert(seed), points))
    return (eye + lip) / 2, np.linalg.norm(lip - eye)


def _path(face):
    from django.conf import settings

    return settings.MEDIA_ROOT / face.image


def test_a_photo_with_two_faces_stores_two_aligned_faces(client_for, shipped_models):
    response = _upload(client_for("labeler"), group_photo())
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["created"] == 2 and len(body["faces"]) == 2
    faces = Face.objects.filter(pk__in=[f["id"] for f in body["faces"]])
    assert faces.count() == 2 and len({f.checksum for f in faces}) == 2
    for face in faces:
        frame = read_frame(_path(face))
        assert frame.shape == (96, 96) and frame.std() > 20  # a face, not a blank crop
        mid, distance = _anchors_in_stored(face)
        # cut in the stored faces' framing: anchors near (48, 57), 38 px apart
        assert np.abs(mid - align.FACE_FRAMING.center).max() < 4 and abs(distance - 38) < 4
    again = _upload(client_for("labeler"), group_photo())
    assert again.status_code == 200 and again.json()["created"] == 0


def test_a_photo_without_a_face_gets_a_422_and_stores_nothing(client_for, shipped_models):
    from skimage import data

    response = _upload(client_for("labeler"), Image.fromarray(data.rocket()))
    assert response.status_code == 422, response.content
    assert "No face found" in response.json()["detail"]
    assert Face.objects.count() == 0


def test_a_pre_cropped_face_is_stored_as_it_is(client_for, shipped_models):
    crop = astronaut().crop((150, 40, 310, 200)).convert("L").resize((96, 96))
    response = _upload(client_for("labeler"), crop, "PNG", "crop.png")
    assert response.status_code == 201, response.content
    (face,) = Face.objects.all()
    assert np.array_equal(read_frame(_path(face)), np.asarray(crop))


def test_without_an_active_keypoint_model_the_detector_box_frames_the_face(client_for):
    response = _upload(client_for("labeler"), astronaut())
    assert response.status_code == 201, response.content
    assert response.json()["created"] == 1


@pytest.mark.django_db(transaction=True)
def test_the_same_new_picture_sent_at_once_by_several_clients_is_one_face_and_no_error():
    import concurrent.futures

    from django.core.cache import cache
    from django.db import connections
    from rest_framework.test import APIClient

    from tests import factories

    cache.clear()  # upload throttles count per user across tests
    labelers = [factories.user("labeler") for _ in range(4)]
    crop = astronaut().crop((150, 40, 310, 200)).convert("L").resize((96, 96))

    def send(i):
        try:
            client = APIClient()
            client.force_authenticate(labelers[i])
            return _upload(client, crop, "PNG", "crop.png")
        finally:
            connections.close_all()

    for _ in range(4):  # rounds: a race is a matter of timing
        Face.objects.all().delete()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            responses = list(pool.map(send, range(4)))
        assert sorted(r.status_code for r in responses) in ([200, 200, 200, 201],), [r.content for r in responses]
        assert len({r.json()["faces"][0]["id"] for r in responses}) == 1 and Face.objects.count() == 1


@pytest.mark.parametrize("size", [(40000, 1000), (1, 30000), (9000, 1000)])
def test_a_strip_of_a_picture_is_refused_at_once_and_stores_nothing(client_for, shipped_models, size):
    """A 39 KB PNG of 40000 x 1000 px is under the pixel limit; detecting in it took a minute and gigabytes."""
    import time

    started = time.monotonic()
    response = _upload(client_for("labeler"), Image.new("L", size, 128), "PNG", "strip.png")
    assert response.status_code == 400, response.content
    assert f"{size[0]} x {size[1]} px" in str(response.json()) and "at most 8" in str(response.json())
    assert time.monotonic() - started < 5 and Face.objects.count() == 0


def test_a_large_photo_is_read_at_a_bounded_size_and_its_face_still_found(client_for, shipped_models, settings):
    settings.DETECT_MAX_SIDE = 512
    photo = astronaut(2048)  # 2048 px: the detector reads it at 512
    response = _upload(client_for("labeler"), photo)
    assert response.status_code == 201, response.content
    face = Face.objects.get(pk=response.json()["faces"][0]["id"])
    mid, distance = _anchors_in_stored(face)
    assert np.abs(mid - align.FACE_FRAMING.center).max() < 4 and abs(distance - 38) < 4


def test_crops_of_one_picture_are_one_request_and_a_wrong_size_stores_nothing(client_for):
    from tests import factories

    client = client_for("labeler")
    crops = [io.BytesIO(factories.png(i)) for i in (1, 2)]
    response = client.post("/api/faces/upload/", {"crops": crops, "name": "team.jpg"}, format="multipart")
    assert response.status_code == 201 and response.json()["created"] == 2
    faces = Face.objects.all()
    assert set(faces.values_list("source_name", flat=True)) == {"team.jpg"}
    assert len(set(faces.values_list("group", flat=True))) == 1
    wrong = [io.BytesIO(factories.png(3)), io.BytesIO(factories.png(4, size=(120, 96)))]
    response = client.post("/api/faces/upload/", {"crops": wrong}, format="multipart")
    assert response.status_code == 400 and "crop 2 is 120x96" in str(response.json()) and Face.objects.count() == 2
    both = client.post(
        "/api/faces/upload/",
        {"crops": [io.BytesIO(factories.png(5))], "image": io.BytesIO(factories.png(6))},
        format="multipart",
    )
    assert both.status_code == 400 and Face.objects.count() == 2


def test_a_model_the_server_cannot_run_is_a_503_with_a_retry_hint_and_stores_nothing(client_for, shipped_models):
    from webapp.registry.selectors import version_dir

    (version_dir(shipped_models["keypoints"]) / "model.tflite").unlink()  # a version from before TFLite files
    response = _upload(client_for("labeler"), group_photo())
    assert response.status_code == 503, response.content
    assert int(response["Retry-After"]) > 0
    assert "manage.py bootstrap" in response.json()["detail"]
    assert Face.objects.count() == 0


def test_bootstrap_writes_the_tflite_file_a_version_lacks_and_the_upload_then_works(client_for, shipped_models):
    from django.core.management import call_command

    from webapp.registry.selectors import version_dir

    tflite = version_dir(shipped_models["keypoints"]) / "model.tflite"
    shipped = tflite.read_bytes()
    tflite.unlink()
    call_command("bootstrap", stdout=io.StringIO())
    assert tflite.stat().st_size == len(shipped)  # the same conversion of the same TF.js files
    assert _upload(client_for("labeler"), group_photo()).status_code == 201
