"""Face alignment: where a face must sit in the 96x96 crop a model reads, and how to cut that crop from any image.

A *framing* is owned by a model (it is written into its manifest): the midpoint between the eye-centre midpoint and
the lip-centre midpoint lands on ``center``, those two anchors lie ``distance`` pixels apart, and the crop is either
upright (``rotate=False``: the head keeps its tilt, as in the training faces) or turned so the eye-lip axis is
vertical. A crop is therefore a similarity transform ``crop = A @ [x, y, 1]`` (2x3), computed from the anchors of
15 keypoints in source-image pixels. The browser (``static/js/geometry.js``) computes the same matrix; tests check
that both agree.

The path every image takes (browser, server and benchmarks):
detector box -> first crop (a per-detector prior of where the anchors sit in its box) -> keypoint model -> re-crop
on the predicted anchors (``Detector.align_steps`` times) -> final keypoints in source pixels -> the emotion model's
own crop from the same anchors.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from ml.schema import FLIP_PERMUTATION, IMAGE_SIZE, KEYPOINTS

EYES = (KEYPOINTS.index("left_eye_center"), KEYPOINTS.index("right_eye_center"))
LIPS = (KEYPOINTS.index("mouth_center_top_lip"), KEYPOINTS.index("mouth_center_bottom_lip"))


@dataclass(frozen=True)
class Framing:
    center: tuple[float, float]  # crop pixel where the eye/lip anchor midpoint lands
    distance: float  # eye-midpoint to lip-midpoint distance in crop pixels
    rotate: bool = False  # level the eye-lip axis (False: keep the head's tilt, as the training faces do)

    def to_dict(self) -> dict:
        return {**asdict(self), "center": list(self.center), "anchors": "eye-centre midpoint, lip-centre midpoint"}

    @classmethod
    def from_dict(cls, data: dict) -> Framing:
        return cls(
            center=tuple(float(v) for v in data["center"]),
            distance=float(data["distance"]),
            rotate=bool(data.get("rotate", False)),
        )

    def zoomed(self, zoom: float) -> Framing:
        """The same framing with the picture scaled by ``zoom`` about the crop's centre."""
        c = (IMAGE_SIZE - 1) / 2.0
        x, y = self.center
        return Framing(
            center=(c + zoom * (x - c), c + zoom * (y - c)), distance=self.distance * zoom, rotate=self.rotate
        )


# The framing of every stored face: the Kaggle keypoint set's. Measured on keypoints.csv.gz (all 3,450 faces): the
# anchor midpoint sits at (48.00, 57.00) +- 0.00 and the anchors are 38.00 +- 0.00 px apart, while the eye line tilts
# -0.6 +- 7.7 degrees: the faces were scaled and shifted, not turned (``python -m ml framing`` re-measures it).
FACE_FRAMING = Framing(center=(48.0, 57.0), distance=38.0, rotate=False)

# The keypoint model reads faces zoomed in by 1.08-1.32 around this (ml.augment), so its own framing is the face
# framing zoomed by KEYPOINT_ZOOM: no training crop ever shows a border (see AugmentConfig.zoom).
KEYPOINT_ZOOM = 1.2
KEYPOINT_ZOOM_RANGE = (KEYPOINT_ZOOM - 0.12, KEYPOINT_ZOOM + 0.12)
# It reads the head levelled (its eye-lip axis upright, as nearly all its training faces are), and the points are
# turned back into the picture's pixels: on 100 benchmark frames tilted +-30 degrees the whole-photo path went from
# 4.68 px to 1.42 px (upright 1.37 -> 1.38) with the first crop's angle from the detector's eye landmarks and two
# re-crops (bench/tilt.py).
KEYPOINT_MODEL_FRAMING = replace(FACE_FRAMING.zoomed(KEYPOINT_ZOOM), rotate=True)

# FER2013's faces, measured by running the aligned keypoint path on 3,000 of them (``python -m ml framing --data
# fer2013.csv.gz --model <keypoint export>``): anchor midpoint (48.58, 57.14), IQR 5.0 / 5.1 px; distance 37.89, IQR
# 4.9 px; tilt 0.1 +- 9.7 degrees. Within 0.6 px of the stored faces' framing, so one stored crop serves both tasks.
EMOTION_FRAMING = Framing(center=(48.6, 57.1), distance=37.9, rotate=False)
# The emotion model reads the head levelled too (it trains on FER's faces as they are, nearly upright): 600 FER2013
# PublicTest faces in grey pictures turned +-30 degrees, through the server's path, 0.588 read with the tilt kept vs
# 0.640 levelled (the model straight on the untouched faces: 0.645); +-45: 0.397 vs 0.677; upright 0.636 vs 0.638
# (``bench/tilt.py --no-browser --emotion 600``).
EMOTION_MODEL_FRAMING = replace(EMOTION_FRAMING, rotate=True)

