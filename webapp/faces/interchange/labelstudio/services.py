"""Label Studio: import its JSON export, export ours in its format, and predict for its ML backend calls.

Import keeps the house rules of every import: faces are keyed by their pixels (a task imported twice adds nothing),
annotations are new rows with their author and time, and a task that cannot be used is reported by its id and
stores nothing (each task is one transaction).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from ml.datasets import checksum
from ml.schema import IMAGE_SIZE
from webapp.common.models import Task
from webapp.faces.interchange.labelstudio import protocol as ls
from webapp.faces.interchange.services import ImportReport, points_json
from webapp.faces.labeling.models import Annotation
from webapp.faces.labeling.selectors import current_labels, excluded_ids
from webapp.faces.labeling.services import annotation_submit, validate_points
from webapp.faces.labeling.tasks import guess_later
from webapp.faces.store.images import read_frame
from webapp.faces.store.models import Face
from webapp.faces.store.services import frame_write, split_for

FORMAT = "label-studio"


IMPORTED_USER = "label-studio:"  # the name of an account made for an annotator no user has the e-mail of


def _user(author: str, fallback, emails: dict, report: ImportReport):
    """The account an annotation's author maps to. Only an e-mail maps to an existing user, the one with that e-mail
    (a name in the file never does: it could be anyone's); every other author gets an inactive account of its own,
    ``label-studio:<author>`` (it keeps the label's provenance and cannot sign in); the importer when the export names
    nobody. A Label Studio user id is first turned into its e-mail by asking LABEL_STUDIO_URL (once per id, in
    ``emails``). Each mapping is said in the report."""
    if not author:
        return fallback
    if author.startswith(ls.LS_USER):
        user_id = int(author.removeprefix(ls.LS_USER))
        if user_id not in emails:
            emails[user_id] = ls.annotator_email(user_id)
        author = emails[user_id] or author
    User = get_user_model()
    if "@" in author:
        found = User.objects.filter(email__iexact=author).exclude(username__startswith=IMPORTED_USER)
        if (user := found.order_by("-is_active", "pk").first()) is not None:
            report.annotators[author] = (user.get_username(), True)
            return user
    # our own export names such an account by its username: it maps back to itself
    username = (author if author.startswith(IMPORTED_USER) else f"{IMPORTED_USER}{author}")[:150]
    user = User.objects.filter(username=username).first()
    if user is None:
        try:
            with transaction.atomic():
                user = User(username=username, email=author if "@" in author else "", is_active=False)
                user.set_unusable_password()
                user.save()
        except IntegrityError:  # made by a concurrent import
            user = User.objects.get(username=username)
    report.annotators[author] = (username, False)
    return user


def _same_label_exists(face: Face, author, points, emotion) -> bool:
    """The author's newest annotation of this face already says exactly this (a re-import, a round trip)."""
    newest = Annotation.objects.filter(face=face, author=author, skip=False).order_by("-created_at", "-id")
    for field, value in (("points", points), ("emotion", emotion)):
        if value is None:
            continue
        row = newest.filter(**{f"{field}__isnull": False}).first()
        if row is None or getattr(row, field) != value:
            return False
    return True


def _store_face(frame: np.ndarray, *, name: str, group: str, author) -> tuple[Face, bool]:
    digest = checksum(frame)
    existing = Face.objects.filter(checksum=digest).first()
    if existing:
        return existing, False
    face = Face.objects.create(
        checksum=digest,
        image=frame_write(frame, digest),
        source=Face.Source.IMPORT,
        source_name=name[:200],
        split=split_for(digest=digest, group=group),
        group=group,
        created_by=author,
    )
    return face, True


def faces_import_label_studio(
    *, payload, author, name: str = "label-studio.json", deadline: ls.Deadline | None = None
) -> ImportReport:
    """A Label Studio JSON export (parsed) -> faces and annotations. Every bad task is reported, none half-stored.
    ``deadline``: one for all the tasks' image fetches (a web request's); None: each fetch has LABEL_STUDIO_TIMEOUT."""
    from webapp.labels.selectors import label_set

    tasks, errors = ls.parse_tasks(payload, label_set(task=Task.EMOTION).labels)
    report = ImportReport(path=name, format=FORMAT, rows_read=len(tasks) + len(errors))
    report.errors = list(errors)
    emails: dict[int, str | None] = {}
    for task in tasks:
        try:
            image_bytes = ls.task_image_bytes(task.image, deadline)
            image = ls.decode(image_bytes)
            faces = ls.faces_of(image, task.annotations)
            for face in faces:
                for label in face.labels:
                    if label.points is not None:
                        validate_points(points_json(label.points))
        except (ls.TaskError, ValidationError) as exc:
            message = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
            report.errors.append(f"task {task.id}: {message}")
            continue
        group = f"label-studio:{hashlib.sha256(image_bytes).hexdigest()[:16]}"
        try:
            with transaction.atomic():
                for face in faces:
                    row, created = _store_face(face.crop, name=name, group=group, author=author)
                    report.created += created
                    report.duplicates += not created
                    for label in face.labels:
                        points = points_json(label.points) if label.points is not None else None
                        if points is None and label.emotion is None:
                            continue
                        who = _user(label.author, author, emails, report)
                        if _same_label_exists(row, who, points, label.emotion):
                            continue
                        # the time it was labeled in Label Studio (never later than now: see annotation_submit)
                        annotation_submit(
                            face=row, author=who, points=points, emotion=label.emotion, created_at=label.created_at
                        )
                        report.labels += 1
        except Exception as exc:  # FaceHeld, a write error: this task stores nothing
            report.errors.append(f"task {task.id}: {exc}")
    if report.created:  # faces no browser has shown: the served model's guess of each, made by a worker
        report.guesses = guess_later()
    return report


# --- export ---------------------------------------------------------------------------------------------------------


def _newest_human(face_ids: list[int]) -> dict[tuple[int, str], Annotation]:
    """(face, task) -> the newest human or review annotation that gives that task's label (its author and time)."""
    newest: dict[tuple[int, str], Annotation] = {}
    rows = (
        Annotation.objects.filter(face_id__in=face_ids, skip=False)
        .filter(origin__in=[Annotation.Origin.HUMAN, Annotation.Origin.REVIEW])
        .select_related("author")
        .order_by("-created_at", "-id")
    )
    for row in rows:
        if row.points is not None:
            newest.setdefault((row.face_id, Task.KEYPOINTS), row)
        if row.emotion is not None:
            newest.setdefault((row.face_id, Task.EMOTION), row)
    return newest


def _completed_by(annotation: Annotation | None) -> dict | None:
    if annotation is None or annotation.author is None:
        return None
    user = annotation.author
    return {"id": user.pk, "email": user.email or user.get_username()}


def label_studio_tasks(face_ids: list[int] | None = None) -> list[dict]:
    """Our labeled faces as Label Studio tasks: the image embedded (96x96 PNG), the current label as an annotation
    (with the author and time of its newest human part), the served models' output as a prediction."""
    from webapp.faces.store.detection import predict_faces, served_emotion_labels

    keypoints, emotions = current_labels(task=Task.KEYPOINTS), current_labels(task=Task.EMOTION)
    ids = sorted(face_ids if face_ids is not None else (set(keypoints) | set(emotions)) - excluded_ids())
    faces = Face.objects.in_bulk(ids)
    ids = [i for i in ids if i in faces]
    frames = [read_frame(Path(settings.MEDIA_ROOT) / faces[i].image) for i in ids]
    predictions, model_version = predict_faces(frames)
    names = served_emotion_labels() if any(p is not None for p in predictions) else []
    human = _newest_human(ids)
    tasks = []
    for face_id, frame, predicted in zip(ids, frames, predictions, strict=True):
        result = []
        if face_id in keypoints:
            points = np.array([[p["x"], p["y"]] for p in keypoints[face_id]])
            result += ls.keypoint_results(points, IMAGE_SIZE, IMAGE_SIZE)
        if face_id in emotions:
            result.append(ls.emotion_result(emotions[face_id], len(result)))
        newest = [human.get((face_id, t)) for t in (Task.KEYPOINTS, Task.EMOTION)]
        newest = max((a for a in newest if a), key=lambda a: (a.created_at, a.pk), default=None)
        task = {
            "data": {ls.IMAGE: ls.data_uri(ls.png(frame)), "face_id": face_id, "source": faces[face_id].source_name},
            "annotations": [],
            "predictions": [],
        }
        if result:
            annotation = {"result": result, "was_cancelled": False, "ground_truth": False}
            if newest is not None:
                annotation["created_at"] = newest.created_at.isoformat()
                annotation["completed_by"] = _completed_by(newest)
            task["annotations"].append(annotation)
        if predicted is not None:
            points, probabilities = predicted
            best = int(np.argmax(probabilities))
            regions = ls.keypoint_results(points, IMAGE_SIZE, IMAGE_SIZE)
            regions.append(ls.emotion_result(names[best], len(regions)))
            task["predictions"].append(
                {"model_version": model_version, "score": round(float(probabilities[best]), 4), "result": regions}
            )
        tasks.append(task)
    return tasks


def write_label_studio(path: Path, progress=None, *, only: set[int] | None = None) -> int:
    tasks = label_studio_tasks(None if only is None else sorted(only - excluded_ids()))
    path.write_text(json.dumps(tasks))
    if progress:
        progress(len(tasks))
    return len(tasks)


# --- the ML backend's predictions ---------------------------------------------------------------------------------


def label_studio_predict(tasks: list, label_config: str | None = None) -> tuple[list[dict], str]:
    """One prediction per Label Studio task, from the active models through the server's whole-photo path: per face
    found a box (where the project's ``label_config`` has our face tag) with its 15 keypoint regions nested under it,
    and the emotion as the task's choice when the photo holds one face (each region of a face names its face's
    emotion in its meta text). All the tasks' images are fetched within one
    deadline (LABEL_STUDIO_REQUEST_SECONDS): a task whose image has not come by then is answered with its error."""
    from webapp.faces.store.detection import (
        InferenceUnavailable,
        active_model_version,
        analyze_photo,
        served_emotion_labels,
    )

    model_version = active_model_version()
    boxes = ls.has_face_tag(label_config)
    names = None
    results = []
    deadline = ls.Deadline(settings.LABEL_STUDIO_REQUEST_SECONDS)
    for task in tasks:
        data = task.get("data") if isinstance(task, dict) else None
        try:
            if not isinstance(data, dict):
                raise ls.TaskError("a task must be an object with data")
            image = ls.decode(ls.task_image_bytes(data.get(ls.IMAGE), deadline))
            if image.size == (IMAGE_SIZE, IMAGE_SIZE):
                faces, scale = _crop_as_face(image), 1.0
            else:
                faces, scale = analyze_photo(image, emotion=True)
        except ls.TaskError as exc:
            results.append({"result": [], "score": 0.0, "model_version": model_version, "error": str(exc)})
            continue
        except InferenceUnavailable:
            raise
        regions, scores = [], []
        if faces and names is None:
            names = served_emotion_labels()
        for k, face in enumerate(faces):
            best = int(np.argmax(face.probabilities))
            scores.append(float(face.probabilities[best]))
            meta = f"face {k + 1}: {names[best]} {face.probabilities[best]:.0%}"
            points, parent = face.points * scale, None
            if boxes:  # the face's box, its points nested under it: one group per face in the regions list
                parent = f"face{k + 1}"
                regions.append(ls.face_result(points, image.width, image.height, region_id=parent, meta=meta))
            regions += ls.keypoint_results(
                points, image.width, image.height, start=len(regions), meta=meta, parent=parent
            )
        if len(faces) == 1:
            regions.append(ls.emotion_result(names[int(np.argmax(faces[0].probabilities))], len(regions)))
        score = round(float(np.mean(scores)), 4) if scores else 0.0
        results.append({"result": regions, "score": score, "model_version": model_version})
    return results, model_version


def _crop_as_face(image) -> list[SimpleNamespace]:
    """A 96x96 picture is a face in our framing: the models read it as the label page's face does."""
    from webapp.faces.store.detection import predict_faces
    from webapp.faces.store.images import to_frame

    (predicted,), _ = predict_faces([to_frame(image)])
    if predicted is None:
        return []
    return [SimpleNamespace(points=predicted[0], probabilities=predicted[1])]
