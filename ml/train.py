"""train(task, train_data, val_data, config, on_progress) -> TrainResult: a pure function of its inputs.

Used by the CLI (which draws a progress bar from ``on_progress``), the Celery worker (which stores it in its run row
and stops when ``should_stop`` says so) and the benchmarks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import tensorflow as tf
import tf_keras as keras

from ml import align
from ml.augment import TASK_AUGMENT, make_dataset
from ml.datasets import FaceData
from ml.evaluate import evaluate
from ml.models import BUILDERS, build_emotion_model, regrow_emotion_head
from ml.recipes import (  # noqa: F401 - the recipes live apart so the web process can plan without TensorFlow
    FINETUNE_RECIPES,
    RECIPES,
    SECONDS_PER_FACE_EPOCH,
    TrainConfig,
    estimate_seconds,
    recipe,
)
from ml.schema import IMAGE_SIZE, TASKS

ProgressFn = Callable[[int, dict], None]


@dataclass
class TrainResult:
    task: str
    model: keras.Model
    history: dict[str, list[float | None]]  # per epoch; a loss that diverged (NaN, inf) is None: JSON has neither
    metrics: dict  # evaluation of the best weights on the validation set
    config: dict
    seconds: float
    n_train: int
    n_val: int
    epochs_run: int
    best_epoch: int
    stopped: bool = False  # should_stop() asked to stop before the last epoch
    val_scores: np.ndarray | None = None  # one score per validation face (ml.evaluate.evaluate), for comparisons
    extra: dict = field(default_factory=dict)
    labels: tuple[str, ...] | None = None  # emotion: the classes of the model's outputs, in order (its manifest's)


class TrainingCancelled(Exception):
    pass


def _targets(data: FaceData) -> np.ndarray:
    return data.points if data.task == "keypoints" else data.labels


def class_weights(labels: np.ndarray, power: float, num_classes: int) -> np.ndarray:
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    present = counts > 0
    weights = np.ones(num_classes)
    weights[present] = (counts[present].sum() / (present.sum() * counts[present])) ** power
    return weights


class _KeepBest(keras.callbacks.Callback):
    """Early stopping on validation loss that counts the starting weights as epoch 0: the model that ends the run is
    the best seen, the starting one included (a fine-tune that only got worse hands back its parent's weights)."""

    def __init__(self, patience: int, start_loss: float = math.inf):
        super().__init__()
        self.patience, self.best, self.best_epoch, self.wait = patience, start_loss, 0, 0
        self.best_weights = None

    def on_train_begin(self, logs=None):
        if math.isfinite(self.best):
            self.best_weights = self.model.get_weights()

    def on_epoch_end(self, epoch, logs=None):
        loss = float((logs or {}).get("val_loss", math.inf))
        if loss < self.best:
            self.best, self.best_epoch, self.wait = loss, epoch + 1, 0
            self.best_weights = self.model.get_weights()
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class _Progress(keras.callbacks.Callback):
    def __init__(self, epochs: int, on_progress: ProgressFn | None, should_stop: Callable[[], bool] | None):
        super().__init__()
        self.epochs, self.on_progress, self.should_stop = epochs, on_progress, should_stop
        self.started = time.monotonic()
        self.cancelled = False

    def on_epoch_end(self, epoch, logs=None):
        elapsed = time.monotonic() - self.started
        logs = {k: float(v) for k, v in (logs or {}).items()}
        logs.update(epochs=self.epochs, elapsed_s=elapsed, eta_s=elapsed / (epoch + 1) * (self.epochs - epoch - 1))
        if self.on_progress:
            self.on_progress(epoch + 1, logs)
        if self.should_stop and self.should_stop():
            self.cancelled = True
            self.model.stop_training = True


def cosine_rate(epoch: int, config: TrainConfig) -> float:
    """The rate of a 0-based epoch: a linear warm-up over ``warmup_epochs``, then a half cosine to ~0 at the end."""
    if epoch < config.warmup_epochs:
        return config.learning_rate * (epoch + 1) / (config.warmup_epochs + 1)
    done = (epoch - config.warmup_epochs) / max(1, config.epochs - config.warmup_epochs)
    return config.learning_rate * 0.5 * (1 + math.cos(math.pi * done))


def compile_model(model: keras.Model, task: str, learning_rate: float, weight_decay: float = 0.0) -> None:
    if weight_decay > 0:
        optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay)
    else:
        optimizer = keras.optimizers.Adam(learning_rate)
    if task == "keypoints":
        model.compile(optimizer=optimizer, loss="mse")
    else:
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])


