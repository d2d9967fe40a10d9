"""Writes of the faces domain. Every write is validated first: a 400 names the field and nothing is written."""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from ml.datasets import checksum
from ml.schema import IMAGE_SIZE, NUM_KEYPOINTS, label_key
from webapp.faces import images
from webapp.faces.models import Annotation, Face, Lease, Prediction, Task
from webapp.faces.signals import labels_saved

BATCH = 1000


# --- validation ------------------------------------------------------------------------------------------------


def _number(value, where: str, field: str = "points") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError({field: [f"{where} must be a number, got {value!r}"]})
    if not math.isfinite(value):
        raise ValidationError({field: [f"{where} must be a finite number, got {value!r}"]})
    return float(value)


def validate_points(points, *, inside: bool = True) -> list[dict]:
    """15 points, each {"x", "y", "visible"} (or [x, y, visible]); x, y in [0, 96) unless ``inside`` is False."""
    if not isinstance(points, list | tuple) or len(points) != NUM_KEYPOINTS:
        got = len(points) if isinstance(points, list | tuple) else type(points).__name__
        raise ValidationError({"points": [f"expected exactly {NUM_KEYPOINTS} points, got {got}"]})
    clean = []
    for i, point in enumerate(points):
        if isinstance(point, list | tuple) and len(point) in (2, 3):
            point = {"x": point[0], "y": point[1], "visible": point[2] if len(point) == 3 else True}
        if not isinstance(point, dict) or not {"x", "y"} <= point.keys():
            raise ValidationError({"points": [f"points[{i}] must be an object with x, y and visible"]})
        x, y = _number(point["x"], f"points[{i}].x"), _number(point["y"], f"points[{i}].y")
        visible = point.get("visible", True)
        if not isinstance(visible, bool):
            raise ValidationError({"points": [f"points[{i}].visible must be true or false, got {visible!r}"]})
        if inside:
            for axis, v in (("x", x), ("y", y)):
                if not 0 <= v < IMAGE_SIZE:
                    raise ValidationError(
                        {"points": [f"points[{i}].{axis} = {v:g} is outside the image [0, {IMAGE_SIZE})"]}
                    )
        clean.append({"x": x, "y": y, "visible": visible})
    return clean


def validate_emotion(emotion) -> str:
    """A class of the label set (webapp.labels), by name: its key, as stored."""
    from webapp.labels.selectors import label_set

    labels = label_set(task=Task.EMOTION).labels
    try:
        key = label_key(emotion) if isinstance(emotion, str) else None
    except ValueError:
        key = None
    if key not in labels:
        raise ValidationError({"emotion": [f"must be a class of the label set ({', '.join(labels)}), got {emotion!r}"]})
    return key


# --- annotations and predictions -------------------------------------------------------------------------------


class FaceHeld(Exception):
    """Another labeler holds a live lease on the face for a task this save touches."""

    def __init__(self, lease: Lease):
        holder = lease.holder.get_username()
        super().__init__(
            f"Face {lease.face_id} is being labeled by {holder} ({lease.task}) until "
            f"{lease.expires_at:%H:%M:%S} UTC; your label was not saved. Take the next face from the queue."
        )
        self.lease = lease


def annotation_submit(
    *,
    face: Face,
    author,
    points=None,
    emotion=None,
    skip: bool = False,
    prediction: Prediction | None = None,
    origin: str = Annotation.Origin.HUMAN,
) -> Annotation:
    """Add a correction. Never updates an earlier row: the face's current label is its newest human row.

    A labeler's save on a face another labeler holds (a live lease for a task the save touches) raises FaceHeld:
    the queue promised that labeler the face, and two people labeling one face blind to each other is work lost.
    A reviewer's decision is not refused (it settles a face, whoever holds it).
    """
    if points is None and emotion is None and not skip:
        raise ValidationError({"points": ["send points, an emotion, or skip=true"]})
    if skip and (points is not None or emotion is not None):
        raise ValidationError({"skip": ["skip=true marks the face unusable: send it without points or an emotion"]})
    # the input first (a 400 says what is wrong with it), then whether the face is this labeler's to save (409)
    clean_points = validate_points(points) if points is not None else None
    clean_emotion = validate_emotion(emotion) if emotion is not None else None
    if prediction is not None and prediction.face_id != face.pk:
        raise ValidationError({"prediction": [f"prediction {prediction.pk} is not of face {face.pk}"]})
    if origin == Annotation.Origin.HUMAN and getattr(author, "pk", None):
        tasks = [
            t
            for t, touched in ((Task.KEYPOINTS, points is not None), (Task.EMOTION, emotion is not None))
            if touched or skip
        ]
        held = (
            Lease.objects.filter(face=face, task__in=tasks, expires_at__gt=timezone.now())
            .exclude(holder=author)
            .select_related("holder")
            .first()
        )
        if held is not None:
            raise FaceHeld(held)
    with transaction.atomic():
        annotation = Annotation.objects.create(
            face=face,
            author=author,
            points=clean_points,
            emotion=clean_emotion,
            skip=skip,
            origin=origin,
            prediction=prediction,
        )
        if origin in (Annotation.Origin.HUMAN, Annotation.Origin.REVIEW):
            changed = {
                "keypoints": clean_points is not None or skip,
                "emotion": clean_emotion is not None or skip,
            }
            Face.objects.filter(pk=face.pk).update(
                **{field: value for task, done in changed.items() if done for field, value in _progress(face, task)}
            )
            if author is not None and getattr(author, "pk", None):
                lease_release(face=face, user=author)  # saved: the face goes back to nobody
            tasks = [task for task, done in changed.items() if done]
            transaction.on_commit(lambda: labels_saved.send(sender=Annotation, tasks=tasks))
    return annotation


