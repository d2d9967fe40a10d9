"""Tiny CSVs in the real Kaggle / FER / icml layouts, written by the tests themselves."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ml.schema import KEYPOINT_COLUMNS

FER_HEADER = "emotion,pixels,Usage"
ICML_HEADER = "emotion, Usage, pixels"  # the course file's header has leading spaces


def synthetic_face(seed: int, side: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """A grey image with dark blobs where the 15 keypoints are: enough structure for a model to learn from."""
    rng = np.random.default_rng(seed)
    base = np.array(
        [
            [64, 38],
            [32, 38],
            [58, 38],
            [72, 38],
            [38, 38],
            [24, 38],
            [56, 28],
            [78, 28],
            [40, 28],
            [18, 28],
            [48, 58],
            [62, 76],
            [34, 76],
            [48, 72],
            [48, 82],
        ],
        np.float32,
    )
    points = base + rng.uniform(-3, 3, size=2).astype(np.float32) + rng.normal(0, 0.7, base.shape).astype(np.float32)
    points = np.clip(points, 1, 94)
    yy, xx = np.mgrid[0:96, 0:96]
    image = np.full((96, 96), 170.0) + rng.normal(0, 6, (96, 96))
    for x, y in points:
        image -= 90 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 6.0)
    image = np.clip(image, 0, 255).astype(np.uint8)
    if side != 96:
        image = image.reshape(side, 96 // side, side, 96 // side).mean(axis=(1, 3)).astype(np.uint8)
    return image, points


def pixels(image: np.ndarray) -> str:
    return " ".join(map(str, image.ravel().tolist()))


def keypoint_row(seed: int) -> str:
    image, points = synthetic_face(seed)
    return ",".join([*(f"{v:.3f}" for v in points.ravel()), pixels(image)])


def write(path: Path, header: str, rows: list[str], gz: bool = False) -> Path:
    text = "\n".join([header, *rows]) + "\n"
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def keypoints_csv(path: Path, n: int = 6, extra_rows: list[str] = (), gz: bool = False) -> Path:
    return write(
        path, ",".join([*KEYPOINT_COLUMNS, "Image"]), [keypoint_row(i) for i in range(n)] + list(extra_rows), gz
    )


def fer_row(emotion: int | str, seed: int, usage: str = "Training") -> str:
    return f"{emotion},{pixels(synthetic_face(seed, side=48)[0])},{usage}"


def icml_row(emotion: int | str, seed: int, usage: str = "Training") -> str:
    return f"{emotion},{usage},{pixels(synthetic_face(seed, side=48)[0])}"