# What a model trained by ml.train now reads (written into its manifest by ml.export).
MODEL_FRAMINGS = {"keypoints": KEYPOINT_MODEL_FRAMING, "emotion": EMOTION_MODEL_FRAMING}
# The framing of the faces in the data files and the database, per task; exports made before manifests carried a
# framing were trained on exactly these.
DATA_FRAMINGS = {"keypoints": FACE_FRAMING, "emotion": EMOTION_FRAMING}


def framing_of(manifest: dict) -> Framing:
    """The framing a model's manifest declares (older exports: the framing of the data they were trained on)."""
    if "framing" in manifest:
        return Framing.from_dict(manifest["framing"])
    return DATA_FRAMINGS[manifest["task"]]


@dataclass(frozen=True)
class BoxPrior:
    """Where a detector's box puts the anchors: midpoint = box centre + (dx, dy) * box side, distance = k * side."""

    dx: float
    dy: float
    k: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Detector:
    """A face detector's settings and where its boxes put the anchors (fitted by ``fit_box_prior``)."""

    name: str
    variant: str  # which of the network's models (ml.detect.VARIANTS): its input size and anchors follow
    box_prior: BoxPrior
    pad: float  # black border (fraction of the longer side) for a second try when the picture as it is gives no face
    score_threshold: float
    # re-crops after the first crop from the box: a detector whose boxes sit less steadily on the face needs more
    # (bench/pipeline.py --server --server-steps 0 1 2: 1.654 px with none, 1.516 with one, 1.523 with two)
    align_steps: int
    # ... at most: after the first re-crop, one more only where it would move some face's crop (its corners, in crop
    # pixels: ``crop_shift``) by this much or more. On 400 benchmark frames through the server's path: upright, the
    # second re-crop ran on 27 % of the faces (1.339 px; always: 1.340, never: 1.337); at +-30 degrees on 61 % (1.381
    # px; always: 1.383, never: 1.494). At 1 px it ran on 86 % / 98 %, at 6 px ±30 degrees lost 0.010 px.
    converged_px: float = 3.0

    def to_dict(self) -> dict:
        return {**asdict(self), "box_prior": self.box_prior.to_dict()}


# The box prior is fitted on the calibration half of the whole frames: python -m ml calibrate --frames <frames dir>.
DETECTORS = {
    # MediaPipe BlazeFace full range: the server runs the TFLite file (ml.detect), the browser the same network
    # rebuilt for TF.js (python -m ml detector; static/js/blazeface.js).
    "blazeface": Detector(
        "blazeface",
        "full",
        BoxPrior(dx=0.0163, dy=0.0497, k=0.4412),
        pad=0.25,
        score_threshold=0.5,
        # two re-crops: the first one from a tilted head's first points is not yet level (bench/tilt.py)
        align_steps=2,
    ),
}
REDETECT_EVERY = 10  # video: frames between detector runs while faces are followed
# Test-time mirroring of the keypoint model (the mean of the prediction on the crop and the un-mirrored prediction on
# its mirror image) is NOT used (measured on the previous, 120-epoch model): on the curated block split it helped
# (1.452 -> 1.439 px, `python -m ml evaluate --mirror`), but through the path users run it did not (915 whole frames:
# 1.516 -> 1.519 px, 95 % CI of the change [-0.013, +0.007], `bench/pipeline.py --server --server-mirror`), and it
# doubles the keypoint model's cost per face.
KEYPOINT_MIRROR = False
FOLLOW_ALIGN_STEPS = 0  # video: re-crops of a followed face (its seed is the last frame's alignment)
# video: a detection keeps its followed face's alignment as the seed only when the two centres lie within this share
# of the detection's size (a fast face the follower let slip is seeded from the detector's box instead)
FOLLOW_SEED_SHIFT = 0.15


def pipeline_manifest() -> dict:
    """What the browser needs besides the models: its detector and the alignment steps."""
    return {
        "detector": DETECTORS["blazeface"].to_dict(),
        "redetect_every": REDETECT_EVERY,
        "follow_align_steps": FOLLOW_ALIGN_STEPS,
        "follow_seed_shift": FOLLOW_SEED_SHIFT,
        "face_framing": FACE_FRAMING.to_dict(),
    }


