"""Reads of the faces domain."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from webapp.common.models import Task
from webapp.faces.labeling.models import Annotation
from webapp.faces.store.images import read_frame
from webapp.faces.store.models import Face
from webapp.labels.selectors import label_set

LABEL_FIELD = {Task.KEYPOINTS: "points", Task.EMOTION: "emotion"}


def labels_q(task: str) -> Q:
    """Annotations that say something about ``task``: a value for it, or a skip (the face is unusable for both)."""
    return Q(**{f"{LABEL_FIELD[task]}__isnull": False}) | Q(skip=True)


def annotation_history(*, face: Face, viewer=None) -> QuerySet[Annotation]:
    """The face's annotations, newest first; a blind ``viewer`` (``labels_blind``) is not shown another person's labels
    of a task the face has not settled."""
    rows = face.annotations.select_related("author").order_by("-created_at", "-id")
    if viewer is not None:
        rows = rows.exclude(_by_others(viewer, blind_tasks(viewer, face)))
    return rows


# --- blind labeling: with LABELS_PER_FACE >= 2 no labeler reads another's label until the face is settled ----------


def labels_blind(user) -> bool:
    """``user`` labels blind: several labelers per face, and not staff (staff review, and see everything)."""
    return settings.LABELS_PER_FACE >= 2 and not user.is_staff


def face_settled(face: Face, task: str) -> bool:
    """The face has its label of ``task``: enough labelers agreed, or a reviewer decided (``services._progress``)."""
    return getattr(face, f"human_{task}") and not getattr(face, f"review_{task}")


def _by_others(viewer, tasks) -> Q:
    """Annotations of people other than ``viewer`` (labelers' and reviewers') that say something of ``tasks``."""
    if not tasks:
        return Q(pk__in=[])
    says = Q()
    for task in tasks:
        says |= labels_q(task)
    return Q(origin__in=[Annotation.Origin.HUMAN, Annotation.Origin.REVIEW]) & says & ~Q(author=viewer)


def blind_hidden(viewer) -> Q:
    """The faces a blind ``viewer`` does not see in lists: another person labeled a task the face has not settled
    (the list's labels, filters and counts would tell that label). A condition no face meets for everyone else."""
    if not labels_blind(viewer):
        return Q(pk__in=[])
    hidden = Q(pk__in=[])
    for task in Task.values:
        others = Annotation.objects.filter(_by_others(viewer, [task])).values("face_id")
        hidden |= Q(pk__in=others) & (Q(**{f"human_{task}": False}) | Q(**{f"review_{task}": True}))
    return hidden


def blind_tasks(viewer, face: Face) -> list[str]:
    """The tasks of ``face`` whose labels ``viewer`` may not read: those the face has not settled, where it is hidden
    from that viewer (``blind_hidden``); none for everyone who does not label blind."""
    if not labels_blind(viewer) or not Face.objects.filter(pk=face.pk).filter(blind_hidden(viewer)).exists():
        return []
    return [task for task in Task.values if not face_settled(face, task)]


def labels_by_labeler(*, face: Face, task: str) -> dict[str, object]:
    """Each labeler's newest human annotation of ``task`` on the face: username -> the label (None for a skip)."""
    field_name = LABEL_FIELD[task]
    rows = (
        Annotation.objects.filter(face=face, origin=Annotation.Origin.HUMAN)
        .filter(labels_q(task))
        .order_by("-created_at", "-id")
        .values_list("author__username", "skip", field_name)
    )
    labels: dict[str, object] = {}
    for username, skip, value in rows:
        labels.setdefault(str(username), None if skip else value)
    return labels


def consensus(task: str, values: list) -> object:
    """The label several labelers agree on: the most chosen emotion, or the mean of their points (a point is visible
    if most saw it). ``values`` newest first; None (a skip) wins only as a majority. A tie between emotions (1-1) is
    no consensus: None, and the face has no label until a reviewer decides."""
    if sum(v is None for v in values) * 2 > len(values):
        return None
    values = [v for v in values if v is not None]
    if task == Task.EMOTION:
        counts = {v: values.count(v) for v in values}
        top = max(counts.values())
        winners = [v for v in counts if counts[v] == top]
        return winners[0] if len(winners) == 1 else None
    return [
        {
            "x": round(sum(v[i]["x"] for v in values) / len(values), 4),
            "y": round(sum(v[i]["y"] for v in values) / len(values), 4),
            "visible": sum(bool(v[i].get("visible", True)) for v in values) * 2 >= len(values),
        }
        for i in range(len(values[0]))
    ]


_RANK = {Annotation.Origin.REVIEW: 0, Annotation.Origin.HUMAN: 1, Annotation.Origin.IMPORT: 2}


def _decide(task: str, group: list[tuple]) -> object:
    """One face's current label for ``task`` from its annotations of that task, newest first, as (origin, skip,
    author id, value); None when it has none (or a skip decides)."""
    return _decide_with_source(task, group)[0]


_SOURCE = {0: "review", 2: "import"}


def _decide_with_source(task: str, group: list[tuple]) -> tuple[object, str | None]:
    """``_decide``, and where the label comes from: "review", "human" (one labeler's), "labelers" (the consensus of
    several, with LABELS_PER_FACE >= 2), "import"; None without a label."""
    best = min(_RANK[origin] for origin, *_ in group)
    picked = [(skip, author, value) for origin, skip, author, value in group if _RANK[origin] == best]
    if best == 1 and settings.LABELS_PER_FACE >= 2:  # the labelers' consensus, one (newest) label per labeler
        newest: dict = {}
        for skip, author, value in picked:
            newest.setdefault(author, None if skip else value)
        value = consensus(task, list(newest.values()))
        return value, None if value is None else "labelers"
    skip, _, value = picked[0]
    return (None, None) if skip else (value, _SOURCE.get(best, "human"))


def current_labels(*, task: str, faces: QuerySet[Face] | None = None) -> dict[int, object]:
    """face id -> its current label for ``task``.

    A reviewer's decision first; then the labelers': with LABELS_PER_FACE = 1 the newest human annotation, with more
    their consensus (each labeler's newest); else the newest imported one. A face whose deciding human label is a skip
    has no label (it is left out of training and export).
    """
    qs = Annotation.objects.filter(origin__in=list(_RANK))
    if faces is not None:
        qs = qs.filter(face__in=faces)
    rows = (
        qs.filter(labels_q(task))
        .order_by("face_id", "-created_at", "-id")
        .values_list("face_id", "origin", "skip", "author_id", LABEL_FIELD[task])
    )
    labels: dict[int, object] = {}
    for face_id, group in groupby(rows.iterator(chunk_size=5000), key=itemgetter(0)):
        value = _decide(task, [row[1:] for row in group])
        if value is not None:
            labels[face_id] = value
    return labels


def face_labels(face: Face) -> dict[str, object]:
    """task -> ``face``'s current label (as ``current_labels`` decides it, None if it has none), in one query."""
    return face_labels_and_sources(face)[0]


def face_labels_and_sources(face: Face) -> tuple[dict[str, object], dict[str, str | None]]:
    """``face_labels``, and per task where the label comes from: "review", "human" (one labeler's), "labelers" (the
    consensus of several, with LABELS_PER_FACE >= 2), "import", or None.

    SQL written out: every queue request shows the face's labels (see ``queue_head``)."""
    origins = list(_RANK)
    with connection.cursor() as cursor:
        cursor.execute(
            'SELECT "origin", "skip", "author_id", "points", "emotion" FROM "faces_annotation"'
            f' WHERE "face_id" = %s AND "origin" IN ({", ".join(["%s"] * len(origins))})'
            ' ORDER BY "created_at" DESC, "id" DESC',
            [face.pk, *origins],
        )
        rows = cursor.fetchall()
    points = Annotation._meta.get_field("points")
    rows = [(origin, bool(skip), by, points.from_db_value(p, None, connection), e) for origin, skip, by, p, e in rows]
    labels, sources = {}, {}
    for i, task in enumerate((Task.KEYPOINTS, Task.EMOTION)):
        group = [(origin, skip, by, values[i]) for origin, skip, by, *values in rows if skip or values[i] is not None]
        labels[task], sources[task] = _decide_with_source(task, group) if group else (None, None)
    return labels, sources


def labels_with_sources(*, task: str, face_ids: list[int]) -> dict[int, tuple[object, str, bool]]:
    """face id -> (current label, its source, disputed) for ``task`` over the given faces, in one query; disputed:
    the face's labels (imported, human or review, skips aside) name more than one emotion."""
    rows = (
        Annotation.objects.filter(origin__in=list(_RANK), face_id__in=face_ids)
        .filter(labels_q(task))
        .order_by("face_id", "-created_at", "-id")
        .values_list("face_id", "origin", "skip", "author_id", LABEL_FIELD[task])
    )
    found = {}
    for face_id, group in groupby(rows.iterator(chunk_size=5000), key=itemgetter(0)):
        group = [row[1:] for row in group]
        value, source = _decide_with_source(task, group)
        disputed = task == Task.EMOTION and len({v for _, skip, _, v in group if not skip and v is not None}) > 1
        found[face_id] = (value, source, disputed)
    return found


@dataclass
class TrainingSet:
    task: str
    face_ids: np.ndarray
    images: np.ndarray  # (N, 96, 96) uint8
    targets: np.ndarray  # (N, 15, 2) points or (N,) emotion classes (indices into label_names)
    is_val: np.ndarray  # (N,) bool, the fixed split stored on each face
    human_labels: int  # how many of the labels came from people
    datasets: np.ndarray  # (N,) str: the slice of each face (Face.dataset)
    groups: np.ndarray  # (N,) str: the group of each face (its person, session or photo; the face's own id if none)
    label_names: tuple[str, ...] | None = None  # emotion: the label set the targets index

    def counts(self) -> dict:
        return _counts(len(self.face_ids), self.is_val, self.human_labels, self.datasets, self.groups)


def reference_dataset(datasets: np.ndarray) -> str | None:
    """The reference slice: the dataset holding most of the labeled faces (for the shipped models, the public set they
    were trained on, FER2013 or the Kaggle keypoints). Every other dataset is a user's slice."""
    if settings.TRAINING_REFERENCE_DATASET:
        return settings.TRAINING_REFERENCE_DATASET
    names, counts = np.unique(datasets, return_counts=True)
    return str(names[np.argmax(counts)]) if len(names) else None


def _counts(faces: int, is_val: np.ndarray, human_labels: int, datasets: np.ndarray, groups: np.ndarray) -> dict:
    names, sizes = np.unique(datasets, return_counts=True)
    reference = reference_dataset(datasets)
    in_reference = datasets == reference
    return {
        "faces": faces,
        "train": int((~is_val).sum()),
        "val": int(is_val.sum()),
        "reference_train": int((in_reference & ~is_val).sum()),
        "reference_val": int((in_reference & is_val).sum()),
        "human_labels": human_labels,
        "reference": reference,
        "datasets": {str(name): int(size) for name, size in zip(names, sizes, strict=True)},
        "user_groups": len(set(groups[datasets != reference])),
    }


def _labeled(task: str):
    """The faces with a current label for ``task``: labels, sorted ids, the faces, their fixed split, human count,
    their datasets, their groups and (emotion) the label set, read once. An emotion label of a class the set no longer
    has (retired) trains nothing."""
    labels, names = current_labels(task=task), None
    for face_id in excluded_ids():
        labels.pop(face_id, None)
    if task == Task.EMOTION:
        names = label_set(task=task).labels
        labels = {face: key for face, key in labels.items() if key in names}
    ids = sorted(labels)
    faces = Face.objects.in_bulk(ids)
    is_val = np.array([faces[i].split == Face.Split.VAL for i in ids], bool)
    human = Face.objects.filter(pk__in=ids, **{f"human_{task}": True}).count()
    datasets = np.array([faces[i].dataset for i in ids], dtype=object)
    groups = np.array([f"{faces[i].dataset}/{faces[i].group or f'face {i}'}" for i in ids], dtype=object)
    return labels, ids, faces, is_val, human, datasets, groups, names


def excluded_ids() -> set[int]:
    """The faces staff left out of training and exports (Faces page, bulk "exclude")."""
    from webapp.faces.labeling.models import FaceSummary

    return set(FaceSummary.objects.filter(excluded=True).values_list("face_id", flat=True))


def training_counts(*, task: str) -> dict:
    """``training_set(task=...).counts()`` without reading a single image (what a plan shown on a page needs)."""
    _, ids, _, is_val, human, datasets, groups, _ = _labeled(task)
    return _counts(len(ids), is_val, human, datasets, groups)


def training_set(*, task: str) -> TrainingSet:
    labels, ids, faces, is_val, human, datasets, groups, names = _labeled(task)
    media = settings.MEDIA_ROOT
    images = np.zeros((len(ids), 96, 96), np.uint8)
    for i, face_id in enumerate(ids):
        images[i] = read_frame(f"{media}/{faces[face_id].image}")
    if task == Task.KEYPOINTS:
        targets = np.array([[[p["x"], p["y"]] for p in labels[i]] for i in ids], np.float32).reshape(-1, 15, 2)
    else:  # the set _labeled filtered by: a change of the set meanwhile cannot leave a label without its index
        targets = np.array([names.index(labels[i]) for i in ids], np.int64)
    return TrainingSet(
        task=task,
        face_ids=np.array(ids, np.int64),
        images=images,
        targets=targets,
        is_val=is_val,
        human_labels=human,
        datasets=datasets,
        groups=groups,
        label_names=names,
    )


# the queue's faces (``f``) leave out those staff excluded from training: a label of one would train nothing
_NOT_EXCLUDED = 'NOT EXISTS (SELECT 1 FROM "faces_facesummary" s WHERE s."face_id" = f."id" AND s."excluded")'


def queue_head(*, task: str, user, exclude: list[int] | None = None) -> Face | None:
    """The first face in queue order that no other labeler holds a live lease on and staff did not exclude: faces that
    still need labels first
    (with LABELS_PER_FACE >= 2, only those this labeler has not labeled and no reviewer waits on), then those staff
    put first, then the most uncertain, then the oldest (the ``queue_<task>`` index).

    Written as SQL because it runs on every queue request: building and compiling the same query with the ORM took a
    sixth of a labeling request's CPU, running it 1 % (bench/profile_labeling.py). Valid on SQLite and PostgreSQL.
    """
    task = Task(task)  # a known task: its name becomes part of column names below
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    where = [
        'NOT EXISTS (SELECT 1 FROM "faces_lease" l WHERE l."face_id" = f."id" AND l."task" = %s'
        ' AND l."expires_at" > %s AND l."holder_id" <> %s)'
    ]
    where.append(_NOT_EXCLUDED)
    params: list = [task, now, user.pk]
    if exclude:
        where.append(f'f."id" NOT IN ({", ".join(["%s"] * len(exclude))})')
        params += exclude
    if settings.LABELS_PER_FACE >= 2:
        where.append(f'NOT f."review_{task}"')
        where.append(
            'NOT EXISTS (SELECT 1 FROM "faces_annotation" a WHERE a."face_id" = f."id" AND a."origin" = %s'
            f' AND a."author_id" = %s AND (a."{LABEL_FIELD[task]}" IS NOT NULL OR a."skip"))'
        )
        params += [Annotation.Origin.HUMAN, user.pk]
    sql = (
        f'SELECT f.* FROM "faces_face" f WHERE {" AND ".join(where)}'
        f' ORDER BY f."human_{task}", f."queue_first" DESC, f."{task}_uncertainty" DESC NULLS LAST, f."id" LIMIT 1'
    )
    if connection.features.has_select_for_update_skip_locked:
        # PostgreSQL's work-queue idiom: a face another request is leasing right now is locked by it, and this
        # request takes the next one instead of queueing behind that lock (the caller holds a transaction)
        sql += " FOR UPDATE OF f SKIP LOCKED"
    return next(iter(Face.objects.raw(sql, params)), None)


def review_next(*, task: str, exclude: list[int] | None = None) -> Face | None:
    """The oldest face whose labelers disagree and that no reviewer has decided yet."""
    return Face.objects.filter(**{f"review_{task}": True}).exclude(pk__in=exclude or []).order_by("id").first()


def queue_remaining(*, task: str) -> tuple[int, bool]:
    """How many faces have no human label for ``task`` (excluded ones aside), counted up to QUEUE_COUNT_LIMIT: (count,
    whether there are more than that). Counting stops at the limit, so a request costs the same at 30k faces as at 3M.

    The figure is kept in the cache (shared by every process in production) for QUEUE_COUNT_SECONDS: it is what the
    label page shows, and counting 10,000 rows on every "next face" was most of PostgreSQL's work under the labeling
    load (3 ms of 4 per request at 20k faces, EXPLAIN ANALYZE; bench/load_labeling.py --think 0).
    """
    limit = settings.QUEUE_COUNT_LIMIT
    key = f"queue-remaining:{Task(task)}:{limit}"
    count = cache.get(key) if settings.QUEUE_COUNT_SECONDS > 0 else None
    if count is None:
        with connection.cursor() as cursor:
            cursor.execute(
                f'SELECT COUNT(*) FROM (SELECT 1 FROM "faces_face" f WHERE NOT f."human_{Task(task)}"'
                f" AND {_NOT_EXCLUDED} LIMIT %s) AS head",
                [limit + 1],
            )
            count = cursor.fetchone()[0]
        if settings.QUEUE_COUNT_SECONDS > 0:
            cache.set(key, count, settings.QUEUE_COUNT_SECONDS)
    return min(count, limit), count > limit
