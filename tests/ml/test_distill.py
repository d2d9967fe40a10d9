"""The Keras side of distillation: packing FER2013 for the GPU script and loading the student it sends back."""

import numpy as np
import pytest

from ml import distill
from ml.datasets import read_faces
from ml.models import build_emotion_model
from ml.schema import DEFAULT_LABELS
from ml.train import predict
from tests import csvs


def _student_file(path, model, probes, shift=0.0):
    arrays = {f"{layer.name}/{i}": w for layer in model.layers for i, w in enumerate(layer.get_weights())}
    probs = predict(model, probes.repeat(2, axis=-2).repeat(2, axis=-1)) + shift
    names = np.array(DEFAULT_LABELS)  # the pack says its label set; the student file carries it back
    np.savez(path, probe_images=probes, probe_probabilities=probs, label_names=names, **arrays)
    return path


def test_pack_keeps_fer_pixels_and_the_products_split(tmp_path):
    rows = [csvs.fer_row([0, 1, 3, 4, 5][i % 5], i, "PublicTest" if i % 3 == 0 else "Training") for i in range(12)]
    rows.append(csvs.fer_row(0, 1, "PublicTest"))  # a validation row that repeats training row 1: left out
    data = read_faces(csvs.write(tmp_path / "fer.csv", csvs.FER_HEADER, rows), "fer2013")
    report = distill.pack(data, tmp_path / "fer5.npz")
    packed = np.load(tmp_path / "fer5.npz")
    assert packed["images"].shape == (13, 48, 48)
    np.testing.assert_array_equal(packed["images"].repeat(2, -2).repeat(2, -1), data.images)
    assert report == {"faces": 13, "train": 8, "val": 4} and not packed["val"][-1] and not packed["test"].any()


def test_a_student_loads_layer_by_layer_and_is_checked_on_its_probes(tmp_path):
    teacherless = build_emotion_model()
    probes = np.random.default_rng(0).integers(0, 255, (4, 48, 48), dtype=np.uint8)
    loaded, labels = distill.load_student(_student_file(tmp_path / "ok.npz", teacherless, probes))
    assert labels == DEFAULT_LABELS
    for a, b in zip(loaded.get_weights(), teacherless.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="disagree"):
        distill.load_student(_student_file(tmp_path / "off.npz", teacherless, probes, shift=0.01))