def fit_box_prior(boxes: np.ndarray, points: np.ndarray) -> BoxPrior:
    """Median placement of the true anchors in (N, 4) detector boxes; (N, 15, 2) true points."""
    boxes = np.asarray(boxes, np.float64)
    side = np.sqrt(boxes[:, 2] * boxes[:, 3])
    eye, lip = anchors(points)
    mid = (eye + lip) / 2
    dx = (mid[:, 0] - boxes[:, 0] - boxes[:, 2] / 2) / side
    dy = (mid[:, 1] - boxes[:, 1] - boxes[:, 3] / 2) / side
    k = np.linalg.norm(lip - eye, axis=1) / side
    return BoxPrior(
        dx=round(float(np.median(dx)), 4), dy=round(float(np.median(dy)), 4), k=round(float(np.median(k)), 4)
    )


def anchors(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., 15, 2) points -> (eye midpoint, lip midpoint), each (..., 2)."""
    points = np.asarray(points, np.float64)
    return points[..., EYES, :].mean(-2), points[..., LIPS, :].mean(-2)


def frame_scale(points: np.ndarray) -> np.ndarray:
    """Training-frame pixels per source pixel: 38 / eye-lip distance (how errors are made comparable)."""
    eye, lip = anchors(points)
    return FACE_FRAMING.distance / np.linalg.norm(lip - eye, axis=-1)


def crop_matrix(mid: np.ndarray, distance: float, angle: float, framing: Framing) -> np.ndarray:
    """Similarity 2x3 mapping source pixels to crop pixels.

    ``mid`` is the anchor midpoint in the source, ``distance`` the anchors' distance there, ``angle`` the eye-lip
    axis angle from vertical in radians (used only when the framing rotates).
    """
    scale = framing.distance / distance
    theta = -angle if framing.rotate else 0.0
    cos, sin = scale * math.cos(theta), scale * math.sin(theta)
    linear = np.array([[cos, -sin], [sin, cos]])
    offset = np.asarray(framing.center, np.float64) - linear @ np.asarray(mid, np.float64)
    return np.hstack([linear, offset[:, None]])


def matrix_from_points(points: np.ndarray, framing: Framing) -> np.ndarray:
    """The crop that puts these 15 source points' anchors where ``framing`` wants them."""
    eye, lip = anchors(points)
    axis = lip - eye
    return crop_matrix((eye + lip) / 2, float(np.hypot(*axis)), math.atan2(-axis[0], axis[1]), framing)


def matrix_from_box(
    box: tuple[float, float, float, float], prior: BoxPrior, framing: Framing, landmarks: np.ndarray | None = None
) -> np.ndarray:
    """The first crop, from a detector box (x, y, width, height) and that detector's prior. With the detector's six
    ``landmarks`` (right eye, left eye, nose, mouth, ears), a framing that levels the head takes the crop's angle from
    the eye line (``landmark_angle``): the first crop of a tilted head is already nearly level."""
    x, y, w, h = box
    side = math.sqrt(w * h)
    mid = (x + w / 2 + prior.dx * side, y + h / 2 + prior.dy * side)
    return crop_matrix(mid, prior.k * side, landmark_angle(landmarks), framing)


def landmark_angle(landmarks: np.ndarray | None) -> float:
    """The head's tilt from a detector's six landmarks: the angle of the line from its right eye to its left eye (the
    same angle ``matrix_from_points`` measures on the eye-lip axis); 0 without landmarks. The eyes, not the mouth: on
    100 benchmark frames turned +-15/30 degrees the eye line gave 1.395/1.416 px, eyes-to-mouth 1.395/1.440 with one
    frame the browser's path lost (the mouth landmark wanders; bench/tilt.py)."""
    if landmarks is None:
        return 0.0
    landmarks = np.asarray(landmarks, np.float64)
    eyes = landmarks[1] - landmarks[0]
    return math.atan2(eyes[1], eyes[0])


CROP_CORNERS = np.array([[0.0, 0.0], [IMAGE_SIZE, 0.0], [IMAGE_SIZE, IMAGE_SIZE], [0.0, IMAGE_SIZE]])


