"""The face store: a face is its pixels."""

from django.conf import settings
from django.db import models


class Face(models.Model):
    class Source(models.TextChoices):
        IMPORT = "import"
        UPLOAD = "upload"

    class Split(models.TextChoices):
        TRAIN = "train"
        VAL = "val"

    checksum = models.CharField(max_length=64, unique=True, help_text="sha256 of the 96x96 grey pixels")
    image = models.CharField(max_length=200, help_text="96x96 grey PNG, relative to MEDIA_ROOT")
    original = models.CharField(
        max_length=200, blank=True, help_text="the picture the face was found in, relative to MEDIA_ROOT (one per file)"
    )
    box = models.JSONField(
        null=True,
        blank=True,
        help_text="where the crop lies in the original: its four corners [[x, y] x 4] in the picture's pixels, "
        "clockwise from the crop's top left",
    )
    source = models.CharField(max_length=10, choices=Source.choices)
    source_name = models.CharField(max_length=200, blank=True, help_text="imported file name")
    source_line = models.PositiveIntegerField(null=True, blank=True)
    usage = models.CharField(max_length=20, blank=True, help_text="FER Usage column, if any")
    split = models.CharField(max_length=5, choices=Split.choices, help_text="fixed at creation, never re-drawn")
    # Frames of one person (or session, or photo batch) are near-identical: every split keeps a group on one side.
    group = models.CharField(
        max_length=100,
        blank=True,
        db_index=True,
        help_text="the person, session or upload batch; empty: the face is a group of its own",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    # Derived from annotations/predictions by the services, so the labeling queue is one indexed query.
    # True once the face has the labels it needs (LABELS_PER_FACE distinct labelers, or a review): the queue's order
    human_keypoints = models.BooleanField(default=False)
    human_emotion = models.BooleanField(default=False)
    # LABELS_PER_FACE >= 2 and the labelers disagree: the face waits for a reviewer
    review_keypoints = models.BooleanField(default=False, db_index=True)
    review_emotion = models.BooleanField(default=False, db_index=True)
    # staff put the face first in both queues (Faces page, bulk "queue first"); cleared by its next human label
    queue_first = models.BooleanField(default=False, db_default=False)
    keypoints_uncertainty = models.FloatField(null=True, blank=True)
    emotion_uncertainty = models.FloatField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["human_keypoints", "-queue_first", "-keypoints_uncertainty", "id"], name="queue_keypoints"
            ),
            models.Index(fields=["human_emotion", "-queue_first", "-emotion_uncertainty", "id"], name="queue_emotion"),
        ]

    def __str__(self) -> str:
        where = f"{self.source_name}:{self.source_line}" if self.source_line else self.source_name
        return f"face {self.pk} ({self.source} {where})" if where else f"face {self.pk} ({self.source})"

    @property
    def dataset(self) -> str:
        """The slice a face is measured in: the file it was imported from, or all uploaded photos together."""
        return dataset_of(self.source, self.source_name)


UPLOADS_DATASET = "uploads"


def dataset_of(source: str, source_name: str) -> str:
    return source_name if source == Face.Source.IMPORT else UPLOADS_DATASET


FACE_SOURCES = Face.Source.choices  # the OpenAPI enum FaceSourceEnum (settings: ENUM_NAME_OVERRIDES)
