import itertools
import json

import numpy as np
import pytest

from ml.datasets import FaceData
from ml.evaluate import emotion_metrics, keypoint_metrics, save_plots
from ml.export import export_tfjs, load_tfjs, read_manifest
from ml.models import build_emotion_model, build_keypoint_model
from ml.pipeline import LoadedModel
from ml.schema import DEFAULT_LABELS, KEYPOINTS, SKELETON
from ml.train import TrainConfig, predict, train
from tests.csvs import synthetic_face


def _keypoint_data(n: int, offset: int = 0) -> FaceData:
    faces = [synthetic_face(i + offset) for i in range(n)]
    return FaceData(
        format="test",
        images=np.stack([f[0] for f in faces]),
        points=np.stack([f[1] for f in faces]),
        lines=np.arange(n),
    )


FIVE = ("anger", "disgust", "sad", "happiness", "surprise")  # a set of the test's own, not the product's


def _emotion_data(n: int, offset: int = 0, names: tuple[str, ...] = FIVE) -> FaceData:
    data = _keypoint_data(n, offset)
    labels = np.arange(n) % len(names)
    return FaceData(format="test", images=data.images, labels=labels, label_names=names, lines=data.lines)


def test_two_training_steps_lower_the_loss_on_a_tiny_set():
    data = _keypoint_data(32)
    config = TrainConfig(epochs=2, batch_size=16, steps_per_epoch=2, augment=False, learning_rate=1e-3)
    seen = []
    result = train(
        "keypoints", data, _keypoint_data(8, 100), config, on_progress=lambda e, logs: seen.append((e, logs))
    )
    assert [e for e, _ in seen] == [1, 2]
    assert {"loss", "val_loss", "eta_s", "epochs"} <= set(seen[0][1])
    assert result.history["loss"][1] < result.history["loss"][0]
    assert result.metrics["n"] == 8 and np.isfinite(result.metrics["rmse_px"])


def test_emotion_training_runs_with_class_weights_and_can_be_stopped():
    config = TrainConfig(epochs=5, batch_size=16, steps_per_epoch=1)
    result = train("emotion", _emotion_data(20), _emotion_data(10, 50), config, should_stop=lambda: True)
    assert result.stopped and result.epochs_run == 1
    assert set(result.metrics) >= {"accuracy", "macro_f1", "confusion_matrix"}
    assert result.labels == FIVE and result.model.output_shape == (None, 5)


def test_a_parent_of_another_label_set_gets_its_head_regrown_with_the_shared_rows_kept():
    from ml.models import regrow_emotion_head

    parent = build_emotion_model(num_classes=len(FIVE))
    grown_names = ("surprise", "anger", "contempt", "disgust", "sad", "happiness")  # reordered, one new
    grown = regrow_emotion_head(parent, FIVE, grown_names)
    old_kernel, old_bias = parent.get_layer("probabilities").get_weights()
    kernel, bias = grown.get_layer("probabilities").get_weights()
    for j, name in enumerate(grown_names):
        if name in FIVE:
            np.testing.assert_array_equal(kernel[:, j], old_kernel[:, FIVE.index(name)])
    assert bias[2] == pytest.approx(old_bias.mean()) and np.abs(kernel[:, 2]).sum() > 0
    for layer in parent.layers:  # the whole body is the parent's
        if layer.weights and layer.name != "probabilities":
            for a, b in zip(layer.get_weights(), grown.get_layer(layer.name).get_weights(), strict=True):
                np.testing.assert_array_equal(a, b)
    images = _keypoint_data(6).images
    shared = [grown_names.index(n) for n in FIVE]
    before, after = predict(parent, images), predict(grown, images)[:, shared]
    np.testing.assert_array_equal(before.argmax(1), after.argmax(1))  # the five read through their own outputs
    # train() regrows by itself when the data's set is not the parent's
    config = TrainConfig(epochs=1, batch_size=8, steps_per_epoch=1)
    result = train(
        "emotion",
        _emotion_data(16, names=grown_names),
        _emotion_data(12, 40, names=grown_names),
        config,
        initial_model=parent,
        initial_labels=FIVE,
    )
    assert result.labels == grown_names and result.model.output_shape == (None, 6)


