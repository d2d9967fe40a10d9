"""Face detection on the server: MediaPipe's BlazeFace, run with LiteRT's interpreter (no TensorFlow in memory).

The model files ship in the npm package ``@mediapipe/face_detection`` that the web app already installs (no download
at run time). The decoding follows MediaPipe's face detection graphs: SSD anchors on a square input, boxes and 6
landmarks relative to the anchors, sigmoid scores, weighted non-maximum suppression at IoU 0.3. The picture is
letterboxed into a square first, as MediaPipe does.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.align import DETECTORS
from ml.align import Detector as DetectorSettings

MODELS_DIR = Path(__file__).resolve().parents[1] / "node_modules" / "@mediapipe" / "face_detection"


@dataclass(frozen=True)
class Variant:
    file: str
    input: int
    strides: tuple[int, ...]
    anchors_per_layer: int


# short range: faces that fill much of the picture (a selfie); full range: faces down to a few % of it (a group).
VARIANTS = {
    "short": Variant("face_detection_short_range.tflite", 128, (8, 16, 16, 16), 2),
    "full": Variant("face_detection_full_range.tflite", 192, (4,), 1),
}


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]  # x, y, width, height in source pixels
    score: float
    landmarks: np.ndarray  # (6, 2): right eye, left eye, nose tip, mouth centre, right ear, left ear (image pixels)


def _anchors(variant: Variant) -> np.ndarray:
    """(N, 2) anchor centres in [0, 1]; layers of one stride share a grid (short range: 2 anchors a cell at stride
    8, 6 at 16: 896; full range: one a cell at stride 4: 2,304)."""
    centres = []
    layer = 0
    strides = variant.strides
    while layer < len(strides):
        stride = strides[layer]
        same = sum(1 for s in strides[layer:] if s == stride)
        per_cell = variant.anchors_per_layer * same
        grid = variant.input // stride
        ys, xs = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
        cells = np.stack([(xs.ravel() + 0.5) / grid, (ys.ravel() + 0.5) / grid], 1)
        centres.append(np.repeat(cells, per_cell, axis=0))
        layer += same
    return np.concatenate(centres).astype(np.float32)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-9)


def _weighted_nms(scores: np.ndarray, raw: np.ndarray, threshold: float) -> list[tuple[float, np.ndarray]]:
    """MediaPipe's weighted NMS: overlapping candidates are averaged by score instead of dropped."""
    order = np.argsort(-scores)
    corners = np.stack(
        [raw[:, 0] - raw[:, 2] / 2, raw[:, 1] - raw[:, 3] / 2, raw[:, 0] + raw[:, 2] / 2, raw[:, 1] + raw[:, 3] / 2], 1
    )
    kept = []
    while order.size:
        overlap = _iou(corners[order[0]], corners[order]) > threshold
        group = order[overlap]
        weights = scores[group][:, None]
        kept.append((float(scores[order[0]]), (raw[group] * weights).sum(0) / weights.sum()))
        order = order[~overlap]
    return kept


class FaceDetector:
    """``FaceDetector().detect(pil_image)`` -> detections, best first. Thread-safe (one interpreter, a lock).

    Its settings (model variant, score threshold, border) are the ones the browser gets, from ml.align.DETECTORS.
    """

    def __init__(self, settings: DetectorSettings = DETECTORS["blazeface"], *, pad: float | None = None):
        from ml.litert import interpreter

        self.variant = VARIANTS[settings.variant]
        self.anchors = _anchors(self.variant)
        path = MODELS_DIR / self.variant.file
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: BlazeFace model missing (it comes with `npm ci`: @mediapipe/face_detection)"
            )
        self._interpreter = interpreter(path=path)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        # two outputs: boxes and landmarks (N, 16) and scores (N, 1), told apart by their width
        outputs = {int(o["shape"][-1]): o["index"] for o in self._interpreter.get_output_details()}
        self._regressors, self._scores = outputs[16], outputs[1]
        self._lock = threading.Lock()
        self.min_score = settings.score_threshold
        # faces that fill the picture are found more often inside a black border (this fraction of the longer side),
        # small ones less often: the border is a second try when the picture as it is gives nothing
        self.pad = settings.pad if pad is None else pad

    def detect(self, image) -> list[Detection]:
        rgb = image.convert("RGB")
        return self._detect(rgb, 0.0) or (self._detect(rgb, self.pad) if self.pad > 0 else [])

    def _detect(self, rgb, pad: float) -> list[Detection]:
        from PIL import Image

        side = round(max(rgb.size) * (1 + 2 * pad))
        ox, oy = (side - rgb.width) // 2, (side - rgb.height) // 2
        square = Image.new("RGB", (side, side))
        square.paste(rgb, (ox, oy))
        size = self.variant.input
        x = np.asarray(square.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0), np.float32)
        x = x[None] / 127.5 - 1.0
        with self._lock:
            self._interpreter.set_tensor(self._input, x)
            self._interpreter.invoke()
            raw = self._interpreter.get_tensor(self._regressors)[0].copy()
            logits = self._interpreter.get_tensor(self._scores)[0, :, 0].copy()
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -100, 100)))
        keep = scores >= self.min_score
        if not keep.any():
            return []
        raw, scores, anchors = raw[keep] / size, scores[keep], self.anchors[keep]
        raw[:, 0:2] += anchors
        raw[:, 4:] += np.tile(anchors, 6)
        found = []
        for score, r in _weighted_nms(scores, raw, 0.3):
            r = r * side  # square pixels; the source sits at (ox, oy) in the square
            cx, cy, w, h = r[0] - ox, r[1] - oy, r[2], r[3]
            box = (float(cx - w / 2), float(cy - h / 2), float(w), float(h))
            found.append(Detection(box=box, score=score, landmarks=r[4:].reshape(6, 2) - [ox, oy]))
        return found


