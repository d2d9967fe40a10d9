import numpy as np
import pytest
from django.conf import settings

from ml.export import load_tfjs
from tests.e2e.conftest import astronaut
from webapp.registry.selectors import active_version, version_dir

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _keras_outputs(greys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = greys.reshape(-1, 96, 96, 1).astype(np.float32) / 255.0
    keypoints = load_tfjs(version_dir(active_version(kind="keypoints")))
    emotion = load_tfjs(version_dir(active_version(kind="emotion")))
    return keypoints.predict(x, verbose=0) * 96, emotion.predict(x, verbose=0)


def _assert_same_as_keras(last: dict) -> None:
    """The browser's models give what Keras gives on the very crops the browser cut (keypoint and emotion crops)."""
    greys = np.asarray(last["greys"], np.float32)
    points, _ = _keras_outputs(greys)
    _, probabilities = _keras_outputs(np.asarray(last["emotionGreys"], np.float32))
    browser_points = np.asarray(last["cropPoints"], np.float32).reshape(len(greys), -1)
    browser_probs = np.asarray([f["probabilities"] for f in last["faces"]], np.float32)
    assert np.abs(browser_points / 96 - points / 96).max() < 1e-3
    assert np.abs(browser_probs - probabilities).max() < 1e-3


def _wait_ready(page):
    page.wait_for_function("window.studio && window.studio.ready === true", timeout=60_000)
    assert page.locator("#backend").inner_text() == "wasm"


def test_photo_upload_finds_the_face_and_matches_keras(open_page, tmp_path):
    page = open_page("/")
    _wait_ready(page)
    photo = tmp_path / "astronaut.jpg"
    astronaut().save(photo, quality=92)
    page.set_input_files("#photo", str(photo))
    page.wait_for_function("window.studio.last && window.studio.last.faces.length > 0", timeout=30_000)
    last = page.evaluate("window.studio.last")
    assert len(last["faces"]) == 1 and len(last["faces"][0]["points"]) == 15
    classes = page.evaluate("window.studio.models.manifest.emotion.labels")  # the served version's, one bar each
    assert page.locator("#faces .face meter").count() == len(classes)
    assert page.locator("#faces .face .bar span").all_inner_texts() == classes
    assert "face(s) in astronaut.jpg" in page.locator("#status").inner_text()
    _assert_same_as_keras(last)
    # the browser's detector is the server's BlazeFace rebuilt for TF.js: the same box, up to resampling
    from ml.detect import FaceDetector

    (server,) = FaceDetector().detect(astronaut())
    browser = last["faces"][0]["box"]
    got = np.array([browser["x"], browser["y"], browser["width"], browser["height"]])
    assert np.abs(got - np.array(server.box)).max() < 0.05 * server.box[2], (got, server.box)
    # the skeleton is drawn: the canvas has the bright green of the points somewhere
    green = page.evaluate(
        """() => { const c = document.getElementById('view'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i+1] > 200 && d[i] < 90 && d[i+2] > 130 && d[i+2] < 190) n++; return n; }"""
    )
    assert green > 20
    page.screenshot(path=str(settings.BASE_DIR / "docs" / "screenshots" / "demo.png"))


def test_live_webcam_with_a_fake_camera(open_page):
    page = open_page("/")
    _wait_ready(page)
    page.click("#camera")
    page.wait_for_function(
        "window.studio.live && window.studio.last && window.studio.last.faces.length > 0", timeout=30_000
    )
    last = page.evaluate("window.studio.last")
    _assert_same_as_keras(last)
    # between detector runs the face is followed: the previous frame's points seed the next crop
    page.wait_for_function(
        "window.studio.last.ms.detect === 0 && window.studio.last.faces.length === 1"
        " && document.getElementById('ms-detect').textContent === 'followed'",
        timeout=30_000,
    )
    assert page.locator("#camera").inner_text() == "Stop webcam"
    assert "fps" in page.locator("#ms-frame").inner_text()
    # the preview is a mirror: the canvas matches the camera frame flipped, not as it comes
    plain, flipped = page.evaluate(
        """() => { const v = document.getElementById('view'), video = document.getElementById('video');
        const diff = (mirror) => { const c = document.createElement('canvas'); c.width = v.width; c.height = v.height;
          const x = c.getContext('2d'); if (mirror) { x.translate(c.width, 0); x.scale(-1, 1); }
          x.drawImage(video, 0, 0, c.width, c.height);
          const a = x.getImageData(0, 0, c.width, c.height).data, b = v.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          let d = 0; for (let i = 0; i < a.length; i += 4) d += Math.abs(a[i] - b[i]); return d / (a.length / 4); };
        return [diff(false), diff(true)]; }"""
    )
    assert flipped < plain / 2, (plain, flipped)


def test_a_small_photo_is_drawn_large_enough_to_see(open_page, tmp_path):
    page = open_page("/")
    _wait_ready(page)
    photo = tmp_path / "small.png"
    astronaut(180).save(photo)
    page.set_input_files("#photo", str(photo))
    page.wait_for_function("window.studio.last && window.studio.last.faces.length > 0", timeout=30_000)
    width = page.evaluate("document.getElementById('view').width")
    assert width >= 2 * 180, width  # scaled up to the drop area, not drawn at 180 px with tiny dots


def test_a_non_image_file_gets_a_clear_message(open_page, tmp_path):
    page = open_page("/")
    _wait_ready(page)
    bogus = tmp_path / "notes.txt"
    bogus.write_text("hello")
    page.set_input_files("#photo", str(bogus))
    assert "is not a JPEG, PNG or WEBP image" in page.locator("#status").inner_text()


def test_anonymous_visitors_see_no_send_button_and_labelers_do(open_page, labeler):
    assert open_page("/").locator("#send").count() == 0
    assert open_page("/", user=labeler).locator("#send").count() == 1


def test_send_for_labeling_queues_the_crop_with_the_models_predictions(open_page, labeler, tmp_path):
    from webapp.faces.models import Face, Prediction

    page = open_page("/", user=labeler)
    _wait_ready(page)
    photo = tmp_path / "astronaut.png"
    astronaut(480).save(photo)
    page.set_input_files("#photo", str(photo))
    page.wait_for_function("window.studio.last && window.studio.last.faces.length > 0", timeout=30_000)
    page.click("#send")
    page.wait_for_function("document.getElementById('toast').textContent.includes('labeling queue')", timeout=20_000)
    face = Face.objects.get(source="upload")
    assert face.created_by == labeler and face.source_name == "astronaut.png"  # the picture's name
    assert sorted(Prediction.objects.filter(face=face).values_list("task", flat=True)) == ["emotion", "keypoints"]
    assert face.keypoints_uncertainty is not None and 0 <= face.emotion_uncertainty <= 1
    # the stored frame is exactly the crop the models saw in the browser
    from webapp.faces.store.images import read_frame

    stored = read_frame(settings.MEDIA_ROOT / face.image)
    sent = np.asarray(page.evaluate("window.studio.last.stored[0].grey"), np.float32).reshape(96, 96)
    assert np.abs(stored.astype(np.float32) - sent).max() == 0
    # the picture went with it, kept once, with the face's box: the box's corners cut the same crop again
    assert (settings.MEDIA_ROOT / face.original).read_bytes() == photo.read_bytes()
    from PIL import Image

    from webapp.faces.store.detection import face_crops

    # the same geometry in both languages: the server, finding the face in the same picture, puts its box within a
    # pixel or two of the browser's (the models run on LiteRT there, on TF.js here)
    (_, server_box), *_ = face_crops(Image.open(photo).convert("RGB"))
    assert np.abs(np.asarray(face.box) - np.asarray(server_box)).max() < 3, (face.box, server_box)


def test_a_whole_photo_gets_all_15_points_where_they_belong(open_page, tmp_path, repo_root):
    """A frame with 68-point ground truth (../shared/data/frames, a person of the benchmark half), pasted into a
    640x480 picture as a webcam would show it: every one of the 15 points lands within a few pixels of the truth."""
    from PIL import Image

    from ml.align import frame_scale
    from ml.datasets import person_split, read_frames

    frames_dir = repo_root.parent / "shared" / "data" / "frames"
    assert frames_dir.is_dir(), f"{frames_dir} is missing: the shared data lies beside the repository"
    frames = read_frames(frames_dir)
    frames = frames.subset(person_split(frames.persons))
    i = 0
    frame = Image.open(frames.path(i)).convert("RGB")
    scale = 300 / frame.height
    scene = Image.new("RGB", (640, 480), (40, 60, 80))
    scene.paste(frame.resize((round(frame.width * scale), 300), Image.Resampling.LANCZOS), (170, 90))
    truth = frames.points[i] * scale + [170, 90]
    photo = tmp_path / "scene.png"
    scene.save(photo)

    page = open_page("/")
    _wait_ready(page)
    page.set_input_files("#photo", str(photo))
    page.wait_for_function("window.studio.last && window.studio.last.faces.length > 0", timeout=30_000)
    points = np.asarray(page.evaluate("window.studio.last.faces[0].points"))
    error = np.linalg.norm(points - truth, axis=1) * frame_scale(truth)  # in training-frame pixels
    assert error.max() < 5, error.round(2)


def test_a_photo_without_a_face_says_so_without_webcam_advice(open_page, tmp_path):
    from PIL import Image
    from skimage import data

    page = open_page("/")
    _wait_ready(page)
    photo = tmp_path / "rocket.png"
    Image.fromarray(data.rocket()).save(photo)
    page.set_input_files("#photo", str(photo))
    page.wait_for_function("document.getElementById('status').textContent.includes('No face found')", timeout=30_000)
    advice = page.locator("#faces").inner_text()
    assert "No face found in this photo" in advice and "camera, with light" not in advice


def test_a_group_photo_numbers_each_face_as_the_list_does_and_says_when_it_is_unsure(open_page, tmp_path):
    from tests.ml.test_detect import group_photo

    page = open_page("/")
    _wait_ready(page)
    photo = tmp_path / "group.jpg"
    group_photo().save(photo, quality=92)
    page.set_input_files("#photo", str(photo))
    page.wait_for_function("window.studio.last && window.studio.last.faces.length === 2", timeout=30_000)
    headings = page.locator("#faces .face h3").all_inner_texts()
    assert [h.split(":")[0] for h in headings] == ["Face 1", "Face 2"]
    # a white number on a dark tag at the top-left corner of each face's box
    white = page.evaluate(
        """() => { const c = document.getElementById('view'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] === 255 && d[i+1] === 255 && d[i+2] === 255) n++; return n; }"""
    )
    assert white > 20
    probabilities = [f["probabilities"] for f in page.evaluate("window.studio.last.faces")]
    for heading, p in zip(headings, probabilities, strict=True):
        assert ("low confidence" in heading) == (max(p) < 0.5), (heading, p)


def test_a_group_photo_is_sent_for_labeling_in_one_request_under_its_name(open_page, labeler, tmp_path, settings):
    """Every face of the picture in one upload: a throttle of 1 upload a minute lets the whole picture through, and
    its faces share the picture's group."""
    from tests.ml.test_detect import group_photo
    from webapp.faces.models import Face

    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "uploads": "1/minute"},
    }
    from django.core.cache import cache

    cache.clear()
    page = open_page("/", user=labeler)
    _wait_ready(page)
    photo = tmp_path / "team.jpg"
    group_photo().save(photo, quality=92)
    page.set_input_files("#photo", str(photo))
    page.wait_for_function("window.studio.last && window.studio.last.faces.length === 2", timeout=30_000)
    page.click("#send")
    page.wait_for_function("document.getElementById('toast').textContent.includes('labeling queue')", timeout=20_000)
    faces = Face.objects.filter(source="upload")
    assert faces.count() == 2 and set(faces.values_list("source_name", flat=True)) == {"team.jpg"}
    assert len(set(faces.values_list("group", flat=True))) == 1
