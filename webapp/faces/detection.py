"""Whole photos on the server: the same path as the browser (ml.pipeline), with the active keypoint model.

The analyzer is built once per process and active keypoint version (TensorFlow loads lazily, on the first photo that
needs it); one lock serialises its use, as one TFLite interpreter and one Keras model are shared.
"""

from __future__ import annotations

import threading

import numpy as np

from ml import align

_lock = threading.Lock()
_cache: dict = {}


class UnprocessableImage(Exception):
    """The picture decodes but holds nothing to store (no face found)."""


def _analyzer():
    """(analyzer or None, detector): one BlazeFace per process, shared by the analyzer of the active keypoint model."""
    from ml.detect import FaceDetector
    from ml.pipeline import Analyzer, LoadedModel
    from webapp.registry.selectors import active_version, version_dir

    if "detector" not in _cache:
        _cache["detector"] = FaceDetector()
    version = active_version(kind="keypoints")
    key = str(version_dir(version)) if version else None
    if _cache.get("key") != key or "analyzer" not in _cache:
        keypoints = LoadedModel.from_dir(version_dir(version)) if version else None
        _cache.update(key=key, analyzer=Analyzer(keypoints, detector=_cache["detector"]) if keypoints else None)
    return _cache["analyzer"], _cache["detector"]


def face_crops(image) -> list[np.ndarray]:
    """Every face in a whole photo as a 96x96 grey crop in the stored framing (align.FACE_FRAMING), best first.

    With no active keypoint model the crop comes from the detector box alone (its prior), unrefined. The photo is
    read at most DETECT_MAX_SIDE px on its longer side.
    """
    from django.conf import settings

    from webapp.faces.images import bounded

    image = bounded(image, settings.DETECT_MAX_SIDE)
    with _lock:
        analyzer, detector = _analyzer()
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