def train(
    task: str,
    train_data: FaceData,
    val_data: FaceData,
    config: TrainConfig = TrainConfig(),
    on_progress: ProgressFn | None = None,
    *,
    initial_model: keras.Model | None = None,
    initial_labels: tuple[str, ...] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train one model; start from ``initial_model``'s weights (fine-tuning) or from scratch. An emotion model learns
    the classes of ``train_data.label_names``; an initial model whose outputs are other classes (``initial_labels``)
    gets its head regrown to them first (ml.models.regrow_emotion_head): the shared classes start from the parent."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    if len(train_data) == 0 or len(val_data) == 0:
        raise ValueError(f"need training and validation faces, got {len(train_data)} and {len(val_data)}")
    keras.utils.set_random_seed(config.seed)
    started = time.monotonic()

    labels = tuple(train_data.label_names) if task == "emotion" else None
    if task == "emotion" and val_data.label_names != labels:
        raise ValueError(f"training and validation faces are labelled in two sets: {labels}, {val_data.label_names}")
    model = build_emotion_model(num_classes=len(labels)) if labels else BUILDERS[task]()
    if initial_model is not None and labels and initial_labels and tuple(initial_labels) != labels:
        initial_model = regrow_emotion_head(initial_model, initial_labels, labels, seed=config.seed)
    if initial_model is not None:
        model.set_weights(initial_model.get_weights())
    elif task == "keypoints":
        # Start at the mean face rather than at (0, 0): the first epochs then refine instead of travel.
        head = model.get_layer("points")
        kernel, _ = head.get_weights()
        to_model = align.reframe_matrix(align.DATA_FRAMINGS[task], align.MODEL_FRAMINGS[task])
        mean_face = align.apply(to_model, train_data.points.mean(0))
        head.set_weights([kernel, mean_face.reshape(-1).astype(np.float32) / IMAGE_SIZE])
    compile_model(model, task, config.learning_rate, config.weight_decay)

    weights = None
    if task == "emotion" and config.class_weight_power > 0:
        weights = class_weights(train_data.labels, config.class_weight_power, len(labels))[train_data.labels]
    train_ds = make_dataset(
        train_data.images,
        _targets(train_data),
        task=task,
        batch_size=config.batch_size,
        augment=TASK_AUGMENT[task] if config.augment else None,
        shuffle=True,
        seed=config.seed,
        sample_weights=weights,
    )
    # The model reads its own framing (ml.align.MODEL_FRAMINGS); the data comes in the data framing.
    framing = align.MODEL_FRAMINGS[task]
    val_images, val_points = align.reframe(val_data.images, val_data.points, align.DATA_FRAMINGS[task], framing)
    val_targets = val_points if task == "keypoints" else _targets(val_data)
    val_ds = make_dataset(val_images, val_targets, task=task, batch_size=256)
    if config.steps_per_epoch:
        train_ds = train_ds.repeat()

    progress = _Progress(config.epochs, on_progress, should_stop)
    if config.schedule == "cosine":
        schedule = keras.callbacks.LearningRateScheduler(lambda e, _: cosine_rate(e, config))
    else:
        schedule = keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=max(2, config.patience // 3), verbose=0)
    start_loss = math.inf
    if initial_model is not None and config.keep_best:
        start = model.evaluate(val_ds, verbose=0, return_dict=True)
        start_loss = float(start["loss"])
    keep_best = _KeepBest(config.patience if config.keep_best else config.epochs + 1, start_loss)
    callbacks = [keep_best, schedule, progress] if config.keep_best else [schedule, progress]
    history = model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=config.epochs,
        steps_per_epoch=config.steps_per_epoch,
        callbacks=callbacks,
        verbose=0,
    ).history
    val_loss = history.get("val_loss", [0.0])
    metrics, val_scores = evaluate(model, val_data, framing)
    return TrainResult(
        task=task,
        model=model,
        history={k: [float(v) if math.isfinite(v) else None for v in vs] for k, vs in history.items()},
        metrics=metrics,
        config=asdict(config),
        seconds=time.monotonic() - started,
        n_train=len(train_data),
        n_val=len(val_data),
        epochs_run=len(val_loss),
        # 0: no epoch beat the starting weights, which were kept; without keep_best, the last epoch
        best_epoch=keep_best.best_epoch if config.keep_best else len(val_loss),
        stopped=progress.cancelled,
        val_scores=val_scores,
        labels=labels,
    )


def predict(model: keras.Model, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """uint8 (N, 96, 96) -> raw model outputs, batched, without the Keras progress bar."""
    ds = tf.data.Dataset.from_tensor_slices(images[..., None]).batch(batch_size)
    ds = ds.map(lambda x: tf.cast(x, tf.float32) / 255.0)
    return np.concatenate([model(batch, training=False).numpy() for batch in ds], axis=0)
