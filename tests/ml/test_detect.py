"""BlazeFace (ml.detect) on real photos: scikit-image's public-domain astronaut portrait."""

import numpy as np
import pytest
from PIL import Image

from ml.detect import FaceDetector
from tests.e2e.conftest import astronaut


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()


def group_photo() -> Image.Image:
    """Two faces in one 640x300 picture: the portrait and its mirror image, each 256 px high."""
    face = astronaut(256)
    photo = Image.new("RGB", (640, 300), (90, 90, 90))
    photo.paste(face, (40, 20))
    photo.paste(face.transpose(Image.Transpose.FLIP_LEFT_RIGHT), (340, 30))
    return photo


def test_finds_the_face_and_its_landmarks(detector):
    (found,) = detector.detect(astronaut())
    x, y, w, h = found.box
    assert found.score > 0.8 and 150 < x < 200 and 50 < y < 100 and 80 < w < 130
    eyes, mouth = found.landmarks[:2], found.landmarks[3]
    assert (eyes[:, 0] > x).all() and (eyes[:, 0] < x + w).all() and eyes[:, 1].max() < mouth[1] < y + h


def test_finds_every_face_of_a_group_and_none_where_there_is_none(detector):
    boxes = sorted(d.box for d in detector.detect(group_photo()))
    assert len(boxes) == 2 and boxes[0][0] < 320 < boxes[1][0]
    from skimage import data

    assert detector.detect(Image.fromarray(data.rocket())) == []


def test_a_face_that_fills_the_picture_is_found_on_the_second_try(detector):
    """Cropped to the face alone, the picture gives nothing as it is; inside a border the face is found."""
    tight = astronaut().crop((175, 70, 280, 175))
    assert FaceDetector(pad=0.0).detect(tight) == []
    (found,) = detector.detect(tight)
    x, y, w, h = found.box  # back in the picture's own pixels, not the bordered one's
    assert -20 < x < 20 and -20 < y < 20 and 70 < w < 140 and 70 < h < 140
    assert np.isfinite(found.landmarks).all()


@pytest.mark.parametrize("variant", ["short", "full"])
def test_the_browser_copy_of_blazeface_computes_what_the_tflite_file_computes(variant):
    """python -m ml detector rebuilds the network for TF.js op by op; on the same input both give the same outputs."""
    import tensorflow as tf

    from ml.detect import MODELS_DIR, VARIANTS, keras_model

    spec = VARIANTS[variant]
    interpreter = tf.lite.Interpreter(model_path=str(MODELS_DIR / spec.file))
    interpreter.allocate_tensors()
    x = np.random.default_rng(4).uniform(-1, 1, (1, spec.input, spec.input, 3)).astype(np.float32)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    expected = {int(d["shape"][-1]): interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()}
    boxes, scores = keras_model(variant).predict(x, verbose=0)
    assert np.abs(boxes - expected[16]).max() < 1e-3 and np.abs(scores - expected[1]).max() < 1e-3
