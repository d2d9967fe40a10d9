"""The two residual CNNs, in tf_keras (Keras 2): the TF.js 4.22 layers loader cannot read Keras 3 topologies.

Both take a (96, 96, 1) grey face scaled to [0, 1] and use only layers TF.js implements (no Rescaling, no
augmentation layers): augmentation lives in the tf.data pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tf_keras as keras
from tf_keras import layers

from ml.schema import DEFAULT_LABELS, IMAGE_SIZE, NUM_KEYPOINTS


@dataclass(frozen=True)
class Architecture:
    stem: int  # filters of the stem convolution
    stem_stride: int  # 2: a learned downsampling of the 96x96 input; 1 after an average pool
    stages: tuple[int, ...]  # filters of each stage; each stage halves the resolution
    identity_blocks: tuple[int, ...]  # identity blocks after the convolution block of each stage
    dropout: float
    dense: int  # width of the hidden dense layer of the head (0: none)


# Sized for <= 1 MB of float32 weights each (~230k parameters), so the browser downloads both in a blink.
KEYPOINT_ARCH = Architecture(
    stem=24, stem_stride=2, stages=(24, 32, 48, 64), identity_blocks=(1, 1, 1, 0), dropout=0.1, dense=0
)
EMOTION_ARCH = Architecture(
    stem=24, stem_stride=1, stages=(32, 56, 80), identity_blocks=(1, 1, 0), dropout=0.4, dense=64
)


def _conv_bn(x, filters: int, kernel: int, strides: int = 1, name: str = "", relu: bool = True):
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def conv_block(x, filters: int, strides: int, name: str):
    """Residual block that changes width/resolution: the shortcut is a strided 1x1 projection."""
    shortcut = _conv_bn(x, filters, 1, strides, f"{name}_proj", relu=False)
    y = _conv_bn(x, filters, 3, strides, f"{name}_a")
    y = _conv_bn(y, filters, 3, 1, f"{name}_b", relu=False)
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([shortcut, y]))


def identity_block(x, filters: int, name: str):
    y = _conv_bn(x, filters, 3, 1, f"{name}_a")
    y = _conv_bn(y, filters, 3, 1, f"{name}_b", relu=False)
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([x, y]))


def _backbone(x, arch: Architecture):
    x = _conv_bn(x, arch.stem, 3, arch.stem_stride, "stem")
    for s, (filters, n_identity) in enumerate(zip(arch.stages, arch.identity_blocks, strict=True), start=1):
        x = conv_block(x, filters, 2, f"stage{s}_conv")
        for i in range(n_identity):
            x = identity_block(x, filters, f"stage{s}_id{i + 1}")
    return x


def _input():
    return keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE, 1), name="face")


def build_keypoint_model(arch: Architecture = KEYPOINT_ARCH) -> keras.Model:
    """96x96 face -> 30 numbers: (x, y) of the 15 keypoints in [0, 1] of the frame, Kaggle order."""
    inputs = _input()
    x = _backbone(inputs, arch)  # strided stem: 48x48, then 24, 12, 6, 3
    x = _conv_bn(x, 64, 1, 1, "head_reduce")
    x = layers.Flatten(name="head_flatten")(x)  # keep the spatial layout: where a feature is matters here
    x = layers.Dropout(arch.dropout, name="head_dropout")(x)
    if arch.dense:
        x = layers.Dense(arch.dense, activation="relu", name="head_dense")(x)
    # A near-zero head: training starts at the mean face (its bias, set by train()) instead of +-1 frame away.
    small = keras.initializers.RandomNormal(stddev=1e-3, seed=0)
    outputs = layers.Dense(NUM_KEYPOINTS * 2, kernel_initializer=small, name="points")(x)
    return keras.Model(inputs, outputs, name="keypoints")


def build_emotion_model(arch: Architecture = EMOTION_ARCH, num_classes: int = len(DEFAULT_LABELS)) -> keras.Model:
    """96x96 face -> probabilities of the ``num_classes`` classes of a label set (the manifest names them).

    The first layer averages 2x2 pixels: FER faces (48x48, upscaled by repetition) come back exactly, and a 96x96
    browser crop is area-downsampled, so one framing serves both at the cost of a 48x48 network.
    """
    inputs = _input()
    x = layers.AveragePooling2D(2, name="downsample")(inputs)
    x = _backbone(x, arch)
    x = layers.GlobalAveragePooling2D(name="head_pool")(x)
    x = layers.Dropout(arch.dropout, name="head_dropout")(x)
    if arch.dense:
        x = layers.Dense(arch.dense, activation="relu", name="head_dense")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="emotion")


BUILDERS = {"keypoints": build_keypoint_model, "emotion": build_emotion_model}


def shift_priors(model: keras.Model, labels: Sequence[str], shifts: dict[str, float]) -> keras.Model:
    """Add ``shifts[name]`` to the logit of each named class (the head's bias): the odds of that class against every
    other grow by e**shift on every face. A product's choice of what an unsure face reads as (a calm face as neutral
    rather than as its nearest emotion), made on validation faces and written into the manifest."""
    unknown = [name for name in shifts if name not in labels]
    if unknown:
        raise ValueError(f"no class {', '.join(unknown)} in {', '.join(labels)}")
    head = model.get_layer("probabilities")
    kernel, bias = head.get_weights()
    for name, shift in shifts.items():
        bias[list(labels).index(name)] += shift
    head.set_weights([kernel, bias])
    return model


def regrow_emotion_head(model: keras.Model, old: Sequence[str], new: Sequence[str], seed: int = 0) -> keras.Model:
    """The emotion ``model`` (outputs named ``old``) with outputs named ``new``: every layer below the head is kept, a
    class both sets have keeps its row of the head (moved to its new place), a class only ``new`` has starts from a
    fresh row whose bias is the mean of the kept ones (neither favoured nor shut out), a class only ``old`` has goes."""
    old, new = list(old), list(new)
    grown = build_emotion_model(num_classes=len(new))
    for layer in grown.layers:
        if layer.weights and layer.name != "probabilities":
            layer.set_weights(model.get_layer(layer.name).get_weights())
    head = grown.get_layer("probabilities")
    old_kernel, old_bias = model.get_layer("probabilities").get_weights()
    scale = float(np.std(old_kernel)) or 0.05
    kernel = np.random.default_rng(seed).normal(0.0, scale, (old_kernel.shape[0], len(new))).astype(np.float32)
    bias = np.full(len(new), float(old_bias.mean()), np.float32)
    for j, name in enumerate(new):
        if name in old:
            kernel[:, j], bias[j] = old_kernel[:, old.index(name)], old_bias[old.index(name)]
    head.set_weights([kernel, bias])
    return grown
