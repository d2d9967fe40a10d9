"""Metrics for both tasks, as JSON-ready dicts, plus PNG plots.

Keypoints: RMSE in pixels of the 96x96 frame as Kaggle scores it (root of the mean squared error over all 30
coordinates), mean Euclidean error per point, PCK@0.05 (share of points within 5 % of the frame size, 4.8 px).
Emotion: accuracy, macro-F1, per-class F1 and the confusion matrix (rows = truth, columns = prediction).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ml import align
from ml.datasets import FaceData, relabel
from ml.schema import IMAGE_SIZE, KEYPOINTS, NUM_KEYPOINTS

PCK_FRACTION = 0.05


def keypoint_metrics(pred_px: np.ndarray, true_px: np.ndarray) -> dict:
    pred = np.asarray(pred_px, np.float64).reshape(-1, NUM_KEYPOINTS, 2)
    true = np.asarray(true_px, np.float64).reshape(-1, NUM_KEYPOINTS, 2)
    distance = np.linalg.norm(pred - true, axis=-1)  # (N, 15)
    threshold = PCK_FRACTION * IMAGE_SIZE
    return {
        "task": "keypoints",
        "n": len(true),
        "rmse_px": float(np.sqrt(np.mean((pred - true) ** 2))),
        "mean_error_px": float(distance.mean()),
        "pck": float(np.mean(distance <= threshold)),
        "pck_threshold_px": threshold,
        "per_point_error_px": {name: float(e) for name, e in zip(KEYPOINTS, distance.mean(axis=0), strict=True)},
    }


def emotion_metrics(probabilities: np.ndarray, labels: np.ndarray, names: Sequence[str]) -> dict:
    """``labels`` index ``names``, the classes of the probabilities' columns."""
    labels = np.asarray(labels, np.int64)
    predicted = np.asarray(probabilities).argmax(axis=1)
    k = len(names)
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    tp = np.diag(confusion).astype(np.float64)
    precision = np.divide(tp, confusion.sum(0), out=np.zeros_like(tp), where=confusion.sum(0) > 0)
    recall = np.divide(tp, confusion.sum(1), out=np.zeros_like(tp), where=confusion.sum(1) > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=(precision + recall) > 0)
    present = confusion.sum(1) > 0  # macro over the classes that occur, as scikit-learn does with labels=present
    return {
        "task": "emotion",
        "n": len(labels),
        "accuracy": float(tp.sum() / max(1, len(labels))),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class_f1": {name: float(v) for name, v in zip(names, f1, strict=True)},
        "per_class_recall": {name: float(v) for name, v, n in zip(names, recall, present, strict=True) if n},
        "labels": list(names),
        "confusion_matrix": confusion.tolist(),
    }


def model_outputs(model, data: FaceData, framing: align.Framing | None, mirror: bool | None = None) -> np.ndarray:
    """Keypoints in pixels of the data's frame, or probabilities; a model that reads another ``framing`` than the
    data's gets each face re-cut into its framing, and its points are mapped back."""
    from ml.train import predict  # late: keeps evaluate importable without building a training graph

    source = align.DATA_FRAMINGS[data.task]
    framing = framing or source
    images, _ = align.reframe(data.images, None, source, framing)
    if data.task == "keypoints":
        # as the product runs it (align.KEYPOINT_MIRROR), unless ``mirror`` says otherwise
        flat = lambda x: predict(model, x).reshape(-1, NUM_KEYPOINTS, 2) * IMAGE_SIZE  # noqa: E731
        points = align.mirrored_mean(flat, images, mirror)
        return align.apply(align.invert(align.reframe_matrix(source, framing)), points)
    return predict(model, images)


