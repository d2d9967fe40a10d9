"""The server's LiteRT runtime: the shipped TFLite files are the browser's weights, and the whole-photo path on them
stores the crops the TensorFlow path stores, without TensorFlow in the process."""

import subprocess
import sys

import numpy as np
import pytest

from ml import align
from ml.pipeline import Analyzer, LoadedModel
from tests.conftest import REPO_ROOT
from tests.e2e.conftest import astronaut
from tests.ml.test_detect import group_photo

BASELINE = REPO_ROOT / "models" / "baseline"


@pytest.fixture(scope="module")
def runtimes():
    return {
        runtime: {kind: LoadedModel.from_dir(BASELINE / kind, runtime=runtime) for kind in ("keypoints", "emotion")}
        for runtime in ("keras", "litert")
    }


@pytest.mark.parametrize("kind", ["keypoints", "emotion"])
def test_the_shipped_tflite_files_predict_what_the_browsers_files_predict(runtimes, kind):
    photo, prior = astronaut(), align.DETECTORS["blazeface"].box_prior
    crops = [
        align.warp(photo, align.matrix_from_box((160 + dx, 70, 110, 110), prior, align.FACE_FRAMING))
        for dx in (-8, 0, 8)
    ]
    keras, lite = runtimes["keras"][kind](crops), runtimes["litert"][kind](crops)
    assert keras.shape == lite.shape
    # float16 storage of the TF.js weights (the emotion model's are uint8 in TF.js): well under a pixel / a percent
    np.testing.assert_allclose(lite, keras, atol=2e-3)


def test_the_whole_photo_path_stores_the_same_faces_on_both_runtimes(runtimes):
    from ml.detect import FaceDetector

    detector = FaceDetector()
    faces = {
        runtime: Analyzer(models["keypoints"], models["emotion"], detector=detector).analyze(group_photo())
        for runtime, models in runtimes.items()
    }
    assert len(faces["keras"]) == len(faces["litert"]) == 2
    for keras, lite in zip(faces["keras"], faces["litert"], strict=True):
        assert np.abs(keras.points - lite.points).max() < 0.1  # source pixels of a 256 px face
        assert np.abs(keras.face.astype(int) - lite.face.astype(int)).max() <= 2  # the stored 96x96 crop
        assert np.abs(keras.probabilities - lite.probabilities).max() < 0.01
        assert keras.probabilities.argmax() == lite.probabilities.argmax()


def test_the_litert_path_runs_without_tensorflow():
    script = f"""
import sys
from ml.pipeline import Analyzer, LoadedModel
from tests.ml.test_detect import group_photo
models = [LoadedModel.from_dir({str(BASELINE)!r} + "/" + kind, runtime="litert") for kind in ("keypoints", "emotion")]
faces = Analyzer(*models).analyze(group_photo())
assert len(faces) == 2, len(faces)
assert "tensorflow" not in sys.modules and "tf_keras" not in sys.modules, "TensorFlow was imported"
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_a_version_without_its_tflite_file_names_the_fix(tmp_path):
    import shutil

    shutil.copytree(BASELINE / "emotion", tmp_path / "emotion", ignore=shutil.ignore_patterns("*.tflite"))
    with pytest.raises(FileNotFoundError, match="python -m ml tflite"):
        LoadedModel.from_dir(tmp_path / "emotion", runtime="litert")
