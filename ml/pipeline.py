"""The path a whole picture takes on the server and in the benchmarks: the twin of ``analyze`` (static/js/inference.js).

detector -> first crop from the box (the detector's prior) -> keypoint model -> re-crop on the predicted anchors
(the detector's ``align_steps`` times at most: after the first, only while a re-crop would still move the crop) ->
15 points in source pixels -> the emotion model's own crop from the same anchors; plus each face cut in
``FACE_FRAMING``, the framing every stored face has.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml import align
from ml.schema import IMAGE_SIZE


@dataclass
class AnalyzedFace:
    box: tuple[float, float, float, float]
    score: float
    points: np.ndarray  # (15, 2) source pixels
    probabilities: np.ndarray | None  # in the emotion manifest's label order (None without an emotion model)
    face: np.ndarray  # (96, 96) uint8 in FACE_FRAMING: what is stored
    face_points: np.ndarray  # (15, 2) the points in that crop


@dataclass
class LoadedModel:
    model: object  # a tf_keras model or an ml.litert.LiteModel
    framing: align.Framing
    manifest: dict

    @classmethod
    def from_dir(cls, model_dir: str | Path, *, runtime: str = "keras") -> LoadedModel:
        """``runtime``: "keras" loads the TF.js files into tf_keras (TensorFlow); "litert" runs the export's
        model.tflite with LiteRT alone (the web process: no TensorFlow in memory)."""
        from ml.export import read_manifest

        manifest = read_manifest(model_dir)
        if runtime == "litert":
            from ml.litert import TFLITE_FILE, LiteModel

            model = LiteModel(Path(model_dir) / TFLITE_FILE)
        elif runtime == "keras":
            from ml.export import load_tfjs

            model = load_tfjs(model_dir)
        else:
            raise ValueError(f"unknown runtime {runtime!r}; expected keras or litert")
        return cls(model, align.framing_of(manifest), manifest)

    def __call__(self, crops: list[np.ndarray]) -> np.ndarray:
        x = np.stack(crops).astype(np.float32)[..., None] * self.manifest["normalization"]["pixel_scale"]
        return np.asarray(self.model(x, training=False))


class Analyzer:
    def __init__(
        self,
        keypoints: LoadedModel,
        emotion: LoadedModel | None = None,
        detector=None,
        *,
        settings: align.Detector = align.DETECTORS["blazeface"],
        align_steps: int | None = None,
    ):
        self.keypoints, self.emotion = keypoints, emotion
        if detector is None:
            from ml.detect import FaceDetector

            detector = FaceDetector()
        self.detector = detector  # False: align() only, on given seeds
        self.box_prior = settings.box_prior
        self.align_steps = settings.align_steps if align_steps is None else align_steps
        self.converged_px = settings.converged_px

    def align(self, image, seeds: list[np.ndarray], mirror: bool | None = None) -> list[np.ndarray]:
        """Seed matrices -> the 15 points of each face in source pixels (every face batched per model call).
        ``mirror``: test-time mirroring of the keypoint model (default: align.KEYPOINT_MIRROR)."""
        matrices, points = list(seeds), []
        framing = self.keypoints.framing
        scale = self.keypoints.manifest.get("keypoint_scale", IMAGE_SIZE)
        for step in range(self.align_steps + 1):
            if step:
                following = [align.matrix_from_points(p, framing) for p in points]
                # after the first re-crop, another only while it would still move some face's crop
                if step > 1 and all(
                    align.crop_shift(m, f) < self.converged_px for m, f in zip(matrices, following, strict=True)
                ):
                    break
                matrices = following
            crops = np.stack([align.warp(image, m) for m in matrices])
            flat = align.mirrored_mean(lambda x: self.keypoints(list(x)).reshape(len(x), -1, 2) * scale, crops, mirror)
            points = [align.apply(align.invert(m), p) for m, p in zip(matrices, flat, strict=True)]
        return points

    def analyze(self, image) -> list[AnalyzedFace]:
        detections = self.detector.detect(image)
        seeds = [align.matrix_from_box(d.box, self.box_prior, self.keypoints.framing, d.landmarks) for d in detections]
        points = self.align(image, seeds) if seeds else []
        probabilities = [None] * len(points)
        if self.emotion is not None and points:
            crops = [align.warp(image, align.matrix_from_points(p, self.emotion.framing)) for p in points]
            probabilities = list(self.emotion(crops))
        faces = []
        for d, p, probs in zip(detections, points, probabilities, strict=True):
            m = align.matrix_from_points(p, align.FACE_FRAMING)
            faces.append(AnalyzedFace(d.box, d.score, p, probs, align.warp(image, m), align.apply(m, p)))
        return faces
