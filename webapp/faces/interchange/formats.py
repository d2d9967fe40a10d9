"""Import/export formats, keyed by name: adding a format touches this file only.

Readers come from ``ml.datasets`` (the same code the trainers use); writers are here because they read the database.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from django.conf import settings

from ml.datasets import READERS
from ml.schema import FER_CLASSES, KEYPOINT_COLUMNS, KEYPOINTS, SKELETON
from webapp.common.models import Task
from webapp.faces.labeling.selectors import current_labels, excluded_ids
from webapp.faces.store.images import read_frame
from webapp.faces.store.models import Face

IMPORT_FORMATS = tuple(READERS)
Progress = Callable[[int], None] | None


def _frames(faces: dict[int, Face], ids: list[int]):
    for face_id in ids:
        yield faces[face_id], read_frame(Path(settings.MEDIA_ROOT) / faces[face_id].image)


def _pixels(frame: np.ndarray) -> str:
    return " ".join(map(str, frame.ravel().tolist()))


def _labeled(task: str, only: set[int] | None = None) -> tuple[dict[int, object], dict[int, Face], list[int]]:
    """The current labels of ``task``, the faces staff excluded left out; ``only``: of these faces alone (a selection
    on the Faces page)."""
    labels = current_labels(task=task)
    for face_id in excluded_ids():
        labels.pop(face_id, None)
    if only is not None:
        labels = {face_id: label for face_id, label in labels.items() if face_id in only}
    ids = sorted(labels)
    return labels, Face.objects.in_bulk(ids), ids


def write_kaggle_keypoints(path: Path, progress: Progress = None, *, only: set[int] | None = None) -> int:
    labels, faces, ids = _labeled(Task.KEYPOINTS, only)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*KEYPOINT_COLUMNS, "Image"])
        for n, (face, frame) in enumerate(_frames(faces, ids), 1):
            coords = [f"{p[axis]:.4f}" for p in labels[face.pk] for axis in ("x", "y")]
            writer.writerow([*coords, _pixels(frame)])
            if progress:
                progress(n)
    return len(ids)


def write_fer2013(path: Path, progress: Progress = None, *, only: set[int] | None = None) -> int:
    """FER2013 layout at 48x48: the 96 frame averaged 2x2 (exactly FER's pixels for faces imported from FER). A class
    FER2013 has is written as its code, any other (contempt) by its name, which the FER reader takes too."""
    labels, faces, ids = _labeled(Task.EMOTION, only)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["emotion", "pixels", "Usage"])
        for n, (face, frame) in enumerate(_frames(faces, ids), 1):
            small = frame.reshape(48, 2, 48, 2).astype(np.float32).mean(axis=(1, 3))
            usage = face.usage or ("PublicTest" if face.split == Face.Split.VAL else "Training")
            key = labels[face.pk]
            emotion = FER_CLASSES.index(key) if key in FER_CLASSES else key
            writer.writerow([emotion, _pixels(np.round(small).astype(np.uint8)), usage])
            if progress:
                progress(n)
    return len(ids)


def write_coco_keypoints(path: Path, progress: Progress = None, *, only: set[int] | None = None) -> int:
    """COCO keypoints JSON; images are written as PNG files beside it, in <name>_images/."""
    labels, faces, ids = _labeled(Task.KEYPOINTS, only)
    emotions = current_labels(task=Task.EMOTION)
    image_dir = path.with_name(f"{path.stem}_images")
    image_dir.mkdir(parents=True, exist_ok=True)
    coco = {
        "info": {"description": "Emotion AI Studio export", "keypoint_frame": "96x96 grey"},
        "categories": [
            {
                "id": 1,
                "name": "face",
                "keypoints": list(KEYPOINTS),
                "skeleton": [[a + 1, b + 1] for a, b in SKELETON],  # COCO's skeleton is 1-based
            }
        ],
        "images": [],
        "annotations": [],
    }
    for n, face_id in enumerate(ids, 1):
        face = faces[face_id]
        src = Path(settings.MEDIA_ROOT) / face.image
        (image_dir / f"{face.pk}.png").write_bytes(src.read_bytes())
        coco["images"].append(
            {"id": face.pk, "file_name": f"{image_dir.name}/{face.pk}.png", "width": 96, "height": 96}
        )
        flat = []
        for p in labels[face.pk]:
            flat += [round(p["x"], 4), round(p["y"], 4), 2 if p.get("visible", True) else 1]
        annotation = {
            "id": face.pk,
            "image_id": face.pk,
            "category_id": 1,
            "keypoints": flat,
            "num_keypoints": len(KEYPOINTS),
            "bbox": [0, 0, 96, 96],
            "area": 96 * 96,
            "iscrowd": 0,
        }
        if face.pk in emotions:
            annotation["attributes"] = {"emotion": emotions[face.pk]}
        coco["annotations"].append(annotation)
        if progress:
            progress(n)
    path.write_text(json.dumps(coco))
    return len(ids)


def write_label_studio(
    path: Path, progress: Callable[[int], None] | None = None, *, only: set[int] | None = None
) -> int:
    """Label Studio's JSON: a task per labeled face (image embedded), its labels and the served models' predictions;
    ``only``: a task per selected face (labeled or not: tasks to label), the excluded ones left out."""
    from webapp.faces.interchange.labelstudio.services import write_label_studio as write

    return write(path, progress, only=only)


WRITERS: dict[str, Callable[..., int]] = {
    "kaggle-keypoints": write_kaggle_keypoints,
    "fer2013": write_fer2013,
    "coco-keypoints": write_coco_keypoints,
    "label-studio": write_label_studio,
}


def count_for(fmt: str) -> int:
    if fmt == "label-studio":
        labeled = set(current_labels(task=Task.KEYPOINTS)) | set(current_labels(task=Task.EMOTION))
        return len(labeled - excluded_ids())
    task = Task.EMOTION if fmt == "fer2013" else Task.KEYPOINTS
    return len(set(current_labels(task=task)) - excluded_ids())