@pytest.mark.parametrize("task", ["keypoints", "emotion"])
def test_an_export_reloaded_from_model_json_predicts_what_keras_predicts(tmp_path, task):
    model = (build_keypoint_model if task == "keypoints" else build_emotion_model)()
    labels = DEFAULT_LABELS if task == "emotion" else None
    out = export_tfjs(model, tmp_path / "export", task=task, metrics={"n": 0}, labels=labels)
    images = _keypoint_data(6).images
    np.testing.assert_allclose(predict(load_tfjs(out), images), predict(model, images), atol=1e-4)
    manifest = read_manifest(out)
    assert manifest["input_shape"] == [96, 96, 1] and manifest["quantization"] == "float32"
    if task == "keypoints":
        assert manifest["keypoint_names"] == list(KEYPOINTS) and manifest["skeleton"] == [list(e) for e in SKELETON]
    else:
        assert manifest["labels"] == list(DEFAULT_LABELS)
    assert json.loads((out / "model.json").read_text())["format"] == "layers-model"
    # the server's copy of the same weights (float16 storage), run by LiteRT without TensorFlow
    lite = LoadedModel.from_dir(out, runtime="litert")
    np.testing.assert_allclose(lite.model(images[..., None] / 255.0), predict(model, images), atol=2e-3)
    with pytest.raises(FileExistsError):
        export_tfjs(model, out, task=task, labels=labels)


def test_quantized_export_is_smaller_and_close(tmp_path):
    model = build_keypoint_model()
    full = export_tfjs(model, tmp_path / "f32", task="keypoints")
    small = export_tfjs(model, tmp_path / "u8", task="keypoints", quantize="uint8")
    size = lambda d: sum(p.stat().st_size for p in d.glob("*.bin"))  # noqa: E731
    assert size(small) < size(full) / 3
    images = _keypoint_data(4).images
    assert np.abs(predict(load_tfjs(small), images) - predict(model, images)).max() < 0.05


def test_metrics_follow_their_definitions(tmp_path):
    truth = np.zeros((2, 15, 2))
    pred = truth.copy()
    pred[0, 0] = [3, 4]  # one point 5 px off
    m = keypoint_metrics(pred, truth)
    assert m["rmse_px"] == pytest.approx(np.sqrt((9 + 16) / 60))
    assert m["per_point_error_px"]["left_eye_center"] == pytest.approx(2.5)
    assert m["pck"] == pytest.approx(29 / 30)
    probs = np.eye(5)[[0, 1, 1, 3]]
    e = emotion_metrics(probs, np.array([0, 1, 2, 3]), FIVE)
    assert e["accuracy"] == 0.75 and e["confusion_matrix"][2][1] == 1
    # macro-F1 over present classes 0..3: F1 = 1, 2/3, 0, 1
    assert e["macro_f1"] == pytest.approx((1 + 2 / 3 + 0 + 1) / 4)
    written = save_plots(tmp_path, e, {"loss": [1, 0.5], "val_loss": [1.2, 0.7]})
    assert [p.name for p in written] == ["loss.png", "confusion.png"] and all(p.stat().st_size > 1000 for p in written)


def test_a_fine_tune_that_only_gets_worse_hands_back_the_starting_weights():
    """Epoch 0 is the starting model: a rate that wrecks it leaves the parent's weights, scored as such."""
    start = train("keypoints", _keypoint_data(24), _keypoint_data(8, 100), TrainConfig(epochs=1, steps_per_epoch=2))
    wreck = TrainConfig(epochs=2, batch_size=8, steps_per_epoch=2, learning_rate=50.0, augment=False)
    result = train("keypoints", _keypoint_data(24), _keypoint_data(8, 100), wreck, initial_model=start.model)
    (val_loss,) = result.history["val_loss"][:1]
    assert (val_loss is None or val_loss > 0) and result.best_epoch == 0  # None: diverged to an infinity
    for kept, parent in zip(result.model.get_weights(), start.model.get_weights(), strict=True):
        np.testing.assert_array_equal(kept, parent)
    assert result.metrics["rmse_px"] == pytest.approx(start.metrics["rmse_px"], abs=1e-4)


