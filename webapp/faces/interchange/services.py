"""Imports of the Kaggle and FER2013 files: faces into the store, their labels as import annotations. A bad row is
reported with its line and stores nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction

from ml.datasets import checksum
from webapp.common.models import Task
from webapp.faces.labeling.models import Annotation
from webapp.faces.labeling.services import summaries_refresh
from webapp.faces.store.models import Face
from webapp.faces.store.services import frame_write

BATCH = 1000


@dataclass
class ImportReport:
    path: str
    format: str
    rows_read: int = 0
    created: int = 0
    duplicates: int = 0  # faces already present (same pixels), in the database or earlier in the file
    labels: int = 0
    excluded: int = 0
    relabeled: int | None = None  # with relabel: faces already present whose imported label this file corrected
    errors: list = field(default_factory=list)
    classes_added: list[str] = field(default_factory=list)  # with add_classes: the file's classes the set gained

    def summary(self) -> str:
        corrected = "" if self.relabeled is None else f", {self.relabeled} imported labels corrected"
        return (
            f"{self.path} ({self.format}): {self.created} faces created, {self.labels} labels, "
            f"{self.duplicates} already present{corrected}, {len(self.errors)} bad "
            f"{'tasks' if self.format == 'label-studio' else 'rows'} skipped, "
            f"{self.excluded} left out"
            + (f"; classes added to the label set: {', '.join(self.classes_added)}" if self.classes_added else "")
        )


def faces_import(
    *,
    path: str | Path,
    fmt: str,
    author=None,
    on_read: Callable[[int], None] | None = None,
    on_write: Callable[[int], None] | None = None,
    relabel: bool = False,
    add_classes: bool = False,
) -> ImportReport:
    """Import a Kaggle keypoints / FER2013 / icml CSV. Idempotent: faces are keyed by their pixel checksum.

    Emotions are read into the label set (webapp.labels): FER's fear and neutral are kept when the set has them, a
    class name in the emotion column (contempt) is taken as it is, and a class the set lacks is a bad row naming the
    set, or, with ``add_classes``, is added to the set.

    ``relabel``: faces already present get this file's label where their imported label differs (a new import
    annotation, so the history keeps the old one; human labels still come first), and faces this file leaves out (FER
    fear / neutral when the set lacks them) lose their imported label. This repairs an earlier import read in the
    wrong format.
    """
    from ml.datasets import block_split, group_held_out, read_faces
    from webapp.labels.selectors import label_set
    from webapp.labels.services import labelset_add

    labels = label_set(task=Task.EMOTION).labels
    # raises DatasetError for a file it cannot use at all
    data = read_faces(path, fmt, progress=on_read, labels=labels, add_classes=add_classes)
    report = ImportReport(path=str(path), format=fmt, rows_read=len(data) + len(data.errors) + data.excluded)
    if data.label_names and data.label_names != labels:
        report.classes_added = [k for k in data.label_names if k not in labels]
        labelset_add(task=Task.EMOTION, names=report.classes_added, author=author)
    report.errors, report.excluded = data.errors, data.excluded
    groups = data.groups if data.groups is not None else np.full(len(data), "", object)
    if any(groups):  # the file names each face's person: whole persons are held out
        held_out = group_held_out(groups, settings.TRAINING_VAL_PERCENT / 100) & (groups != "")
    elif data.task == "keypoints":
        held_out = block_split(len(data), settings.TRAINING_VAL_PERCENT / 100)  # frames of one video stay together
    else:
        held_out = np.isin(data.usage, ["PublicTest", "PrivateTest"])
    digests = [checksum(frame) for frame in data.images]
    existing: set[str] = set()
    for start in range(0, len(digests), BATCH):
        chunk = digests[start : start + BATCH]
        existing.update(Face.objects.filter(checksum__in=chunk).values_list("checksum", flat=True))
    if relabel:
        report.relabeled = _relabel(data, digests, author)
    source_name = Path(path).name[:200]
    done = 0
    for start in range(0, len(data), BATCH):
        faces, labels = [], []
        for i in range(start, min(start + BATCH, len(data))):
            digest = digests[i]
            if digest in existing:
                report.duplicates += 1
                continue
            existing.add(digest)
            faces.append(
                Face(
                    checksum=digest,
                    image=frame_write(data.images[i], digest),
                    source=Face.Source.IMPORT,
                    source_name=source_name,
                    source_line=int(data.lines[i]),
                    usage=str(data.usage[i]) if data.usage is not None else "",
                    split=Face.Split.VAL if held_out[i] else Face.Split.TRAIN,
                    group=str(groups[i]),
                    created_by=author,
                )
            )
            labels.append(i)
        with transaction.atomic():
            created = Face.objects.bulk_create(faces)
            Annotation.objects.bulk_create(
                Annotation(
                    face=face,
                    origin=Annotation.Origin.IMPORT,
                    author=author,
                    points=points_json(data.points[i]) if data.points is not None else None,
                    emotion=data.label_names[data.labels[i]] if data.labels is not None else None,
                )
                for face, i in zip(created, labels, strict=True)
            )
            summaries_refresh(face_ids=[face.pk for face in created])
        report.created += len(created)
        report.labels += len(created)
        done = min(start + BATCH, len(data))
        if on_write:
            on_write(done)
    return report


def _relabel(data, digests: list[str], author) -> int:
    """Append an import annotation wherever this file's label differs from a present face's newest imported one."""
    from webapp.faces.labeling.selectors import LABEL_FIELD, labels_q

    field_name = LABEL_FIELD[data.task]
    wanted: dict[str, object] = {}
    for i, digest in enumerate(digests):
        value = points_json(data.points[i]) if data.points is not None else data.label_names[data.labels[i]]
        wanted.setdefault(digest, value)
    for digest in data.excluded_checksums:
        wanted.setdefault(digest, None)  # a face of a class the product leaves out: no imported label
    faces: dict[str, int] = {}
    keys = list(wanted)
    for start in range(0, len(keys), BATCH):
        faces.update(Face.objects.filter(checksum__in=keys[start : start + BATCH]).values_list("checksum", "id"))
    current: dict[int, tuple[object, bool]] = {}
    ids = list(faces.values())
    for start in range(0, len(ids), BATCH):
        rows = (
            Annotation.objects.filter(face_id__in=ids[start : start + BATCH], origin=Annotation.Origin.IMPORT)
            .filter(labels_q(data.task))
            .order_by("face_id", "-created_at", "-id")
            .values_list("face_id", field_name, "skip")
        )
        for face_id, value, skip in rows:
            current.setdefault(face_id, (value, skip))
    fixes = []
    for digest, face_id in faces.items():
        value, have = wanted[digest], current.get(face_id)
        if value is None:
            if have is not None and not have[1]:
                fixes.append(Annotation(face_id=face_id, origin=Annotation.Origin.IMPORT, author=author, skip=True))
        elif have is None or have[1] or have[0] != value:
            fixes.append(
                Annotation(face_id=face_id, origin=Annotation.Origin.IMPORT, author=author, **{field_name: value})
            )
    with transaction.atomic():
        Annotation.objects.bulk_create(fixes, batch_size=BATCH)
        summaries_refresh(face_ids=[fix.face_id for fix in fixes])
    return len(fixes)


def points_json(points: np.ndarray) -> list[dict]:
    return [{"x": round(float(x), 4), "y": round(float(y), 4), "visible": True} for x, y in points]
