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
from webapp.faces.labeling.tasks import guess_later
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
    # Label Studio: each annotator the file names -> the account its labels are credited to, and whether that account
    # existed (found by its e-mail) or was made for the import (it cannot sign in)
    annotators: dict[str, tuple[str, bool]] = field(default_factory=dict)
    guesses: str = ""  # what happens to the served model's guesses of the new faces (labeling.tasks.guess_later)

    def summary(self) -> str:
        corrected = "" if self.relabeled is None else f", {self.relabeled} imported labels corrected"
        return (
            f"{self.path} ({self.format}): {self.created} faces created, {self.labels} labels, "
            f"{self.duplicates} already present{corrected}, {len(self.errors)} bad "
            f"{'tasks' if self.format == 'label-studio' else 'rows'} skipped, "
            f"{self.excluded} left out"
            + (f"; classes added to the label set: {', '.join(self.classes_added)}" if self.classes_added else "")
            + self._annotators()
            + (f"; {self.guesses}" if self.guesses else "")
        )

    def _annotators(self) -> str:
        found = [f"{name} -> {user}" for name, (user, existed) in self.annotators.items() if existed]
        made = [user for user, existed in self.annotators.values() if not existed]
        return (f"; labels credited by e-mail to existing accounts: {', '.join(found)}" if found else "") + (
            f"; accounts made for annotators no user has the e-mail of (they cannot sign in): {', '.join(made)}"
            if made
            else ""
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
    from ml.datasets import block_split, count_lines, group_held_out, iter_faces, sniff_format
    from webapp.labels.selectors import label_set
    from webapp.labels.services import labelset_add

    fmt = fmt or sniff_format(path)
    labels = list(label_set(task=Task.EMOTION).labels)
    report = ImportReport(path=str(path), format=fmt)
    source_name = Path(path).name[:200]
    fraction = settings.TRAINING_VAL_PERCENT / 100
    blocks = None  # keypoint files: contiguous blocks of the file's rows are held out (frames of one video together)
    existing: set[str] = set()  # the file's faces seen so far, stored before or now
    relabeled: set[str] = set()
    done = 0
    # One chunk of rows at a time (raises DatasetError for a file it cannot use at all): memory stays flat however
    # long the file is; every chunk is stored in its own transactions, so what was read is kept.
    for data in iter_faces(path, fmt, on_read, size=BATCH, labels=labels, add_classes=add_classes):
        report.rows_read += len(data) + len(data.errors) + data.excluded
        report.errors += data.errors
        report.excluded += data.excluded
        if data.label_names and list(data.label_names) != labels:
            added = [k for k in data.label_names if k not in labels]
            labelset_add(task=Task.EMOTION, names=added, author=author)
            report.classes_added += added
            labels = list(data.label_names)
        if not len(data) and not data.excluded_checksums:
            continue
        groups = data.groups if data.groups is not None else np.full(len(data), "", object)
        if any(groups):  # the file names each face's person: whole persons are held out
            held_out = group_held_out(groups, fraction) & (groups != "")
        elif data.task == "keypoints":
            if blocks is None:
                blocks = block_split(max(1, count_lines(path) - 1), fraction)
            held_out = blocks[np.clip(data.lines - 2, 0, len(blocks) - 1)]
        else:
            held_out = np.isin(data.usage, ["PublicTest", "PrivateTest"])
        digests = [checksum(frame) for frame in data.images]
        existing.update(Face.objects.filter(checksum__in=digests).values_list("checksum", flat=True))
        if relabel:
            report.relabeled = (report.relabeled or 0) + _relabel(data, digests, author, relabeled)
        faces, rows = [], []
        for i, digest in enumerate(digests):
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
            rows.append(i)
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
                for face, i in zip(created, rows, strict=True)
            )
            summaries_refresh(face_ids=[face.pk for face in created])
        report.created += len(created)
        report.labels += len(created)
        done += len(data)
        if on_write:
            on_write(done)
    if relabel and report.relabeled is None:
        report.relabeled = 0
    if report.created:  # faces no browser has shown: the served model's guess of each, made by a worker
        report.guesses = guess_later()
    return report


def _relabel(data, digests: list[str], author, seen: set[str]) -> int:
    """Append an import annotation wherever this chunk's label differs from a present face's newest imported one;
    ``seen``: the digests earlier chunks decided (a face's first row in the file decides)."""
    from webapp.faces.labeling.selectors import LABEL_FIELD, labels_q

    field_name = LABEL_FIELD[data.task]
    wanted: dict[str, object] = {}
    for i, digest in enumerate(digests):
        value = points_json(data.points[i]) if data.points is not None else data.label_names[data.labels[i]]
        if digest not in seen:
            wanted.setdefault(digest, value)
    for digest in data.excluded_checksums:
        if digest not in seen:
            wanted.setdefault(digest, None)  # a face of a class the product leaves out: no imported label
    seen.update(wanted)
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
