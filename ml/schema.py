"""The single source of truth for what the models see and say.

Everything that the browser, the database and the trainers must agree on lives here: the face framing, the 15
Kaggle keypoints (in the Kaggle column order), how to draw them, FER2013's seven classes under the product's names
and the presets of the emotion label set. The label set itself is data: the app stores it, every exported version's
manifest says the labels it was trained on, and everything that shows or checks an emotion reads them from there.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

IMAGE_SIZE = 96  # every face, everywhere, is a 96x96 greyscale crop in this framing
FER_SIZE = 48  # FER2013's native size; such faces are upscaled 2x by pixel repetition into the 96 frame

# Kaggle Facial Keypoints order. "left" is the subject's left, which is the image's right.
KEYPOINTS: tuple[str, ...] = (
    "left_eye_center",
    "right_eye_center",
    "left_eye_inner_corner",
    "left_eye_outer_corner",
    "right_eye_inner_corner",
    "right_eye_outer_corner",
    "left_eyebrow_inner_end",
    "left_eyebrow_outer_end",
    "right_eyebrow_inner_end",
    "right_eyebrow_outer_end",
    "nose_tip",
    "mouth_left_corner",
    "mouth_right_corner",
    "mouth_center_top_lip",
    "mouth_center_bottom_lip",
)
NUM_KEYPOINTS = len(KEYPOINTS)
KEYPOINT_COLUMNS: tuple[str, ...] = tuple(f"{name}_{axis}" for name in KEYPOINTS for axis in ("x", "y"))


def _index(name: str) -> int:
    return KEYPOINTS.index(name)


# A horizontal mirror turns every "left_*" point into the matching "right_*" one.
FLIP_PERMUTATION: tuple[int, ...] = tuple(
    _index(n.replace("left_", "\0").replace("right_", "left_").replace("\0", "right_")) for n in KEYPOINTS
)

# Edges of the face skeleton drawn over the keypoints (indices into KEYPOINTS).
SKELETON: tuple[tuple[int, int], ...] = tuple(
    (_index(a), _index(b))
    for a, b in (
        ("left_eye_inner_corner", "left_eye_center"),
        ("left_eye_center", "left_eye_outer_corner"),
        ("right_eye_inner_corner", "right_eye_center"),
        ("right_eye_center", "right_eye_outer_corner"),
        ("left_eyebrow_inner_end", "left_eyebrow_outer_end"),
        ("right_eyebrow_inner_end", "right_eyebrow_outer_end"),
        ("left_eye_inner_corner", "nose_tip"),
        ("right_eye_inner_corner", "nose_tip"),
        ("mouth_left_corner", "mouth_center_top_lip"),
        ("mouth_center_top_lip", "mouth_right_corner"),
        ("mouth_right_corner", "mouth_center_bottom_lip"),
        ("mouth_center_bottom_lip", "mouth_left_corner"),
    )
)

# FER2013's codes 0..6 under the product's names (FER2013 itself says angry, happy).
FER_CLASSES: tuple[str, ...] = ("anger", "disgust", "fear", "happiness", "sad", "surprise", "neutral")
# Ready-made label sets. "seed-five" is the original project's (FER2013 without fear and neutral); it is also the
# numbering of the course's icml_face_data.csv.
PRESETS: dict[str, tuple[str, ...]] = {
    "fer-seven": FER_CLASSES,
    "seed-five": ("anger", "disgust", "sad", "happiness", "surprise"),
}
DEFAULT_PRESET = "fer-seven"
DEFAULT_LABELS = PRESETS[DEFAULT_PRESET]
ICML_CLASSES = PRESETS["seed-five"]
# Names that files and people use for the same classes (CK+ and FER2013 say angry, happy; others sadness...).
LABEL_ALIASES: dict[str, str] = {
    "angry": "anger",
    "happy": "happiness",
    "joy": "happiness",
    "sadness": "sad",
    "surprised": "surprise",
    "fearful": "fear",
    "disgusted": "disgust",
}
LABEL_KEY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def label_key(text: str) -> str:
    """A class's stable key as stored everywhere: lower case, spaces as underscores, aliases resolved
    (``"Happy"`` -> ``happiness``); ValueError for anything else."""
    key = "_".join(str(text).strip().lower().split())
    key = LABEL_ALIASES.get(key, key)
    if not LABEL_KEY.match(key):
        raise ValueError(
            f"{str(text)[:40]!r} is not a class name: a letter, then up to 31 letters, digits or underscores"
        )
    return key


TASKS: tuple[str, ...] = ("keypoints", "emotion")

# What the browser must do to a 96x96 grey crop before calling a model, and how to read the output back.
PIXEL_SCALE = 1.0 / 255.0  # model input = pixel * PIXEL_SCALE
KEYPOINT_SCALE = float(IMAGE_SIZE)  # model output in [0, 1]; pixels = output * KEYPOINT_SCALE


def manifest_fields(task: str, labels: Sequence[str] | None = None) -> dict:
    """The schema part of an exported model's manifest.json, shared by the exporter and the web API; an emotion
    model names the classes of its outputs, in order (``labels``)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    common = {
        "task": task,
        "input_shape": [IMAGE_SIZE, IMAGE_SIZE, 1],
        "normalization": {"pixel_scale": PIXEL_SCALE, "grayscale": "0.299r+0.587g+0.114b"},
    }
    if task == "keypoints":
        return {
            **common,
            "output": "points",
            "keypoint_names": list(KEYPOINTS),
            "skeleton": [list(e) for e in SKELETON],
            "flip_permutation": list(FLIP_PERMUTATION),
            "keypoint_scale": KEYPOINT_SCALE,
        }
    if not labels:
        raise ValueError("an emotion model's manifest needs its labels")
    return {**common, "output": "probabilities", "labels": list(labels)}
