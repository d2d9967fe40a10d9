"""Writes of labeling: annotations, predictions, the queue and its leases. Every write is validated first: a 400 names
the field and nothing is written."""

from __future__ import annotations

import contextlib
import math
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from ml.schema import IMAGE_SIZE, NUM_KEYPOINTS, label_key
from webapp.common.models import Task
from webapp.faces.labeling.models import Annotation, Exclusion, FaceSummary, Lease, Prediction
from webapp.faces.labeling.signals import labels_saved
from webapp.faces.store.models import Face

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
    created_at: datetime | None = None,
) -> Annotation:
    """Add a correction. Never updates an earlier row: the face's current label is its newest human row.

    ``created_at``: when the label was given elsewhere (an import keeps the time its file says); never later than now,
    so a file's future date cannot keep its label the newest over every later correction.

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
        if created_at is not None:  # auto_now_add sets the field on create: the given time is written after it
            annotation.created_at = min(created_at, annotation.created_at)
            Annotation.objects.filter(pk=annotation.pk).update(created_at=annotation.created_at)
        if origin in (Annotation.Origin.HUMAN, Annotation.Origin.REVIEW):
            changed = {
                "keypoints": clean_points is not None or skip,
                "emotion": clean_emotion is not None or skip,
            }
            Face.objects.filter(pk=face.pk).update(
                queue_first=False,  # labeled: staff's "first in the queue" is done
                **{field: value for task, done in changed.items() if done for field, value in _progress(face, task)},
            )
            if author is not None and getattr(author, "pk", None):
                lease_release(face=face, user=author)  # saved: the face goes back to nobody
            tasks = [task for task, done in changed.items() if done]
            transaction.on_commit(lambda: labels_saved.send(sender=Annotation, tasks=tasks))
        summaries_refresh(face_ids=[face.pk])
        if clean_points is not None or skip:  # the points a check scored are no longer the face's
            FaceSummary.objects.filter(face_id=face.pk).update(keypoints_suspicion=None)
    return annotation


def queue_take(*, task: str, user, exclude: list[int] | None = None) -> tuple[Face | None, Lease | None]:
    """Serve ``user`` the next face nobody else holds, and lease it to them for LABEL_LEASE_SECONDS.

    A face whose lease expired, or that ``user`` holds already (a reload), can be taken. Two labelers asking at once
    never get the same face (``_take_lease``): the one that loses moves on to the next face.

    This runs on every queue request, so its statements are SQL written out (as ``selectors.queue_head`` explains).
    """
    from webapp.faces.labeling.selectors import queue_head

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


def face_take(*, face: Face, task: str, user) -> Lease:
    """Lease one chosen face to ``user`` outside the queue's order ("Label this face" on a face's page). The labeler's
    other lease of the task is let go (one face per labeler and task); a face another labeler holds raises FaceHeld."""
    lease = _take_lease(face, task, user)
    if lease is None:
        raise FaceHeld(Lease.objects.select_related("holder").get(face=face, task=task))
    Lease.objects.filter(task=task, holder=user).exclude(face=face).delete()
    return lease


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
    from webapp.faces.labeling.selectors import labels_by_labeler, labels_q

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


UNCERTAINTY_MAX = {Task.EMOTION: 1.0, Task.KEYPOINTS: round(math.hypot(IMAGE_SIZE, IMAGE_SIZE), 2)}


def prediction_record(
    *, face: Face, version, author, points=None, probabilities=None, uncertainty: float, task: str | None = None
) -> Prediction:
    """Store what a model said in the browser; its uncertainty orders the labeling queue.

    ``task``, when sent, must be the version's kind. The uncertainty is bounded as the browser measures it: an emotion
    prediction's is 1 - its top probability, in [0, 1]; a keypoints one's the mean distance (px of the 96 frame)
    between the points and those of the mirrored face, at most the frame's diagonal. Who may record one for which
    version and face is the API's rule (``PredictionRecordApi``)."""
    if task is not None and task != version.kind:
        raise ValidationError({"task": [f"version {version.pk} predicts {version.kind}, not {task}"]})
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
    if not 0 <= uncertainty <= UNCERTAINTY_MAX[task]:
        bounds = f"[0, {UNCERTAINTY_MAX[task]:g}]"
        raise ValidationError({"uncertainty": [f"a {task} prediction's uncertainty is in {bounds}, got {uncertainty}"]})
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
        if task == Task.EMOTION:
            summaries_refresh(face_ids=[face.pk])
    return prediction