def queue_take(*, task: str, user, exclude: list[int] | None = None) -> tuple[Face | None, Lease | None]:
    """Serve ``user`` the next face nobody else holds, and lease it to them for LABEL_LEASE_SECONDS.

    A face whose lease expired, or that ``user`` holds already (a reload), can be taken. Two labelers asking at once
    never get the same face (``_take_lease``): the one that loses moves on to the next face.

    This runs on every queue request, so its statements are SQL written out (as ``selectors.queue_head`` explains).
    """
    from webapp.faces.selectors import queue_head

    skip = list(exclude or [])
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:  # a read first (on SQLite every DELETE takes the write lock)
        cursor.execute(
            'SELECT "face_id", "expires_at" > %s FROM "faces_lease" WHERE "task" = %s AND "holder_id" = %s',
            [now, task, user.pk],
        )
        leases = cursor.fetchall()
    held = next((face_id for face_id, live in leases if live and face_id not in skip), None)
    if held is not None:  # a reload: the face this labeler already holds
        face = Face.objects.get(pk=held)
        return face, lease_renew(face=face, task=task, user=user)
    if leases:
        Lease.objects.filter(task=task, holder=user).delete()  # one face per labeler and task: a skip frees it
    for _ in range(20):
        # PostgreSQL: one transaction for the read and the lease, the head read FOR UPDATE SKIP LOCKED, so labelers
        # asking at once each lock and lease a different face instead of racing for one. SQLite has one writer: its
        # write lock is taken only by the lease's own statement, as short as it can be.
        locking = connection.features.has_select_for_update_skip_locked
        with transaction.atomic() if locking else contextlib.nullcontext():
            face = queue_head(task=task, user=user, exclude=skip)
            if face is None:
                return None, None
            lease = _take_lease(face, task, user)
        if lease is None:  # someone else holds it: the next face
            skip.append(face.pk)
            continue
        # Someone may have saved this face (and let go of its lease) between our read and our lease: then it is no
        # longer where we found it in the queue. Read it again now that we hold it.
        with connection.cursor() as cursor:
            cursor.execute(f'SELECT "human_{Task(task)}" FROM "faces_face" WHERE "id" = %s', [face.pk])
            fresh = cursor.fetchone()
        if fresh is None or bool(fresh[0]) != getattr(face, f"human_{task}"):
            lease_release(face=face, user=user, task=task)
            skip.append(face.pk)
            continue
        return face, lease
    return None, None  # the queue is being emptied faster than we can read it: the client asks again


