"""Reads of the label set."""

from __future__ import annotations

from dataclasses import dataclass

from ml.schema import DEFAULT_LABELS
from webapp.labels.models import LabelSetChange


@dataclass(frozen=True)
class LabelSet:
    task: str
    labels: tuple[str, ...]  # the classes offered and trained, in display order
    retired: tuple[str, ...]  # classes that were in the set once and are not now (their labels keep their key)
    change: LabelSetChange | None  # the row it comes from; None: the default preset, never changed

    def index(self, key: str) -> int:
        return self.labels.index(key)


def label_set(*, task: str = "emotion") -> LabelSet:
    newest = LabelSetChange.objects.filter(task=task).select_related("author").order_by("-id").first()
    labels = tuple(newest.labels) if newest else DEFAULT_LABELS
    seen: list[str] = list(DEFAULT_LABELS)
    for row in LabelSetChange.objects.filter(task=task).order_by("id").values_list("labels", flat=True):
        seen += [key for key in row if key not in seen]
    return LabelSet(task=task, labels=labels, retired=tuple(k for k in seen if k not in labels), change=newest)


def label_history(*, task: str = "emotion"):
    return LabelSetChange.objects.filter(task=task).select_related("author").order_by("-id")