def guesses_record(*, chunk: int = 256) -> int:
    """The served emotion model's guess of every face that has none from it yet (an import's faces, which no browser
    has shown): read on the server through the same alignment as a photo's faces (``store.detection.predict_faces``,
    LiteRT), stored as predictions of that version with their uncertainty (1 - the top probability), so the Faces
    page's guess filters and "label differs from guess" work after an import. Idempotent; returns how many it wrote.
    Nothing when no pair of models can run (the reason is the server's: ``InferenceUnavailable``)."""
    from webapp.faces.store.detection import predict_faces
    from webapp.faces.store.images import read_frame
    from webapp.registry.selectors import active_version

    version = active_version(kind=Task.EMOTION)
    if version is None:
        return 0
    written = 0
    while True:
        faces = list(Face.objects.exclude(predictions__version=version).filter(image__gt="").order_by("id")[:chunk])
        if not faces:
            return written
        media = Path(settings.MEDIA_ROOT)
        results, _ = predict_faces([read_frame(media / face.image) for face in faces])
        if any(result is None for result in results):
            return written  # the models cannot run here now: nothing half-written
        rows = [
            Prediction(
                face=face,
                version=version,
                task=Task.EMOTION,
                probabilities=[float(p) for p in probabilities],
                uncertainty=1.0 - float(np.max(probabilities)),
            )
            for face, (_, probabilities) in zip(faces, results, strict=True)
        ]
        with transaction.atomic():
            Prediction.objects.bulk_create(rows)
            for row in rows:
                Face.objects.filter(pk=row.face_id, emotion_uncertainty__isnull=True).update(
                    emotion_uncertainty=row.uncertainty
                )
            summaries_refresh(face_ids=[face.pk for face in faces])
        written += len(rows)


# --- the Faces page's summary ----------------------------------------------------------------------------------


def summaries_refresh(*, face_ids=None, chunk: int = 2000) -> int:
    """Recompute the FaceSummary rows of ``face_ids`` (None: every face with an annotation or a prediction) from their
    annotations and newest emotion prediction. Idempotent; returns how many rows it wrote."""
    from webapp.faces.labeling.selectors import labels_with_sources
    from webapp.registry.models import ModelVersion
    from webapp.registry.selectors import version_labels

    if face_ids is None:
        ids = sorted(
            set(Annotation.objects.values_list("face_id", flat=True).distinct())
            | set(Prediction.objects.values_list("face_id", flat=True).distinct())
        )
    else:
        ids = sorted({int(i) for i in face_ids})
    classes: dict[int, list[str]] = {}
    written = 0
    for start in range(0, len(ids), chunk):
        part = ids[start : start + chunk]
        emotions = labels_with_sources(task=Task.EMOTION, face_ids=part)
        keypoints = labels_with_sources(task=Task.KEYPOINTS, face_ids=part)
        guesses: dict[int, tuple[str, float]] = {}
        rows = (
            Prediction.objects.filter(face_id__in=part, task=Task.EMOTION)
            .order_by("face_id", "-created_at", "-id")
            .values_list("face_id", "version_id", "probabilities")
        )
        for face_id, version_id, probabilities in rows:
            if face_id in guesses or not probabilities:
                continue
            if version_id not in classes:
                classes[version_id] = version_labels(ModelVersion.objects.get(pk=version_id))
            top = int(np.argmax(probabilities))
            guesses[face_id] = (classes[version_id][top], float(probabilities[top]))
        summaries = []
        for face_id in part:
            emotion, emotion_source, disputed = emotions.get(face_id, (None, None, False))
            points, points_source, _ = keypoints.get(face_id, (None, None, False))
            guess, probability = guesses.get(face_id, (None, None))
            summaries.append(
                FaceSummary(
                    face_id=face_id,
                    emotion=emotion,
                    emotion_source=emotion_source or "",
                    keypoints=points is not None,
                    keypoints_source=points_source or "",
                    disputed=disputed,
                    guess=guess,
                    guess_probability=probability,
                    updated_at=timezone.now(),
                )
            )
        fields = [f.name for f in FaceSummary._meta.concrete_fields if f.name not in KEPT_BY_CHECK]
        FaceSummary.objects.bulk_create(summaries, update_conflicts=True, unique_fields=["face"], update_fields=fields)
        # a check's verdict is about the label it scored: once the label is another (or none), it no longer applies
        FaceSummary.objects.filter(face_id__in=part, emotion_suspicion__isnull=False).filter(
            Q(emotion__isnull=True) | ~Q(emotion=F("emotion_checked"))
        ).update(emotion_suspicion=None, emotion_suggestion="", emotion_checked="", checked_run=None)
        written += len(summaries)
    return written


