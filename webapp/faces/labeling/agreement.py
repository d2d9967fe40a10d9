"""How much labelers agree: the figures a team needs before it trusts one click as training data.

Per face, each labeler counts once, with their newest human annotation of the task (skips left out). Faces that two or
more labelers annotated give:

- keypoints: the mean distance between two labelers' points, in pixels of the 96x96 face, over every pair of labelers
  and every point;
- emotion: Fleiss' kappa (the generalisation to a varying number of raters per face: per-face agreement averaged,
  chance from the pooled class shares) and the share of faces where every labeler chose the same class.

Per labeler: how many faces they annotated, their median seconds between two saves (gaps over 10 minutes are breaks,
not work), and their agreement with the others on shared faces (emotion: how often they chose the class most of the
others chose; keypoints: mean distance to the others' mean points).
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from itertools import combinations

import numpy as np

from webapp.faces.labeling.models import Annotation
from webapp.faces.labeling.selectors import LABEL_FIELD

BREAK_SECONDS = 600


def _newest_per_labeler(task: str) -> dict[int, dict[str, object]]:
    """face id -> {username: label} from each labeler's newest human annotation of ``task``."""
    field = LABEL_FIELD[task]
    rows = (
        Annotation.objects.filter(origin=Annotation.Origin.HUMAN, skip=False, author__isnull=False)
        .filter(**{f"{field}__isnull": False})
        .order_by("face_id", "-created_at", "-id")
        .values_list("face_id", "author__username", field)
    )
    faces: dict[int, dict[str, object]] = defaultdict(dict)
    for face_id, username, value in rows.iterator(chunk_size=5000):
        faces[face_id].setdefault(username, value)
    return faces


def _points(value) -> np.ndarray:
    return np.array([[p["x"], p["y"]] for p in value], np.float64)


def fleiss_kappa(ratings: list[list]) -> float | None:
    """Fleiss' kappa of items rated by two or more raters each (the number may vary by item); a rating is any class
    key. A class nobody chose adds nothing to chance agreement, so only the classes chosen are counted."""
    items = [r for r in ratings if len(r) >= 2]
    if not items:
        return None
    index = {c: i for i, c in enumerate(sorted({v for r in items for v in r}, key=str))}
    counts = np.array([np.bincount([index[v] for v in r], minlength=len(index)) for r in items], np.float64)
    n = counts.sum(axis=1)
    per_item = ((counts * (counts - 1)).sum(axis=1)) / (n * (n - 1))
    shares = counts.sum(axis=0) / n.sum()
    chance = float((shares**2).sum())
    if chance >= 1.0:
        return 1.0 if per_item.mean() == 1.0 else 0.0
    return float((per_item.mean() - chance) / (1 - chance))


def agreement() -> dict:
    keypoints = {f: v for f, v in _newest_per_labeler("keypoints").items() if len(v) >= 2}
    emotion = {f: v for f, v in _newest_per_labeler("emotion").items() if len(v) >= 2}

    pair_distances = [
        float(np.linalg.norm(_points(a) - _points(b), axis=1).mean())
        for labels in keypoints.values()
        for a, b in combinations(labels.values(), 2)
    ]
    kappa = fleiss_kappa([list(labels.values()) for labels in emotion.values()])
    unanimous = sum(len(set(labels.values())) == 1 for labels in emotion.values())

    per_labeler: dict[str, dict] = defaultdict(lambda: {"with_others": [], "distance_to_others": []})
    for labels in emotion.values():
        for name, value in labels.items():
            others = Counter(v for n, v in labels.items() if n != name).most_common()
            top = others[0][1]
            majority = {v for v, c in others if c == top}
            per_labeler[name]["with_others"].append(1.0 if value in majority else 0.0)
    for labels in keypoints.values():
        for name, value in labels.items():
            others = np.mean([_points(v) for n, v in labels.items() if n != name], axis=0)
            per_labeler[name]["distance_to_others"].append(
                float(np.linalg.norm(_points(value) - others, axis=1).mean())
            )

    saves = (
        Annotation.objects.filter(origin=Annotation.Origin.HUMAN, author__isnull=False)
        .order_by("author__username", "created_at")
        .values_list("author__username", "created_at", "face_id")
    )
    times: dict[str, list] = defaultdict(list)
    faces_by: dict[str, set] = defaultdict(set)
    for name, created, face_id in saves.iterator(chunk_size=5000):
        times[name].append(created)
        faces_by[name].add(face_id)
    labelers = []
    for name in sorted(faces_by):
        gaps = [(b - a).total_seconds() for a, b in zip(times[name], times[name][1:], strict=False)]
        work = [g for g in gaps if 0 < g <= BREAK_SECONDS]
        mine = per_labeler.get(name, {"with_others": [], "distance_to_others": []})
        labelers.append(
            {
                "labeler": name,
                "faces": len(faces_by[name]),
                "annotations": len(times[name]),
                "median_seconds_per_save": round(statistics.median(work), 1) if work else None,
                "emotion_agreement_with_others": _mean(mine["with_others"]),
                "emotion_shared_faces": len(mine["with_others"]),
                "keypoints_distance_to_others_px": _mean(mine["distance_to_others"]),
                "keypoints_shared_faces": len(mine["distance_to_others"]),
            }
        )
    return {
        "keypoints": {"faces": len(keypoints), "mean_distance_px": _mean(pair_distances), "pairs": len(pair_distances)},
        "emotion": {
            "faces": len(emotion),
            "fleiss_kappa": None if kappa is None else round(kappa, 4),
            "unanimous_share": round(unanimous / len(emotion), 4) if emotion else None,
        },
        "labelers": labelers,
    }


def _mean(values: list[float]) -> float | None:
    return round(float(np.mean(values)), 4) if values else None
