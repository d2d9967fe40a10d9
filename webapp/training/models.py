from django.conf import settings
from django.db import models
from django.db.models import Q

from webapp.common.models import Task


class TrainingRun(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    class Job(models.TextChoices):
        RETRAIN = "retrain"  # a new version, promoted or not
        LABEL_CHECK = "label_check"  # scores the users' labels by fold models (faces' suspicion); no version

    ACTIVE_STATUSES = (Status.PENDING, Status.RUNNING)

    kind = models.CharField(max_length=10, choices=Task.choices)
    job = models.CharField(max_length=12, choices=Job.choices, default=Job.RETRAIN)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    from_scratch = models.BooleanField(default=False)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    trigger = models.CharField(max_length=20, default="api", help_text="api, admin, command, auto")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="last sign of life from the worker")
    attempts = models.PositiveSmallIntegerField(default=0)
    epoch = models.PositiveIntegerField(default=0)
    epochs = models.PositiveIntegerField(default=0)
    loss = models.FloatField(null=True, blank=True)
    val_loss = models.FloatField(null=True, blank=True)
    eta_seconds = models.FloatField(null=True, blank=True)
    history = models.JSONField(default=dict, blank=True)
    log = models.TextField(blank=True, help_text="the last lines of the run's log")
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    metrics = models.JSONField(default=dict, blank=True)
    version = models.ForeignKey(
        "registry.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    promoted = models.BooleanField(default=False)
    decision = models.CharField(max_length=600, blank=True, help_text="why the version was or was not promoted")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # Single flight: at most one pending-or-running run per kind (a retrain or a label check: both train on
            # the workers' training queue), enforced by the database.
            models.UniqueConstraint(
                fields=["kind"], condition=Q(status__in=["pending", "running"]), name="one_active_run_per_kind"
            )
        ]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.kind}, {self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES


RUN_STATUSES = TrainingRun.Status.choices  # the OpenAPI enum TrainingRunStatusEnum (settings: ENUM_NAME_OVERRIDES)
