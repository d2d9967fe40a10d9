"""Writes of the label set: every change is a new row (who, when, the whole set), validated first."""

from __future__ import annotations

from collections.abc import Sequence

from django.core.exceptions import ValidationError

from ml.schema import PRESETS, label_key
from webapp.common.models import Task
from webapp.labels.models import LabelSetChange
from webapp.labels.selectors import label_set

MAX_CLASSES = 50


def _keys(names: Sequence[str]) -> list[str]:
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise ValidationError({"labels": ["a list of class names"]})
    keys = []
    for name in names:
        if not isinstance(name, str):
            raise ValidationError({"labels": [f"class names are text, got {name!r}"]})
        try:
            keys.append(label_key(name))
        except ValueError as exc:
            raise ValidationError({"labels": [str(exc)]}) from None
    return keys


def labelset_change(*, task: str = "emotion", labels: Sequence[str], author=None, note: str = "") -> LabelSetChange:
    """Make ``labels`` (class names, in display order) the task's set. A class left out is retired, not deleted: its
    stored labels keep their key, and naming it again brings it back."""
    if task != Task.EMOTION:
        raise ValidationError({"task": [f"only the emotion task has a label set, not {task!r}"]})
    # the size first, before any work that grows with it (a million names once held a worker for hours)
    if not isinstance(labels, str) and isinstance(labels, Sequence) and not 2 <= len(labels) <= MAX_CLASSES:
        raise ValidationError({"labels": [f"a label set has 2 to {MAX_CLASSES} classes, got {len(labels)}"]})
    keys = _keys(labels)
    seen: set[str] = set()
    twice = sorted({k for k in keys if k in seen or seen.add(k)})
    if twice:
        raise ValidationError({"labels": [f"{', '.join(twice)} named twice"]})
    if tuple(keys) == label_set(task=task).labels:
        return label_set(task=task).change or LabelSetChange(task=task, labels=keys)  # nothing changes: no row
    return LabelSetChange.objects.create(task=task, labels=keys, author=author, note=note[:200])


def labelset_add(*, task: str = "emotion", names: Sequence[str], author=None) -> LabelSetChange:
    current = list(label_set(task=task).labels)
    added = [k for k in _keys(names) if k not in current]
    return labelset_change(task=task, labels=current + added, author=author, note=f"added {', '.join(added)}")


def labelset_retire(*, task: str = "emotion", names: Sequence[str], author=None) -> LabelSetChange:
    current = list(label_set(task=task).labels)
    keys = _keys(names)
    unknown = [k for k in keys if k not in current]
    if unknown:
        raise ValidationError({"labels": [f"{', '.join(unknown)} not in the set ({', '.join(current)})"]})
    kept = [k for k in current if k not in keys]
    return labelset_change(task=task, labels=kept, author=author, note=f"retired {', '.join(keys)}")


def labelset_preset(*, task: str = "emotion", preset: str, author=None) -> LabelSetChange:
    if preset not in PRESETS:
        raise ValidationError({"preset": [f"unknown preset {preset!r}; one of {', '.join(PRESETS)}"]})
    return labelset_change(task=task, labels=PRESETS[preset], author=author, note=f"preset {preset}")
