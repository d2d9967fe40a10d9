"""Reads of the faces domain."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Exists, F, OuterRef, QuerySet
from django.utils import timezone

from webapp.faces.images import read_frame
from webapp.faces.models import Annotation, Face, Lease, Task

LABEL_FIELD = {Task.KEYPOINTS: "points", Task.EMOTION: "emotion"}


def face_list(*, source: str | None = None, split: str | None = None, labeled: str | None = None) -> QuerySet[Face]:
    """Faces, newest first. ``labeled`` = keypoints|emotion keeps faces with a human label of that task,
    ``unlabeled:keypoints`` those without."""
    qs = Face.objects.all().order_by("-id")
    if source:
        qs = qs.filter(source=source)
    if split:
        qs = qs.filter(split=split)
    if labeled:
        negate, _, task = labeled.rpartition(":")
        if task not in Task.values or negate not in ("", "unlabeled"):
            choices = [*Task.values, *(f"unlabeled:{t}" for t in Task.values)]
            raise ValidationError({"labeled": [f"must be one of {', '.join(choices)}, got {labeled!r}"]})
        qs = qs.filter(**{f"human_{task}": not negate})
    return qs


def annotation_history(*, face: Face) -> QuerySet[Annotation]:
    return face.annotations.select_related("author").order_by("-created_at", "-id")


def current_labels(*, task: str, faces: QuerySet[Face] | None = None) -> dict[int, object]:
    """face id -> its current label for ``task``: the newest human annotation, else the newest imported one.

    A face whose newest human annotation marks it skipped has no label (it is left out of training and export).
    """
    field_name = LABEL_FIELD[task]
    qs = Annotation.objects.filter(origin__in=[Annotation.Origin.HUMAN, Annotation.Origin.IMPORT])
    if faces is not None:
        qs = qs.filter(face__in=faces)
    qs = qs.filter(**{f"{field_name}__isnull": False}) | qs.filter(skip=True)
    labels: dict[int, object] = {}
    decided: set[int] = set()  # faces whose newest human row was seen
    imported: set[int] = set()  # faces whose newest import row was seen
    # Newest first: the first human row of a face decides; else its newest import row (a later import that corrects an
    # earlier one appends a row, and one that leaves the face out appends a skip).
    rows = qs.order_by("face_id", "-created_at", "-id").values_list("face_id", "origin", "skip", field_name)
    for face_id, origin, skip, value in rows.iterator(chunk_size=5000):
        if face_id in decided:
            continue
        if origin == Annotation.Origin.HUMAN:
            decided.add(face_id)
            if skip:
                labels.pop(face_id, None)
                continue
            labels[face_id] = value
        elif face_id not in imported:
            imported.add(face_id)
            if not skip:
                labels[face_id] = value
    return labels


@dataclass
class TrainingSet:
    task: str
    face_ids: np.ndarray
    images: np.ndarray  # (N, 96, 96) uint8
    targets: np.ndarray  # (N, 15, 2) points or (N,) emotion codes
    is_val: np.ndarray  # (N,) bool, the fixed split stored on each face
    human_labels: int  # how many of the labels came from people

    def counts(self) -> dict:
        return {
            "faces": len(self.face_ids),
            "train": int((~self.is_val).sum()),
            "val": int(self.is_val.sum()),
            "human_labels": self.human_labels,
        }


def training_set(*, task: str) -> TrainingSet:
    labels = current_labels(task=task)
    ids = sorted(labels)
    faces = Face.objects.in_bulk(ids)
    media = settings.MEDIA_ROOT
    images = np.zeros((len(ids), 96, 96), np.uint8)
    for i, face_id in enumerate(ids):
        images[i] = read_frame(f"{media}/{faces[face_id].image}")
    if task == Task.KEYPOINTS:
        targets = np.array([[[p["x"], p["y"]] for p in labels[i]] for i in ids], np.float32).reshape(-1, 15, 2)
    else:
        targets = np.array([labels[i] for i in ids], np.int64)
    human = Face.objects.filter(pk__in=ids, **{f"human_{task}": True}).count()
    return TrainingSet(
        task=task,
        face_ids=np.array(ids, np.int64),
        images=images,
        targets=targets,
        is_val=np.array([faces[i].split == Face.Split.VAL for i in ids], bool),
        human_labels=human,
    )


def queue_candidates(*, task: str, user, exclude: list[int] | None = None) -> QuerySet[Face]:
    """Faces in queue order, less those another labeler holds a live lease on: no human label first, then the most
    uncertain, then the oldest."""
    held = Lease.objects.filter(face=OuterRef("pk"), task=task, expires_at__gt=timezone.now()).exclude(holder=user)
    qs = Face.objects.exclude(pk__in=exclude or []).exclude(Exists(held))
    return qs.order_by(f"human_{task}", F(f"{task}_uncertainty").desc(nulls_last=True), "id")


def queue_remaining(*, task: str) -> int:
    return Face.objects.filter(**{f"human_{task}": False}).count()
