from django.conf import settings
from django.db import models

from webapp.common.models import AppendOnly, Task


class LabelSetChange(AppendOnly):
    """One state of a task's label set; the newest row is the set (no row: the default preset)."""

    task = models.CharField(max_length=10, choices=Task.choices)
    labels = models.JSONField(help_text="the class keys in display order")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["task", "-id"], name="labelset_newest")]
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.task} label set {self.pk}: {', '.join(self.labels)}"
