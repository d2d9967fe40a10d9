"""Whole photos on the server: the same path as the browser (ml.pipeline), with the active models, on LiteRT.

The web process never imports TensorFlow: BlazeFace and every version's ``model.tflite`` run in LiteRT's interpreter
(ml.litert). The analyzer is built once per process and per active version pair; one lock serialises its use, as
its interpreters are shared.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import numpy as np

from ml import align
from ml.schema import IMAGE_SIZE

_lock = threading.Lock()
_cache: dict = {}

# how long a client should wait before it retries when the models cannot be loaded (Retry-After, seconds)
RETRY_AFTER_SECONDS = 30


class UnprocessableImage(Exception):
    """The picture decodes but holds nothing to store (no face found)."""


class InferenceUnavailable(Exception):
    """The server cannot run the models now (a version without its TFLite file, the runtime missing): nothing is
    stored, and the same request may work once an operator has run the fix the message names."""

    retry_after = RETRY_AFTER_SECONDS


def _load(version):
    from ml.pipeline import LoadedModel
    from webapp.registry.selectors import version_dir

    try:
        return LoadedModel.from_dir(version_dir(version), runtime="litert")
    except (FileNotFoundError, ImportError, ValueError, RuntimeError) as exc:
        raise InferenceUnavailable(
            f"The {version} model cannot be run on this server right now ({exc}). "
            "An operator can write its TFLite file with `manage.py bootstrap`; try again later."
        ) from exc


def _analyzer(*, emotion: bool):
    """(analyzer or None, detector): one BlazeFace per process, shared by the analyzers of the active versions."""
    from ml.pipeline import Analyzer
    from webapp.registry.selectors import active_version, version_dir

    if "detector" not in _cache:
        try:
            from ml.detect import FaceDetector

            _cache["detector"] = FaceDetector()
        except (FileNotFoundError, ImportError) as exc:
            raise InferenceUnavailable(f"The face detector cannot be loaded on this server ({exc}).") from exc
    keypoints = active_version(kind="keypoints")
    feelings = active_version(kind="emotion") if emotion else None
    key = (*(str(version_dir(v)) if v else None for v in (keypoints, feelings)), emotion)
    if _cache.get("key") != key:
        analyzer = None
        if keypoints is not None:
            analyzer = Analyzer(_load(keypoints), _load(feelings) if feelings else None, detector=_cache["detector"])
        _cache.update(key=key, analyzer=analyzer)
    return _cache["analyzer"], _cache["detector"]


def _bounded(image):
    from django.conf import settings

    from webapp.faces.store.images import bounded

    return bounded(image, settings.DETECT_MAX_SIDE)


def analyze_photo(image, *, emotion: bool = False) -> tuple[list, float]:
    """The faces of a whole photo (ml.pipeline.AnalyzedFace, best first) by the active models, and the factor from
    the pixels they are given in (the photo read at most DETECT_MAX_SIDE long) to the photo's own."""
    bounded = _bounded(image)
    with _lock:
        analyzer, _ = _analyzer(emotion=emotion)
        if analyzer is None:
            raise InferenceUnavailable("No keypoint model is active: promote one on the Models page.")
        if emotion and analyzer.emotion is None:
            raise InferenceUnavailable("No emotion model is active: promote one on the Models page.")
        faces = analyzer.analyze(bounded)
    return faces, image.width / bounded.width


@contextmanager
def served_analyzer():
    """The served pair's analyzer (ml.pipeline.Analyzer, both models), held while the caller uses it (a worker's
    video, frame after frame), with the two versions it runs."""
    from webapp.registry.selectors import active_version

    with _lock:
        analyzer, _ = _analyzer(emotion=True)
        if analyzer is None or analyzer.emotion is None:
            raise InferenceUnavailable("No keypoint or emotion model is active: promote one on the Models page.")
        yield analyzer, (active_version(kind="keypoints"), active_version(kind="emotion"))


