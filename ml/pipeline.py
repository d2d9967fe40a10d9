"""The path a whole picture takes on the server and in the benchmarks: the twin of ``analyze`` (static/js/inference.js).

detector -> first crop from the box (the detector's prior) -> keypoint model -> re-crop on the predicted anchors
(the detector's ``align_steps`` times at most: after the first, only while a re-crop would still move the crop) ->
15 points in source pixels -> the emotion model's own crop from the same anchors; plus each face cut in
``FACE_FRAMING``, the framing every stored face has.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
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

    def align(
        self, image, seeds: list[np.ndarray], mirror: bool | None = None, *, steps: int | None = None
    ) -> list[np.ndarray]:
        """Seed matrices -> the 15 points of each face in source pixels (every face batched per model call).
        ``mirror``: test-time mirroring of the keypoint model (default: align.KEYPOINT_MIRROR); ``steps``: re-crops
        (default: the detector's ``align_steps``)."""
        matrices, points = list(seeds), []
        framing = self.keypoints.framing
        scale = self.keypoints.manifest.get("keypoint_scale", IMAGE_SIZE)
        for step in range((self.align_steps if steps is None else steps) + 1):
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
        return self._finish(image, [d.box for d in detections], [d.score for d in detections], points)

    def analyze_frame(
        self, image, followed: list[AnalyzedFace], *, detect: bool, moves: list | None = None
    ) -> list[AnalyzedFace]:
        """One video frame, as ``analyze(source, {video: true})`` in static/js/inference.js: with ``detect`` the
        detector runs and a detection lying on a followed face keeps that face's alignment as its seed; without it
        the followed faces' points seed this frame's crops (FOLLOW_ALIGN_STEPS re-crops) and a face that left the
        picture is dropped. A followed face's box is its last detector box carried along with its points.
        ``moves``: how far each followed face is expected to have moved since its frame, (dx, dy) in pixels (its
        track's velocity, ml.video.Tracker.expected): its points and box are moved so before they seed or match."""
        if moves:
            followed = [moved(f, *m) for f, m in zip(followed, moves, strict=True)]
        kp = self.keypoints.framing
        if detect:
            boxes, scores, seeds = [], [], []
            for d in self.detector.detect(image):
                cx, cy = d.box[0] + d.box[2] / 2, d.box[1] + d.box[3] / 2
                on = next((f for f in followed if _inside(cx, cy, f.box) and _near(d.box, f.box)), None)
                seeds.append(
                    align.matrix_from_points(on.points, kp)
                    if on is not None
                    else align.matrix_from_box(d.box, self.box_prior, kp, d.landmarks)
                )
                boxes.append(d.box)
                scores.append(d.score)
            points = self.align(image, seeds) if seeds else []
        else:
            seeds = [align.matrix_from_points(f.points, kp) for f in followed]
            points = self.align(image, seeds, steps=align.FOLLOW_ALIGN_STEPS) if seeds else []
            boxes = [
                carry_box(f.box, points_box(f.points), points_box(p)) for f, p in zip(followed, points, strict=True)
            ]
            scores = [f.score for f in followed]
        faces = self._finish(image, boxes, scores, points)
        width, height = image.size
        return [f for f in faces if _in_picture(points_box(f.points), width, height)]

    def _finish(self, image, boxes, scores, points) -> list[AnalyzedFace]:
        probabilities = [None] * len(points)
        if self.emotion is not None and points:
            crops = [align.warp(image, align.matrix_from_points(p, self.emotion.framing)) for p in points]
            probabilities = list(self.emotion(crops))
        faces = []
        for box, score, p, probs in zip(boxes, scores, points, probabilities, strict=True):
            m = align.matrix_from_points(p, align.FACE_FRAMING)
            faces.append(AnalyzedFace(tuple(box), score, p, probs, align.warp(image, m), align.apply(m, p)))
        return faces


def moved(face: AnalyzedFace, dx: float, dy: float) -> AnalyzedFace:
    """``face`` with its points and box moved by (dx, dy) pixels."""
    if not dx and not dy:
        return face
    x, y, w, h = face.box
    return replace(face, box=(x + dx, y + dy, w, h), points=np.asarray(face.points) + np.array([dx, dy]))


def points_box(points: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, width, height) of the points' bounds."""
    x0, y0 = np.min(points, axis=0)
    x1, y1 = np.max(points, axis=0)
    return float(x0), float(y0), float(x1 - x0), float(y1 - y0)


def carry_box(box, before, after) -> tuple[float, float, float, float]:
    """``box`` moved and scaled as the points' bounds moved from ``before`` to ``after`` (each x, y, w, h)."""
    k = (after[2] + after[3]) / max(1e-6, before[2] + before[3])
    cx = after[0] + after[2] / 2 + (box[0] + box[2] / 2 - before[0] - before[2] / 2) * k
    cy = after[1] + after[3] / 2 + (box[1] + box[3] / 2 - before[1] - before[3] / 2) * k
    w, h = box[2] * k, box[3] * k
    return cx - w / 2, cy - h / 2, w, h


def centre(box) -> np.ndarray:
    """(x, y) of an (x, y, width, height) box's centre."""
    return np.array([box[0] + box[2] / 2, box[1] + box[3] / 2])


def centre_shift(box, other) -> float:
    """How far ``other``'s centre lies from ``box``'s, in ``box``'s sizes (the mean of its sides)."""
    return float(np.linalg.norm(centre(other) - centre(box))) / max(1e-6, (box[2] + box[3]) / 2)


def _near(box, other) -> bool:
    """Whether ``other``'s centre lies within align.FOLLOW_SEED_SHIFT of ``box``'s size from ``box``'s centre: a
    followed face that far from its detection has slipped (a fast face between detector runs), and its points would
    seed the crop where the face was."""
    return centre_shift(box, other) <= align.FOLLOW_SEED_SHIFT


def _inside(x: float, y: float, box) -> bool:
    return box[0] < x < box[0] + box[2] and box[1] < y < box[1] + box[3]


def _in_picture(box, width: int, height: int) -> bool:
    x, y, w, h = box
    return w > 2 and x + w > 0 and y + h > 0 and x < width and y < height