def half_pixel_upsampling(layers):
    """UpSampling2D under its own name. TensorFlow and TFLite resize with half-pixel centres, TF.js's UpSampling2D
    without them (a quarter-pixel shift that moved BlazeFace's boxes by 1.4 % of the picture); static/js/blazeface.js
    registers a layer of this name that resizes with half-pixel centres."""

    class HalfPixelUpSampling2D(layers.UpSampling2D):
        pass

    return HalfPixelUpSampling2D


def keras_model(variant: str = DETECTORS["blazeface"].variant):
    """The same network as a tf_keras model (for TF.js: the browser runs it), rebuilt op by op from the TFLite graph.

    BlazeFace is convolutions, depthwise convolutions, ReLUs, additions, max pools, paddings and (full range) bilinear
    upsampling; strides and paddings follow from the tensor shapes, weights are read from the file. A channel padding
    (the residual of a block that widens) becomes a fixed 1x1 convolution that copies the channels and adds zeros.
    ``tests/ml/test_detect.py`` checks that both variants give what the TFLite file gives.
    """
    import tensorflow as tf
    import tf_keras as keras
    from tf_keras import layers

    resolver = tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(
            model_path=str(MODELS_DIR / VARIANTS[variant].file), experimental_op_resolver_type=resolver
        )
    interpreter.allocate_tensors()
    shapes = {t["index"]: tuple(int(v) for v in t["shape"][1:]) for t in interpreter.get_tensor_details()}
    size = VARIANTS[variant].input
    source = interpreter.get_input_details()[0]["index"]
    tensors = {source: keras.Input((size, size, 3), name="image")}
    consts: dict[int, np.ndarray] = {}
    for op in interpreter._get_ops_details():  # the graph is only readable this way
        name, ins, out = op["op_name"], [i for i in op["inputs"] if i >= 0], op["outputs"][0]
        const = lambda i: consts[i] if i in consts else interpreter.get_tensor(i)  # noqa: E731
        if name == "DEQUANTIZE":  # float16 weights
            consts[out] = interpreter.get_tensor(ins[0]).astype(np.float32)
            continue
        x = tensors.get(ins[0])
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            kernel, bias = const(ins[1]), const(ins[2])
            stride = x.shape[1] // shapes[out][0]
            # "valid" where the output size says so (an explicit PAD op came first, or a 1x1 kernel), else "same"
            padding = "valid" if (x.shape[1] - kernel.shape[1]) // stride + 1 == shapes[out][0] else "same"
            kind = (
                layers.Conv2D(kernel.shape[0], kernel.shape[1:3], strides=stride, padding=padding)
                if name == "CONV_2D"
                else layers.DepthwiseConv2D(kernel.shape[1:3], strides=stride, padding=padding)
            )
            y = kind(x)
            kind.set_weights([kernel.transpose(1, 2, 3, 0), bias])
        elif name == "RELU":
            y = layers.ReLU()(x)
        elif name == "ADD":
            y = layers.Add()([x, tensors[ins[1]]])
        elif name == "MAX_POOL_2D":
            stride = x.shape[1] // shapes[out][0]
            y = layers.MaxPooling2D(stride, stride)(x)
        elif name == "PAD":
            pads = const(ins[1]).astype(int)
            y = x
            if pads[1:3].any():
                y = layers.ZeroPadding2D((tuple(pads[1]), tuple(pads[2])))(y)
            if pads[3].any():
                widen = layers.Conv2D(int(y.shape[-1] + pads[3].sum()), 1, use_bias=False)
                channels = int(y.shape[-1])
                y = widen(y)
                copy = np.zeros((1, 1, channels, widen.filters), np.float32)
                copy[0, 0, np.arange(channels), pads[3][0] + np.arange(channels)] = 1.0
                widen.set_weights([copy])
        elif name == "RESIZE_BILINEAR":
            y = half_pixel_upsampling(layers)(shapes[out][0] // x.shape[1], interpolation="bilinear")(x)
        elif name == "RESHAPE":
            y = layers.Reshape(shapes[out])(x)
        elif name == "CONCATENATION":
            y = layers.Concatenate(axis=1)([tensors[i] for i in ins])
        else:
            raise NotImplementedError(f"BlazeFace {variant}: the {name} op has no Keras counterpart here")
        tensors[out] = y
    outputs = {int(o["shape"][-1]): o["index"] for o in interpreter.get_output_details()}
    return keras.Model(tensors[source], [tensors[outputs[16]], tensors[outputs[1]]], name=f"blazeface_{variant}")


def export_tfjs(out_dir: str | Path, variant: str = DETECTORS["blazeface"].variant) -> Path:
    """The browser's detector: BlazeFace as a TF.js layers model (float16 weights) plus its anchor settings."""
    import json
    import os
    import shutil
    import tempfile

    import tensorflowjs as tfjs

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        spec = VARIANTS[variant]
        tfjs.converters.save_keras_model(keras_model(variant), str(tmp), quantization_dtype_map={"float16": "*"})
        settings = {
            "variant": variant,
            "input": spec.input,
            "strides": list(spec.strides),
            "anchors_per_layer": spec.anchors_per_layer,
            "source": spec.file,
        }
        (tmp / "detector.json").write_text(json.dumps(settings, indent=2) + "\n")
        os.chmod(tmp, 0o755)
        shutil.rmtree(out_dir, ignore_errors=True)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