def crop_shift(current: np.ndarray, following: np.ndarray) -> float:
    """How far (crop pixels) re-cutting with ``following`` instead of ``current`` moves the crop's corners: the most
    a further alignment pass would change what the model reads (geometry.cropShift)."""
    moved = apply(following, apply(invert(current), CROP_CORNERS))
    return float(np.max(np.hypot(*(moved - CROP_CORNERS).T)))


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def invert(matrix: np.ndarray) -> np.ndarray:
    linear_inv = np.linalg.inv(matrix[:, :2])
    return np.hstack([linear_inv, (-linear_inv @ matrix[:, 2])[:, None]])


def reframe_matrix(source: Framing, target: Framing) -> np.ndarray:
    """Crop-to-crop matrix: a face in the ``source`` framing -> the same face in the ``target`` framing (upright)."""
    return crop_matrix(np.asarray(source.center), source.distance, 0.0, target)


def reframe(images: np.ndarray, points: np.ndarray | None, source: Framing, target: Framing):
    """(N, 96, 96) uint8 faces (and their (N, 15, 2) points) from one framing into another."""
    if (source.center, source.distance) == (target.center, target.distance):  # data faces are upright: no turn
        return images, points
    from PIL import Image

    matrix = reframe_matrix(source, target)
    out = np.stack([warp(Image.fromarray(image), matrix) for image in images]) if len(images) else images
    return out, (None if points is None else apply(matrix, points).astype(np.float32))


def warp(image, matrix: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """Cut the (size, size) grey crop ``matrix`` describes from a PIL image; outside the image is black.

    An upright crop is a box resize, which Pillow antialiases when it shrinks (as the browser's drawImage does); a
    turned crop first shrinks the image by an integer factor so the bilinear warp never skips source pixels.
    """
    from PIL import Image

    grey = image.convert("L")
    inverse = invert(matrix)
    linear = matrix[:, :2]
    # Crop pixel i covers crop coordinates [i - 0.5, i + 0.5]; source coordinates are read as Pillow's (and canvas's)
    # edge coordinates. Measured against the training crops on the whole frames: with this convention the shipped
    # model's anchors sit -0.2/+0.3 px from the truth in a perfectly framed crop, with source centres at +0.5 they sit
    # -0.7/-0.25 px off, and RMSE rises from 1.53 to 1.59 px.
    if abs(linear[0, 1]) < 1e-9 and abs(linear[1, 0]) < 1e-9:
        x0, y0 = apply(inverse, [-0.5, -0.5])
        x1, y1 = apply(inverse, [size - 0.5, size - 0.5])
        pad = math.ceil(max(0.0, -x0, -y0, x1 - grey.width, y1 - grey.height))
        if pad:
            padded = Image.new("L", (grey.width + 2 * pad, grey.height + 2 * pad), 0)
            padded.paste(grey, (pad, pad))
            grey, x0, y0, x1, y1 = padded, x0 + pad, y0 + pad, x1 + pad, y1 + pad
        crop = grey.resize((size, size), Image.Resampling.BILINEAR, box=(x0, y0, x1, y1))
        return np.asarray(crop, np.uint8)
    factor = max(1, int(1.0 / math.sqrt(abs(np.linalg.det(linear)))))
    if factor > 1:
        grey = grey.reduce(factor)
    # Pillow's AFFINE data maps an output pixel's centre (edge coordinates, +0.5) to input edge coordinates.
    a = inverse[:, :2] / factor
    c = (inverse[:, 2] - inverse[:, :2] @ np.array([0.5, 0.5])) / factor
    data = (a[0, 0], a[0, 1], c[0], a[1, 0], a[1, 1], c[1])
    crop = grey.transform((size, size), Image.Transform.AFFINE, data, Image.Resampling.BILINEAR, fillcolor=0)
    return np.asarray(crop, np.uint8)


def mirrored_mean(points_of, crops: np.ndarray, mirror: bool | None = None) -> np.ndarray:
    """``points_of``: (N, 96, 96) crops -> (N, 15, 2) points in the crop. With ``mirror``, the mean of the points on
    the crops and the un-mirrored points on their mirror images (x -> 95 - x, left and right swapped)."""
    crops = np.asarray(crops)
    plain = np.asarray(points_of(crops), np.float64)
    if not (KEYPOINT_MIRROR if mirror is None else mirror):
        return plain
    flipped = np.asarray(points_of(np.ascontiguousarray(crops[..., ::-1])), np.float64)
    back = flipped[..., list(FLIP_PERMUTATION), :].copy()
    back[..., 0] = (IMAGE_SIZE - 1) - back[..., 0]
    return (plain + back) / 2
