"""What people and models say about a face: annotations (append-only), predictions, and the queue's leases."""

from django.conf import settings
from django.db import models

from webapp.common.models import AppendOnly, Task
from webapp.faces.store.models import Face


class Annotation(AppendOnly):
    class Origin(models.TextChoices):
        IMPORT = "import"
        HUMAN = "human"
        MODEL = "model"
        REVIEW = "review"  # a reviewer's decision between labelers: it is the face's label

    face = models.ForeignKey(Face, on_delete=models.CASCADE, related_name="annotations")
    points = models.JSONField(null=True, blank=True, help_text='15 x {"x", "y", "visible"} in the 96x96 frame')
    # the class's key in the label set (webapp.labels): a label keeps its meaning whatever the set becomes
    emotion = models.CharField(max_length=32, null=True, blank=True)
    skip = models.BooleanField(default=False, help_text="the face is unusable (not a face, too blurred)")
    origin = models.CharField(max_length=10, choices=Origin.choices)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    prediction = models.ForeignKey(
        "faces.Prediction", null=True, blank=True, on_delete=models.SET_NULL, help_text="what was corrected"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["face", "origin", "-created_at"], name="annotation_current")]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.origin} annotation {self.pk} of face {self.face_id}"


class Prediction(AppendOnly):
    face = models.ForeignKey(Face, on_delete=models.CASCADE, related_name="predictions")
    version = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="predictions")
    task = models.CharField(max_length=10, choices=Task.choices)
    points = models.JSONField(null=True, blank=True)
    probabilities = models.JSONField(null=True, blank=True)
    uncertainty = models.FloatField()
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.task} prediction {self.pk} of face {self.face_id}"


class Lease(models.Model):
    """A labeler's hold on a face for one task: the queue serves a leased face to nobody else until it expires.

    Renewed while the label page shows the face, released on save, skip or close; an expired lease is simply ignored
    (and taken over by the next labeler the queue serves the face to), so a closed laptop never locks a face.
    """

    face = models.ForeignKey(Face, on_delete=models.CASCADE, related_name="leases")
    task = models.CharField(max_length=10, choices=Task.choices)
    holder = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="leases")
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["face", "task"], name="one_lease_per_face_and_task")]

    def __str__(self) -> str:
        return f"{self.task} lease of face {self.face_id} by {self.holder_id} until {self.expires_at:%H:%M:%S}"


class FaceSummary(models.Model):
    """What the Faces page filters and sorts on, one row per face: derived from the face's annotations and
    predictions by labeling's services in the transaction that changes them (``summaries_refresh``), like the queue's
    columns on Face. A face without a row has nothing said about it yet: no label, no guess."""

    face = models.OneToOneField(Face, primary_key=True, on_delete=models.CASCADE, related_name="summary")
    emotion = models.CharField(max_length=32, null=True, blank=True, help_text="the current label's class key")
    emotion_source = models.CharField(max_length=10, blank=True, help_text="review, human, labelers or import")
    keypoints = models.BooleanField(default=False, help_text="the face has current keypoints")
    keypoints_source = models.CharField(max_length=10, blank=True)
    disputed = models.BooleanField(default=False, help_text="its history holds two different emotion labels")
    guess = models.CharField(max_length=32, null=True, blank=True, help_text="the newest emotion prediction's class")
    guess_probability = models.FloatField(null=True, blank=True)
    # the label check (ml.label_check): how unlikely models that never saw the face's person find its label
    emotion_suspicion = models.FloatField(null=True, blank=True, help_text="1 - p(its label) out of fold")
    emotion_suggestion = models.CharField(max_length=32, blank=True, help_text="the class those models found likeliest")
    emotion_checked = models.CharField(max_length=32, blank=True, help_text="the label the check scored")
    checked_run = models.PositiveIntegerField(null=True, blank=True, help_text="the training run that checked it")
    keypoints_suspicion = models.FloatField(
        null=True, blank=True, help_text="the label check of points: their mean distance (px) from the fold models'"
    )
    # db_default: rows written by a process that predates the column (a rolling upgrade) are not excluded
    excluded = models.BooleanField(
        default=False, db_default=False, help_text="left out of training and exports (the newest Exclusion)"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["emotion"], name="summary_emotion"),
            models.Index(fields=["guess"], name="summary_guess"),
            models.Index(fields=["emotion_suspicion"], name="summary_suspicion"),
        ]

    def __str__(self) -> str:
        return f"summary of face {self.face_id}"


class Exclusion(AppendOnly):
    """Staff leaving a face out of training and exports, or bringing it back: the newest row of a face decides, the
    rows are its history (soft and reversible: the face and its labels stay)."""

    face = models.ForeignKey(Face, on_delete=models.CASCADE, related_name="exclusions")
    excluded = models.BooleanField()
    note = models.CharField(max_length=200, blank=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{'exclusion' if self.excluded else 'inclusion'} {self.pk} of face {self.face_id}"