def face_crops(image) -> list[tuple[np.ndarray, list[list[float]]]]:
    """Every face in a whole photo as a 96x96 grey crop in the stored framing (align.FACE_FRAMING), best first, with
    where the crop lies in the photo: its four corners in the photo's own pixels (``crop_corners``).

    With no active keypoint model the crop comes from the detector box alone (its prior), unrefined. The photo is
    read at most DETECT_MAX_SIDE px on its longer side.
    """
    bounded = _bounded(image)
    scale = image.width / bounded.width
    with _lock:
        analyzer, detector = _analyzer(emotion=False)
        if analyzer is not None:
            found = analyzer.analyze(bounded)
            matrices = [align.matrix_from_points(face.points, align.FACE_FRAMING) for face in found]
            crops = [face.face for face in found]
        else:
            prior = align.DETECTORS["blazeface"].box_prior
            matrices = [align.matrix_from_box(d.box, prior, align.FACE_FRAMING) for d in detector.detect(bounded)]
            crops = [align.warp(bounded, matrix) for matrix in matrices]
    if not crops:
        raise UnprocessableImage(
            "No face found in the photo. Send a photo with a face facing the camera, or a 96x96 face crop."
        )
    return [(crop, crop_corners(matrix, scale)) for crop, matrix in zip(crops, matrices, strict=True)]


def face_in_box(image, box: tuple[float, float, float, float]) -> tuple[np.ndarray, list[list[float]]]:
    """A face a person boxed in a photo (x, y, width, height in the photo's pixels) cut as a detected face is: the box
    seeds the alignment as a detector's box does, the keypoint model places the points, the crop follows them. Returns
    the 96x96 crop in the stored framing and its corners in the photo (``crop_corners``)."""
    bounded = _bounded(image)
    scale = image.width / bounded.width
    x, y, w, h = (float(v) / scale for v in box)
    with _lock:
        analyzer, _ = _analyzer(emotion=False)
        if analyzer is None:
            raise InferenceUnavailable("No keypoint model is active: promote one on the Models page.")
        seed = align.matrix_from_box((x, y, w, h), analyzer.box_prior, analyzer.keypoints.framing)
        points = analyzer.align(bounded, [seed])[0]
    matrix = align.matrix_from_points(points, align.FACE_FRAMING)
    return align.warp(bounded, matrix), crop_corners(matrix, scale)


CROP_CORNERS = np.array([[0, 0], [IMAGE_SIZE, 0], [IMAGE_SIZE, IMAGE_SIZE], [0, IMAGE_SIZE]], np.float64)


def crop_corners(matrix: np.ndarray, scale: float = 1.0) -> list[list[float]]:
    """The four corners of the crop ``matrix`` cuts (picture -> crop), clockwise from its top left, in the picture's
    pixels times ``scale``: the face's box in its picture, rotation included."""
    corners = align.apply(align.invert(matrix), CROP_CORNERS) * scale
    return [[round(float(x), 2), round(float(y), 2)] for x, y in corners]


def active_model_version() -> str:
    """The served pair as Label Studio's ``model_version``: a promotion or rollback changes it."""
    from webapp.registry.selectors import active_version

    parts = [f"{kind} v{v.number}" for kind in ("keypoints", "emotion") if (v := active_version(kind=kind))]
    return "emotion-ai-studio " + (" + ".join(parts) or "(no active model)")


def served_emotion_labels() -> list[str]:
    """The classes of the served emotion model's outputs, from the manifest of the model this process runs."""
    with _lock:
        analyzer, _ = _analyzer(emotion=True)
    if analyzer is None or analyzer.emotion is None:
        raise InferenceUnavailable("No emotion model is active: promote one on the Models page.")
    return list(analyzer.emotion.manifest["labels"])


def predict_faces(frames: list[np.ndarray]) -> tuple[list[tuple[np.ndarray, np.ndarray] | None], str]:
    """Stored 96x96 faces (FACE_FRAMING) -> (points in the face's pixels, emotion probabilities) by the active models
    through the same alignment as a photo's faces; None for every face when no pair of models can run."""
    from PIL import Image

    version = active_model_version()
    try:
        with _lock:
            analyzer, _ = _analyzer(emotion=True)
            if analyzer is None or analyzer.emotion is None:
                return [None] * len(frames), version
            seed = align.reframe_matrix(align.FACE_FRAMING, analyzer.keypoints.framing)
            images = [Image.fromarray(frame) for frame in frames]
            points = [analyzer.align(image, [seed])[0] for image in images]
            crops = [
                align.warp(image, align.matrix_from_points(p, analyzer.emotion.framing))
                for image, p in zip(images, points, strict=True)
            ]
            probabilities = [
                p for start in range(0, len(crops), 64) for p in analyzer.emotion(crops[start : start + 64])
            ]
    except InferenceUnavailable:
        return [None] * len(frames), version
    return list(zip(points, probabilities, strict=True)), version
