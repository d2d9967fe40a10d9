"""The single source of truth for what the models see and say.

Everything that the browser, the database and the trainers must agree on lives here: the face framing, the 15
Kaggle keypoints (in the Kaggle column order), how to draw them, the five product emotions and how FER2013's
seven classes map onto them.
"""

from __future__ import annotations

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

EMOTIONS: tuple[str, ...] = ("anger", "disgust", "sad", "happiness", "surprise")
NUM_EMOTIONS = len(EMOTIONS)

FER_CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# FER2013 code -> product code; fear (2) and neutral (6) are left out, as in the original project.
FER_TO_EMOTION: dict[int, int] = {0: 0, 1: 1, 4: 2, 3: 3, 5: 4}

TASKS: tuple[str, ...] = ("keypoints", "emotion")

# What the browser must do to a 96x96 grey crop before calling a model, and how to read the output back.
PIXEL_SCALE = 1.0 / 255.0  # model input = pixel * PIXEL_SCALE
KEYPOINT_SCALE = float(IMAGE_SIZE)  # model output in [0, 1]; pixels = output * KEYPOINT_SCALE


def manifest_fields(task: str) -> dict:
    """The schema part of an exported model's manifest.json, shared by the exporter and the web API."""
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
    return {**common, "output": "probabilities", "labels": list(EMOTIONS)}