def shared_view(probabilities: np.ndarray, model_labels: Sequence[str], data: FaceData) -> tuple[np.ndarray, FaceData]:
    """A model's probabilities read through the classes it shares with ``data``'s label set: the faces of the shared
    classes, the model's columns of those classes in the data's order (renormalised), the labels re-indexed. A model
    of seven classes is scored on a five-class file through its five outputs, and two versions of different sets are
    compared on the classes both say."""
    shared = [name for name in data.label_names if name in model_labels]
    index = {name: i for i, name in enumerate(data.label_names)}
    rows = np.isin(data.labels, [index[name] for name in shared])
    kept, probabilities = relabel(data, shared), np.asarray(probabilities)[rows]
    columns = [list(model_labels).index(name) for name in shared]
    view = probabilities[:, columns]
    view = view / np.maximum(view.sum(axis=1, keepdims=True), 1e-12)
    return view, kept


def evaluate(
    model,
    data: FaceData,
    framing: align.Framing | None = None,
    mirror: bool | None = None,
    labels: Sequence[str] | None = None,
) -> tuple[dict, np.ndarray]:
    """(metrics, one score per face) from one pass over ``data``; errors stay in pixels of the data's (training)
    frame whatever framing the model reads. A face's score, for paired comparisons (ml.stats): its squared keypoint
    error (mean over the 30 coordinates), or 1/0 for a right/wrong emotion. ``labels``: the classes of an emotion
    model's outputs (its manifest's) when they are not the data's own; it is then scored through the classes both
    have (``shared_view``)."""
    outputs = model_outputs(model, data, framing, mirror)
    if data.task == "keypoints":
        return keypoint_metrics(outputs, data.points), ((outputs - data.points) ** 2).mean(axis=(1, 2))
    if labels is not None and tuple(labels) != tuple(data.label_names):
        outputs, data = shared_view(outputs, labels, data)
    correct = (np.asarray(outputs).argmax(axis=1) == data.labels).astype(np.float64)
    return emotion_metrics(outputs, data.labels, data.label_names), correct


def evaluate_model(model, data: FaceData, framing: align.Framing | None = None) -> dict:
    return evaluate(model, data, framing)[0]


def face_scores(model, data: FaceData, framing: align.Framing | None = None) -> np.ndarray:
    return evaluate(model, data, framing)[1]


def primary_metric(metrics: dict) -> tuple[str, float, bool]:
    """The one number versions are compared by: (name, value, higher_is_better)."""
    if metrics["task"] == "keypoints":
        return "rmse_px", metrics["rmse_px"], False
    return "accuracy", metrics["accuracy"], True


def save_plots(out_dir: Path, metrics: dict, history: dict | None = None) -> list[Path]:
    """Loss curves, and the confusion matrix or the per-point error; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if history and history.get("loss"):
        fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
        ax.plot(range(1, len(history["loss"]) + 1), history["loss"], label="train")
        if history.get("val_loss"):
            ax.plot(range(1, len(history["val_loss"]) + 1), history["val_loss"], label="validation")
        ax.set(xlabel="epoch", ylabel="loss", title=f"{metrics['task']} loss")
        ax.legend()
        fig.tight_layout()
        written.append(out_dir / "loss.png")
        fig.savefig(written[-1])
        plt.close(fig)
    if metrics["task"] == "emotion":
        cm = np.asarray(metrics["confusion_matrix"])
        fig, ax = plt.subplots(figsize=(4.6, 4), dpi=100)
        ax.imshow(cm, cmap="Blues")
        names = metrics["labels"]
        ax.set(xticks=range(len(names)), yticks=range(len(names)), xlabel="predicted", ylabel="true")
        ax.set_xticklabels(names, rotation=30)
        ax.set_yticklabels(names)
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black")
        ax.set_title(f"accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}")
        fig.tight_layout()
        written.append(out_dir / "confusion.png")
    else:
        errors = metrics["per_point_error_px"]
        fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
        ax.barh(list(errors), list(errors.values()))
        ax.invert_yaxis()
        ax.set(xlabel="mean error (px of 96)", title=f"RMSE {metrics['rmse_px']:.2f} px")
        fig.tight_layout()
        written.append(out_dir / "per_point_error.png")
    fig.savefig(written[-1])
    plt.close(fig)
    return written