def _take_lease(face: Face, task: str, user) -> Lease | None:
    """Lease ``face`` to ``user`` for LABEL_LEASE_SECONDS, unless another labeler holds a live lease on it (None).

    One statement: an INSERT under the (face, task) unique constraint that, on conflict, takes the existing row over
    only if it expired or is this labeler's own; of two racing requests one wins, on SQLite and PostgreSQL alike.
    """
    now = timezone.now()
    until = now + timedelta(seconds=settings.LABEL_LEASE_SECONDS)
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(
            'INSERT INTO "faces_lease" ("face_id", "task", "holder_id", "expires_at") VALUES (%s, %s, %s, %s)'
            ' ON CONFLICT ("face_id", "task") DO UPDATE'
            ' SET "holder_id" = excluded."holder_id", "expires_at" = excluded."expires_at"'
            ' WHERE "faces_lease"."holder_id" = excluded."holder_id" OR "faces_lease"."expires_at" <= %s'
            ' RETURNING "id"',
            [face.pk, task, user.pk, adapt(until), adapt(now)],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    lease = Lease.from_db(
        connection.alias, ["id", "face_id", "task", "holder_id", "expires_at"], [row[0], face.pk, task, user.pk, until]
    )
    lease.face = face
    return lease


def lease_renew(*, face: Face, task: str, user) -> Lease:
    """Keep holding a face (the label page calls this while it shows it). A lost lease is a 409: the face may be with
    someone else now."""
    lease = _take_lease(face, task, user)
    if lease is None:
        raise LeaseLost(f"face {face.pk} is being labeled by someone else now")
    return lease


def lease_release(*, face: Face, user, task: str | None = None) -> int:
    """Let go of a face (save, skip, close): only the holder's own leases."""
    sql, params = 'DELETE FROM "faces_lease" WHERE "face_id" = %s AND "holder_id" = %s', [face.pk, user.pk]
    if task:
        sql, params = f'{sql} AND "task" = %s', [*params, task]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


class LeaseLost(Exception):
    pass


def _progress(face: Face, task: str) -> list[tuple[str, bool]]:
    """Where a face stands for ``task`` after a human or review annotation: (human_<task>, review_<task>) values.

    Labeled once a review decided, or once LABELS_PER_FACE distinct labelers labeled it; waiting for a reviewer when
    those labelers disagree (LABELS_PER_FACE >= 2)."""
    from webapp.faces.selectors import labels_by_labeler, labels_q

    settled = [(f"human_{task}", True), (f"review_{task}", False)]
    needed = settings.LABELS_PER_FACE
    if needed <= 1:  # one labeler never disagrees: this annotation labels the face (no query on this hot path)
        return settled
    if Annotation.objects.filter(face=face, origin=Annotation.Origin.REVIEW).filter(labels_q(task)).exists():
        return settled
    by_labeler = labels_by_labeler(face=face, task=task)
    done = len(by_labeler) >= needed
    return [(f"human_{task}", done), (f"review_{task}", done and disagree(task, by_labeler))]


def disagree(task: str, by_labeler: dict[str, object]) -> bool:
    """Labelers disagree: different emotions (or a skip beside a label), or points further apart than
    REVIEW_POINT_PX on average."""
    values = list(by_labeler.values())
    if any(v is None for v in values):
        return not all(v is None for v in values)
    if task == Task.EMOTION:
        return len(set(values)) > 1
    arrays = [np.array([[p["x"], p["y"]] for p in v]) for v in values]
    return any(
        np.linalg.norm(a - b, axis=1).mean() > settings.REVIEW_POINT_PX
        for i, a in enumerate(arrays)
        for b in arrays[i + 1 :]
    )


def prediction_record(
    *, face: Face, version, author, points=None, probabilities=None, uncertainty: float
) -> Prediction:
    """Store what the active model said in the browser; its uncertainty orders the labeling queue."""
    task = version.kind
    if task == Task.KEYPOINTS:
        if points is None:
            raise ValidationError({"points": [f"a {task} prediction needs points"]})
        points = validate_points(points, inside=False)  # a model may place a point off the frame
        probabilities = None
    else:
        from webapp.registry.selectors import version_labels

        classes = len(version_labels(version))
        if not isinstance(probabilities, list) or len(probabilities) != classes:
            raise ValidationError({"probabilities": [f"expected {classes} probabilities (emotion v{version.number})"]})
        values = [_number(p, "probabilities", field="probabilities") for p in probabilities]
        if any(p < 0 for p in values) or abs(sum(values) - 1) > 1e-3:
            raise ValidationError({"probabilities": ["probabilities must be >= 0 and sum to 1"]})
        probabilities, points = values, None
    uncertainty = _number(uncertainty, "uncertainty", field="uncertainty")
    with transaction.atomic():
        prediction = Prediction.objects.create(
            face=face,
            version=version,
            task=task,
            points=points,
            probabilities=probabilities,
            uncertainty=uncertainty,
            author=author,
        )
        Face.objects.filter(pk=face.pk).update(**{f"{task}_uncertainty": float(uncertainty)})
    return prediction


# --- faces -----------------------------------------------------------------------------------------------------


def _write_once(path: Path, data: bytes) -> None:
    """Content-addressed, so an existing file already holds these bytes; a new one appears whole (a private temporary
    file renamed into place), also when several requests write it at once."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_frame(frame: np.ndarray, digest: str) -> str:
    relative = f"faces/{digest[:2]}/{digest}.png"
    _write_once(Path(settings.MEDIA_ROOT) / relative, images.png_bytes(frame))
    return relative


def split_for(*, digest: str, group: str = "") -> str:
    """The fixed validation split of faces that bring none, never re-drawn: a stable hash of the face's group (every
    face of a person or photo batch on one side), or of the face itself when it has no group."""
    from ml.datasets import group_held_out

    held_out = group_held_out(np.array([group or digest]), settings.TRAINING_VAL_PERCENT / 100)[0]
    return Face.Split.VAL if held_out else Face.Split.TRAIN


def face_upload(*, data: bytes, filename: str, author, group: str = "") -> list[tuple[Face, bool]]:
    """Store an uploaded photo as one face per face in it. Returns [(face, created)]; the same pixels are one face.

    ``group``: the person or session the photo shows (a batch of photos of one sitting); without one, the faces of a
    photo form its group, so they stay on one side of every split.

    A 96x96 picture is taken as a face already cut in the product's framing (what the browser sends); any other
    picture goes through detection and alignment (faces.detection), and one with no face raises UnprocessableImage.
    """
    image, fmt = images.decode_upload(data)
    if image.size == (IMAGE_SIZE, IMAGE_SIZE):
        frames = [images.to_frame(image)]
    else:
        from webapp.faces.detection import face_crops

        frames = face_crops(image)
    original = None
    file_digest = hashlib.sha256(data).hexdigest()
    group = group.strip() or f"photo:{file_digest[:16]}"
    results = []
    for frame in frames:
        digest = checksum(frame)
        existing = Face.objects.filter(checksum=digest).first()
        if existing:
            results.append((existing, False))
            continue
        if original is None:
            original = f"originals/{file_digest[:2]}/{file_digest}.{images.EXTENSIONS[fmt]}"
            _write_once(Path(settings.MEDIA_ROOT) / original, data)
        try:
            with transaction.atomic():
                face = Face.objects.create(
                    checksum=digest,
                    image=_write_frame(frame, digest),
                    original=original,
                    source=Face.Source.UPLOAD,
                    source_name=Path(filename or "upload").name[:200],
                    split=split_for(digest=digest, group=group),
                    group=group,
                    created_by=author,
                )
        except IntegrityError:  # the same picture sent at the same moment by someone else: one face, theirs
            results.append((Face.objects.get(checksum=digest), False))
            continue
        results.append((face, True))
    return results


def faces_upload_crops(*, crops: list[bytes], filename: str, author, group: str = "") -> list[tuple[Face, bool]]:
    """The faces of one picture as the browser cut them (96x96 each, the stored framing), stored in one request under
    the picture's name; without a ``group`` they share the picture's. A crop of another size is refused before any is
    stored."""
    for i, data in enumerate(crops):
        image, _ = images.decode_upload(data)
        if image.size != (IMAGE_SIZE, IMAGE_SIZE):
            raise ValidationError({"crops": [f"crop {i + 1} is {image.width}x{image.height}; crops are 96x96 faces"]})
    group = group.strip() or f"photo:{hashlib.sha256(b''.join(crops)).hexdigest()[:16]}"
    return [
        result for data in crops for result in face_upload(data=data, filename=filename, author=author, group=group)
    ]


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
                    image=_write_frame(data.images[i], digest),
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
                    points=_points_json(data.points[i]) if data.points is not None else None,
                    emotion=data.label_names[data.labels[i]] if data.labels is not None else None,
                )
                for face, i in zip(created, labels, strict=True)
            )
        report.created += len(created)
        report.labels += len(created)
        done = min(start + BATCH, len(data))
        if on_write:
            on_write(done)
    return report


def _relabel(data, digests: list[str], author) -> int:
    """Append an import annotation wherever this file's label differs from a present face's newest imported one."""
    from webapp.faces.selectors import LABEL_FIELD, labels_q

    field_name = LABEL_FIELD[data.task]
    wanted: dict[str, object] = {}
    for i, digest in enumerate(digests):
        value = _points_json(data.points[i]) if data.points is not None else data.label_names[data.labels[i]]
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
    return len(fixes)


def _points_json(points: np.ndarray) -> list[dict]:
    return [{"x": round(float(x), 4), "y": round(float(y), 4), "visible": True} for x, y in points]
