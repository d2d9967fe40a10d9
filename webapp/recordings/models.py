"""A recorded session: a video (or a webcam session) analysed into face tracks and per-frame results.

Per-frame results are a row per analysed frame and track (``FrameResult``): the timeline of one track, the frames of a
time range and the CSV export are each one indexed range read, and a rename or a merge touches the rows it must.
"""

from django.conf import settings
from django.db import models


class Recording(models.Model):
    class Source(models.TextChoices):
        BROWSER = "browser"  # a file analysed in the browser (the file stays there)
        CAMERA = "camera"  # the live webcam, results only
        SERVER = "server"  # a file uploaded by staff (or given to analyze_video --save), analysed by a worker

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        JOINING = "joining"  # a long file's segments are all analysed; one worker joins their tracks
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    name = models.CharField(max_length=255, help_text="the video's file name")
    checksum = models.CharField(max_length=64, blank=True, help_text="sha256 of the file: finds the local file again")
    source = models.CharField(max_length=10, choices=Source.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SUCCEEDED)
    progress = models.FloatField(default=1.0, help_text="0-1 while a worker analyses it")
    error = models.TextField(blank=True)
    duration_s = models.FloatField(default=0.0)
    fps = models.FloatField(null=True, blank=True, help_text="the analysis rate; null: every frame")
    segment_s = models.FloatField(
        null=True, blank=True, help_text="a worker's share of a long file, in seconds; null: one worker reads it all"
    )
    width = models.PositiveIntegerField(default=0)
    height = models.PositiveIntegerField(default=0)
    frames_analysed = models.PositiveIntegerField(default=0)
    frames_without_face = models.PositiveIntegerField(default=0)
    empty_frames = models.JSONField(
        default=list,
        blank=True,
        help_text="[frame, time_s] of each analysed frame where no face was found (a track's frames_missing counts "
        "them); empty for a recording saved before they were kept",
    )
    labels = models.JSONField(default=list, help_text="the emotion classes of the probabilities, in their order")
    keypoints_version = models.ForeignKey(
        "registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    emotion_version = models.ForeignKey(
        "registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reanalysis_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="reanalyses",
        help_text="the recording this one analysed again with later versions",
    )
    video = models.FileField(upload_to="recordings/", blank=True, help_text="kept only when asked")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["created_at"])]

    def __str__(self):
        return f"{self.name} ({self.created_at:%Y-%m-%d %H:%M})"


class Track(models.Model):
    recording = models.ForeignKey(Recording, on_delete=models.CASCADE, related_name="tracks")
    number = models.PositiveIntegerField(help_text="1, 2, ... in order of first appearance")
    name = models.CharField(max_length=100, blank=True, help_text="the participant's name or code")

    class Meta:
        ordering = ["recording", "number"]
        constraints = [models.UniqueConstraint(fields=["recording", "number"], name="track_number_once")]
        indexes = [models.Index(fields=["name"])]

    def __str__(self):
        return self.label

    @property
    def label(self) -> str:
        return self.name or f"Face {self.number}"


class FrameResult(models.Model):
    recording = models.ForeignKey(Recording, on_delete=models.CASCADE, related_name="frames")
    track = models.ForeignKey(Track, on_delete=models.CASCADE, related_name="frames")
    frame = models.PositiveIntegerField(help_text="the frame's number in the file")
    time_s = models.FloatField()
    score = models.FloatField(help_text="the detector's score of the face's last detection")
    box = models.JSONField(help_text="[x, y, width, height] in the video's pixels")
    points = models.JSONField(help_text="15 [x, y] in the video's pixels, filtered (still faces stay still)")
    raw_points = models.JSONField(help_text="15 [x, y] as the keypoint model placed them")
    probabilities = models.JSONField(help_text="one per class of the recording's labels")

    class Meta:
        ordering = ["time_s", "track__number"]
        constraints = [models.UniqueConstraint(fields=["track", "time_s"], name="one_result_per_track_and_time")]
        indexes = [models.Index(fields=["recording", "time_s"])]

    def __str__(self):
        return f"{self.track} at {self.time_s:.2f} s"


# the OpenAPI enums' names (SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"] reads module attributes): a recording's
# source and status beside a face's source and a training run's status, each named for what it is
RECORDING_SOURCES = Recording.Source.choices
RECORDING_STATUSES = Recording.Status.choices
