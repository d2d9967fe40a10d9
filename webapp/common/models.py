"""Shared model pieces: a model version knows the task names without knowing faces (DESIGN.md, "The house")."""

from django.db import models

from ml.schema import TASKS

Task = models.TextChoices("Task", [(task.upper(), task) for task in TASKS])


class AppendOnly(models.Model):
    """Rows that are written once: a correction is a new row, history is never rewritten."""

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise RuntimeError(f"{type(self).__name__} rows are append-only; write a new row instead")
        super().save(*args, **kwargs)
