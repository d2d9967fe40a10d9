"""Whole photos on the server: the same path as the browser (ml.pipeline), with the active models, on LiteRT.

The web process never imports TensorFlow: BlazeFace and every version's ``model.tflite`` run in LiteRT's interpreter
(ml.litert). The analyzer is built once per process and per active version pair; one lock serialises its use, as
its interpreters are shared.
"""

from __future__ import annotations

import threading

import numpy as np

from ml import align

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

    from webapp.faces.images import bounded

    return bounded(image, settings.DETECT_MAX_SIDE)


def face_crops(image) -> list[np.ndarray]:
    """Every face in a whole photo as a 96x96 grey crop in the stored framing (align.FACE_FRAMING), best first.

    With no active keypoint model the crop comes from the detector box alone (its prior), unrefined. The photo is
    read at most DETECT_MAX_SIDE px on its longer side.
    """
    image = _bounded(image)
    with _lock:
        analyzer, detector = _analyzer(emotion=False)
        if analyzer is not None:
            crops = [face.face for face in analyzer.analyze(image)]
        else:
            prior = align.DETECTORS["blazeface"].box_prior
            crops = [
                align.warp(image, align.matrix_from_box(d.box, prior, align.FACE_FRAMING))
                for d in detector.detect(image)
            ]
    if not crops:
        raise UnprocessableImage(
            "No face found in the photo. Send a photo with a face facing the camera, or a 96x96 face crop."
        )
    return crops
