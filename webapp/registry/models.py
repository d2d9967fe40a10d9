from django.conf import settings
from django.db import models

from webapp.common.models import AppendOnly, Task


class ModelVersion(AppendOnly):
    """One trained, exported model. Immutable: its files under MODELS_ROOT/<kind>/v<N>/ are never rewritten."""

    kind = models.CharField(max_length=10, choices=Task.choices)
    number = models.PositiveIntegerField()
    artifact_dir = models.CharField(max_length=300, help_text="relative to MODELS_ROOT")
    metrics = models.JSONField(default=dict, help_text="on the fixed validation set it was trained against")
    trained_on = models.JSONField(default=dict, help_text="counts of faces and labels it saw")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "number"], name="one_number_per_kind")]
        ordering = ["kind", "-number"]

    def __str__(self) -> str:
        return f"{self.kind} v{self.number}"


class ActiveVersion(models.Model):
    """The pointer the manifest serves: exactly one row per kind (the primary key), flipped in a transaction."""

    kind = models.CharField(max_length=10, choices=Task.choices, primary_key=True)
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.kind} -> v{self.version.number}"


class Promotion(AppendOnly):
    """Every move of the pointer, who made it and why; rollback walks this log back."""

    class Action(models.TextChoices):
        PROMOTE = "promote"
        ROLLBACK = "rollback"
        AUTO = "auto"
        BASELINE = "baseline"

    kind = models.CharField(max_length=10, choices=Task.choices)
    from_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    to_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=10, choices=Action.choices)
    reason = models.CharField(max_length=600, blank=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
