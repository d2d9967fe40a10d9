"""Distillation, the Keras side: pack FER2013 for the GPU script and bring the distilled weights back.

The teacher ensemble and the student are trained by ``ml/distill_gpu.py`` where PyTorch and a GPU are (the product
never imports it). The student there is the browser's emotion network (``ml.models.EMOTION_ARCH``) written layer for
layer in PyTorch with TensorFlow's "same" padding, so its weights load into ``build_emotion_model()`` unchanged:

    python -m ml distill pack --data ../shared/data/fer2013.csv.gz --out var/distill/fer5.npz
    python3 ml/distill_gpu.py --data var/distill/fer5.npz --out <folder>            # on the GPU machine
    python -m ml distill import --weights <folder>/student.npz --out var/train/emotion-distilled

``import`` checks that Keras reproduces PyTorch's probabilities on the probe faces stored with the weights, then
exports the model like ``ml train`` does, so ``ml evaluate`` / ``ml export`` take it from there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ml.datasets import FaceData, checksum
from ml.schema import FER_SIZE, PRESETS

USAGE_CODES = {"Training": 0, "PublicTest": 1, "PrivateTest": 2}


def pack(data: FaceData, out: str | Path) -> dict:
    """Write the five-class faces at 48x48 (FER's own pixels) with labels and the split the product uses."""
    if data.task != "emotion" or data.usage is None:
        raise ValueError("distillation needs a FER2013 file with its Usage column")
    side = data.images.shape[-1] // FER_SIZE
    images = data.images[:, ::side, ::side]  # undo the repetition to 96x96 exactly
    usage = np.array([USAGE_CODES.get(u, -1) for u in data.usage], np.int8)
    seen = {checksum(frame) for frame in data.images[usage == 0]}
    repeat = np.array([u != 0 and checksum(frame) in seen for u, frame in zip(usage, data.images, strict=True)])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        images=images,
        labels=data.labels.astype(np.int64),
        label_names=np.array(data.label_names),
        train=usage == 0,
        val=(usage == 1) & ~repeat,  # ml.datasets.split's validation rows
        test=(usage == 2) & ~repeat,
        lines=data.lines,
    )
    return {"faces": len(images), "train": int((usage == 0).sum()), "val": int(((usage == 1) & ~repeat).sum())}


# the label set of student.npz files written before the packs named theirs (the shipped five-class baseline's)
SEED_FIVE = PRESETS["seed-five"]


def load_student(path: str | Path, check: bool = True):
    """student.npz (``layer/index`` arrays in Keras layout) -> (the emotion tf_keras model, its labels), checked on the
    probes."""
    from ml.models import build_emotion_model
    from ml.train import predict

    stored = np.load(path)
    classes = stored["probabilities/0"].shape[1]
    labels = tuple(str(n) for n in stored["label_names"]) if "label_names" in stored.files else SEED_FIVE
    if len(labels) != classes:
        raise ValueError(f"{path}: {classes} outputs but {len(labels)} label names ({', '.join(labels)})")
    model = build_emotion_model(num_classes=classes)
    loaded = set()
    for layer in model.layers:
        names = sorted((k for k in stored.files if k.rsplit("/", 1)[0] == layer.name), key=lambda k: int(k[-1]))
        if not layer.weights:
            continue
        if len(names) != len(layer.weights):
            raise ValueError(f"{path}: layer {layer.name} needs {len(layer.weights)} arrays, found {len(names)}")
        layer.set_weights([stored[k] for k in names])
        loaded.add(layer.name)
    if check:
        probes = stored["probe_images"].repeat(2, axis=-2).repeat(2, axis=-1)  # 48 -> 96 by repetition
        diff = np.abs(predict(model, probes) - stored["probe_probabilities"]).max()
        if diff > 2e-3:  # float32 vs a GPU's TF32 convolutions (runs before the probe was computed in full float32)
            raise ValueError(f"{path}: Keras and PyTorch disagree by {diff:.2g} on the probe faces")
    return model, labels