def test_the_command_line_and_the_app_share_the_baseline_recipes():
    from ml.train import FINETUNE_RECIPES, RECIPES, estimate_seconds, recipe

    assert RECIPES["keypoints"].schedule == "cosine" and RECIPES["keypoints"].epochs == 240
    assert RECIPES["emotion"].batch_size == 128 and RECIPES["emotion"].learning_rate == 3e-3
    assert FINETUNE_RECIPES["emotion"].learning_rate < RECIPES["emotion"].learning_rate
    assert FINETUNE_RECIPES["emotion"].weight_decay == 0 and FINETUNE_RECIPES["emotion"].schedule == "plateau"
    quick = recipe("keypoints", fine_tune=False, epochs=3)
    assert (quick.epochs, quick.patience, quick.schedule, quick.learning_rate) == (3, 3, "cosine", 2e-3)
    assert estimate_seconds("emotion", 1000, quick, per_face_epoch=0.01) == pytest.approx(30.0)


def test_a_cosine_schedule_warms_up_then_decays_to_almost_nothing():
    from ml.train import cosine_rate

    config = TrainConfig(epochs=10, learning_rate=1e-2, schedule="cosine", warmup_epochs=2)
    rates = [cosine_rate(epoch, config) for epoch in range(config.epochs)]
    assert rates[:3] == pytest.approx([1e-2 / 3, 2e-2 / 3, 1e-2])  # the warm-up climbs to the peak
    assert all(a > b for a, b in itertools.pairwise(rates[2:])) and rates[-1] < 1e-2 / 20
    plain = TrainConfig(epochs=240, learning_rate=2e-3, schedule="cosine")  # no warm-up: the keypoint recipe's curve
    assert cosine_rate(0, plain) == 2e-3 and cosine_rate(120, plain) == pytest.approx(1e-3)


def test_weight_decay_trains_with_adamw():
    config = TrainConfig(epochs=1, batch_size=16, steps_per_epoch=1, weight_decay=1e-2, schedule="cosine")
    result = train("emotion", _emotion_data(20), _emotion_data(10, 50), config)
    assert type(result.model.optimizer).__name__ == "AdamW" and result.model.optimizer.weight_decay == 1e-2
    assert np.isfinite(result.history["loss"][0])


def test_a_prior_shift_multiplies_one_classs_odds_on_every_face():
    from ml.models import shift_priors

    model = build_emotion_model(num_classes=len(FIVE))
    images = _keypoint_data(8).images
    before = predict(model, images)
    after = predict(shift_priors(model, FIVE, {"sad": float(np.log(2.0))}), images)
    sad = FIVE.index("sad")
    odds = lambda p: p[:, sad] / (1 - p[:, sad])  # noqa: E731
    np.testing.assert_allclose(odds(after), 2 * odds(before), rtol=1e-4)
    others = [i for i in range(len(FIVE)) if i != sad]
    np.testing.assert_allclose(  # the other classes keep their ratios
        after[:, others] / after[:, others].sum(1, keepdims=True),
        before[:, others] / before[:, others].sum(1, keepdims=True),
        rtol=1e-4,
    )
    with pytest.raises(ValueError, match="no class contempt"):
        shift_priors(model, FIVE, {"contempt": 1.0})


def test_a_run_that_diverges_keeps_a_history_json_can_hold():
    """A rate that sends the loss to NaN: the history says None for that epoch (a run's history is stored as JSON,
    which has no NaN; the worker's run failed on the database's JSON check instead of deciding)."""
    import json

    start = train("keypoints", _keypoint_data(24), _keypoint_data(8, 100), TrainConfig(epochs=1, steps_per_epoch=2))
    wreck = TrainConfig(epochs=1, batch_size=8, steps_per_epoch=2, learning_rate=1e12, augment=False)
    result = train("keypoints", _keypoint_data(24), _keypoint_data(8, 100), wreck, initial_model=start.model)
    assert None in result.history["val_loss"] and result.best_epoch == 0
    json.dumps(result.history, allow_nan=False)  # raises on a NaN or an infinity