KEPT_BY_CHECK = (
    "face",
    "emotion_suspicion",
    "emotion_suggestion",
    "emotion_checked",
    "checked_run",
    "keypoints_suspicion",
    "excluded",
)


def suspicions_record(*, face_ids, suspicion, suggested, checked, run_id: int, task: str = Task.EMOTION) -> int:
    """Store a label check's verdict on each face: ``suspicion`` (1 - p(label) by models that never saw its person),
    the class they ``suggested``, the label ``checked``. Faces the check did not score keep nothing of an older one.
    Keypoints: ``suspicion`` is the points' mean distance in px from the fold models' (no suggestion)."""

    ids = [int(i) for i in face_ids]
    have = set(FaceSummary.objects.filter(face_id__in=ids).values_list("face_id", flat=True))
    summaries_refresh(face_ids=[i for i in ids if i not in have])
    if task == Task.KEYPOINTS:
        FaceSummary.objects.exclude(face_id__in=ids).update(keypoints_suspicion=None)
        rows = [
            FaceSummary(face_id=i, keypoints_suspicion=round(float(s), 4)) for i, s in zip(ids, suspicion, strict=True)
        ]
        FaceSummary.objects.bulk_update(rows, ["keypoints_suspicion"], batch_size=1000)
        return len(rows)
    FaceSummary.objects.exclude(face_id__in=ids).filter(emotion_suspicion__isnull=False).update(
        emotion_suspicion=None, emotion_suggestion="", emotion_checked="", checked_run=None
    )
    rows = [
        FaceSummary(
            face_id=face_id,
            emotion_suspicion=round(float(s), 6),
            emotion_suggestion=str(hint),
            emotion_checked=str(label),
            checked_run=run_id,
        )
        for face_id, s, hint, label in zip(ids, suspicion, suggested, checked, strict=True)
    ]
    FaceSummary.objects.bulk_update(
        rows, ["emotion_suspicion", "emotion_suggestion", "emotion_checked", "checked_run"], batch_size=1000
    )
    return len(rows)


# --- bulk actions on a selection of faces (the Faces page) ---------------------------------------------------------

BULK_ACTIONS = ("exclude", "include", "review", "queue_first")


def faces_bulk(*, action: str, face_ids, author, task: str | None = None, note: str = "") -> int:
    """One action on many faces, in one transaction; returns how many faces it changed.

    exclude / include: leave the faces out of training and exports, or bring them back (an Exclusion row per face
    whose state changes: the history says who and when); review: the faces wait for a reviewer for ``task`` (both
    tasks without one), as when labelers disagree; queue_first: the faces come first in both labeling queues among
    the faces that need a label, until a person labels them."""

    if action not in BULK_ACTIONS:
        raise ValidationError({"action": [f"must be one of {', '.join(BULK_ACTIONS)}, got {action!r}"]})
    if task is not None and task not in Task.values:
        raise ValidationError({"task": [f"must be one of {', '.join(Task.values)}, got {task!r}"]})
    ids = sorted({int(i) for i in face_ids})
    chunks = [ids[i : i + 5000] for i in range(0, len(ids), 5000)]  # within any database's parameter limit
    changed = 0
    with transaction.atomic():
        for part in chunks:
            if action == "queue_first":
                changed += Face.objects.filter(pk__in=part, queue_first=False).update(queue_first=True)
                continue
            if action == "review":
                tasks = [task] if task else list(Task.values)
                flags = Q()
                for t in tasks:
                    flags |= Q(**{f"review_{t}": False})
                changed += Face.objects.filter(pk__in=part).filter(flags).update(**{f"review_{t}": True for t in tasks})
                continue
            excluded = action == "exclude"
            have = set(FaceSummary.objects.filter(face_id__in=part).values_list("face_id", flat=True))
            summaries_refresh(face_ids=[i for i in part if i not in have])
            rows = FaceSummary.objects.filter(face_id__in=part).exclude(excluded=excluded)
            change = list(rows.values_list("face_id", flat=True))
            Exclusion.objects.bulk_create(
                [Exclusion(face_id=i, excluded=excluded, author=author, note=note[:200]) for i in change]
            )
            FaceSummary.objects.filter(face_id__in=change).update(excluded=excluded)
            changed += len(change)
    return changed
