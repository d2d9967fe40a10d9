"""Recordings: list, save (the browser's analysis), a staff upload for the workers, one recording with its tracks and
per-frame results, its two CSVs, and the tracks' rename, merge and delete."""

from __future__ import annotations

import csv
import json

from django.conf import settings
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from ml import video as mlvideo
from webapp.common.throttling import ScopedRateThrottle
from webapp.pages.errors import TooLarge
from webapp.pages.pagination import Pagination
from webapp.pages.permissions import IsLabeler, IsStaff
from webapp.pages.serializers import Input, ModelOutput
from webapp.recordings import selectors, services
from webapp.recordings.models import FrameResult, Recording, Track
from webapp.registry.models import ModelVersion

# the browser's results file: at most this many bytes (a 2-hour session at 10 frames/s, one face, is about 40 MB)
RESULTS_MAX_BYTES = 200 * 1024 * 1024


class TrackOutput(ModelOutput):
    label = serializers.CharField(read_only=True, help_text="its name, or 'Face N'")
    frames = serializers.SerializerMethodField(help_text="the frames with this face")

    class Meta:
        model = Track
        fields = ["number", "name", "label", "frames"]

    def get_frames(self, obj) -> int:
        counted = getattr(obj, "frame_count", None)  # the recording's read annotates it
        return obj.frames.count() if counted is None else counted


class RecordingOutput(ModelOutput):
    created_by = serializers.CharField(source="created_by.username", default=None, allow_null=True)
    keypoints_version = serializers.IntegerField(source="keypoints_version.number", default=None, allow_null=True)
    emotion_version = serializers.IntegerField(source="emotion_version.number", default=None, allow_null=True)
    tracks = serializers.SerializerMethodField()

    class Meta:
        model = Recording
        fields = [
            "id",
            "name",
            "checksum",
            "source",
            "status",
            "progress",
            "error",
            "duration_s",
            "fps",
            "width",
            "height",
            "frames_analysed",
            "frames_without_face",
            "labels",
            "keypoints_version",
            "emotion_version",
            "reanalysis_of",
            "created_by",
            "created_at",
            "tracks",
        ]

    def get_tracks(self, obj) -> list[dict]:
        from django.db.models import Count

        tracks = obj.tracks.annotate(frame_count=Count("frames")).order_by("number")
        return TrackOutput(tracks, many=True).data


class FrameOutput(ModelOutput):
    track = serializers.IntegerField(source="track.number")

    class Meta:
        model = FrameResult
        fields = ["track", "frame", "time_s", "score", "box", "points", "raw_points", "probabilities"]


def _frames_in(raw) -> list[dict]:
    """The browser's results (JSON): [{"number", "name", "frames": [{frame, time_s, score, box, points, raw_points,
    probabilities}]}] -> recording_save's tracks; a wrong shape is a 400 naming where."""
    if not isinstance(raw, list):
        raise ValidationError({"results": ["must be a list of tracks"]})
    tracks = []
    for i, t in enumerate(raw):
        if not isinstance(t, dict) or not isinstance(t.get("frames"), list):
            raise ValidationError({"results": [f"track {i}: needs number, name and frames"]})
        frames = []
        for j, f in enumerate(t["frames"]):
            try:
                frames.append(
                    services.FrameIn(
                        int(f["frame"]),
                        float(f["time_s"]),
                        float(f["score"]),
                        list(f["box"]),
                        list(f["points"]),
                        list(f.get("raw_points") or f["points"]),
                        list(f["probabilities"]),
                    )
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise ValidationError({"results": [f"track {i}, frame {j}: {exc!s} is missing or wrong"]}) from None
        tracks.append({"number": t.get("number", i + 1), "name": str(t.get("name") or ""), "frames": frames})
    return tracks


class RecordingListApi(ListAPIView):
    """Saved recordings, newest first; filters: participant (a track's name), since / until (dates), version."""

    permission_classes = [IsLabeler]
    serializer_class = RecordingOutput
    pagination_class = Pagination
    parser_classes = [MultiPartParser, FormParser]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "uploads"

    class FilterSerializer(serializers.Serializer):
        participant = serializers.CharField(required=False, default="", max_length=100)
        since = serializers.DateField(required=False, default=None)
        until = serializers.DateField(required=False, default=None)
        version = serializers.IntegerField(required=False, default=None, min_value=1)

    def get_throttles(self):
        return super().get_throttles() if self.request.method == "POST" else []

    def get_queryset(self):
        params = self.FilterSerializer(data=self.request.query_params)
        params.is_valid(raise_exception=True)
        return selectors.recording_list(**params.validated_data)

    @extend_schema(
        parameters=[
            OpenApiParameter("participant", str, description="a track's name contains this"),
            OpenApiParameter("since", OpenApiTypes.DATE),
            OpenApiParameter("until", OpenApiTypes.DATE),
            OpenApiParameter("version", int, description="analysed by this version number (either model)"),
        ]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema_serializer(component_name="RecordingSaveInput")
    class InputSerializer(Input):
        name = serializers.CharField(max_length=255, help_text="the video's file name")
        source = serializers.ChoiceField(
            choices=Recording.Source.choices, help_text="browser (a file) or camera; server is the workers' own"
        )
        checksum = serializers.RegexField(r"^[0-9a-f]{64}$", required=False, default="", allow_blank=True)
        duration_s = serializers.FloatField(min_value=0, max_value=24 * 3600)
        fps = serializers.FloatField(required=False, allow_null=True, default=None, min_value=0.1, max_value=240)
        width = serializers.IntegerField(min_value=1, max_value=16384)
        height = serializers.IntegerField(min_value=1, max_value=16384)
        frames_analysed = serializers.IntegerField(min_value=0)
        frames_without_face = serializers.IntegerField(min_value=0, default=0)
        keypoints_version = serializers.PrimaryKeyRelatedField(queryset=ModelVersion.objects.filter(kind="keypoints"))
        emotion_version = serializers.PrimaryKeyRelatedField(queryset=ModelVersion.objects.filter(kind="emotion"))
        reanalysis_of = serializers.PrimaryKeyRelatedField(
            queryset=Recording.objects.all(), required=False, allow_null=True, default=None
        )

        def validate_source(self, value):
            if value == Recording.Source.SERVER:
                raise serializers.ValidationError("a saved session is the browser's: browser or camera")
            return value

        empty_frames = serializers.FileField(
            required=False,
            default=None,
            help_text="JSON: [[frame, time_s], ...], the analysed frames where no face was found (as many as "
            "frames_without_face); a track's frames_missing counts them",
        )
        results = serializers.FileField(
            help_text="JSON: [{number, name, frames: [{frame, time_s, score, box, points, raw_points, "
            "probabilities}]}], points in the video's pixels, probabilities in the emotion version's label order"
        )

    @extend_schema(request={"multipart/form-data": InputSerializer}, responses={201: RecordingOutput})
    def post(self, request):
        """Save session: the browser's analysis (never the video) as a recording."""
        from webapp.registry.selectors import version_labels

        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        raw = _json_file(fields.pop("results"), "results")
        empty = fields.pop("empty_frames")
        try:
            recording = services.recording_save(
                author=request.user,
                tracks=_frames_in(raw),
                empty_frames=None if empty is None else _json_file(empty, "empty_frames"),
                labels=version_labels(fields["emotion_version"]),
                **fields,
            )
        except services.RecordingError as exc:
            raise ValidationError({"results": [str(exc)]}) from None
        return Response(RecordingOutput(recording).data, status=status.HTTP_201_CREATED)


def _json_file(upload, field: str):
    if upload.size > RESULTS_MAX_BYTES:
        raise TooLarge(f"{field}: at most {RESULTS_MAX_BYTES:,} bytes")
    try:
        return json.load(upload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError({field: [f"not JSON ({exc})"]}) from None


class RecordingUploadApi(APIView):
    """Staff: a video file for the workers to analyse with the server's pipeline (progress on the recording)."""

    permission_classes = [IsStaff]
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema_serializer(component_name="RecordingUploadInput")
    class InputSerializer(Input):
        video = serializers.FileField(help_text="mp4, webm, mov, mkv...: any codec FFmpeg decodes (HEVC included)")
        fps = serializers.FloatField(
            required=False,
            default=mlvideo.DEFAULT_FPS,
            min_value=0,
            max_value=240,
            help_text="frames analysed per second (0: every frame)",
        )

    @extend_schema(request={"multipart/form-data": InputSerializer}, responses={202: RecordingOutput})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["video"]
        if upload.size > settings.RECORDING_MAX_UPLOAD_BYTES:
            raise TooLarge(f"video: at most {settings.RECORDING_MAX_UPLOAD_BYTES:,} bytes")
        try:
            recording = services.recording_request(
                author=request.user, upload=upload, fps=data.validated_data["fps"] or None
            )
        except mlvideo.VideoError as exc:
            raise ValidationError({"video": [str(exc)]}) from None
        return Response(RecordingOutput(recording).data, status=status.HTTP_202_ACCEPTED)


class RecordingDetailApi(APIView):
    permission_classes = [IsLabeler]

    @extend_schema(responses=RecordingOutput)
    def get(self, request, recording_id: int):
        return Response(RecordingOutput(get_object_or_404(Recording, pk=recording_id)).data)


class RecordingFramesApi(APIView):
    """Every per-frame result of a recording, in time order (the timeline and the replay)."""

    permission_classes = [IsLabeler]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "empty_frames", bool, description="also a row {frame, time_s, track: null} per frame with no face"
            )
        ],
        responses=FrameOutput(many=True),
    )
    def get(self, request, recording_id: int):
        recording = get_object_or_404(Recording, pk=recording_id)
        rows = recording.frames.select_related("track").order_by("time_s", "track__number")
        out = FrameOutput(rows, many=True).data
        if _flag(request, "empty_frames") and recording.empty_frames:
            out = sorted(
                [*out, *({"track": None, "frame": f, "time_s": t} for f, t in recording.empty_frames)],
                key=lambda r: (r["time_s"], -1 if r["track"] is None else r["track"]),
            )
        return Response(out)


def _flag(request, name: str) -> bool:
    return request.query_params.get(name, "").lower() in ("1", "true", "yes")


class _Echo:
    def write(self, value):
        return value


class RecordingExportApi(APIView):
    """``frames.csv`` or ``tracks.csv`` (docs/video.md), streamed."""

    permission_classes = [IsLabeler]

    @extend_schema(
        parameters=[OpenApiParameter("empty_frames", bool, description="frames.csv: a row per frame with no face")],
        responses={(200, "text/csv"): OpenApiTypes.STR},
    )
    def get(self, request, recording_id: int, which: str):
        if which not in ("frames", "tracks"):
            raise Http404(f"No such export: {which}.csv (frames.csv or tracks.csv)")
        recording = get_object_or_404(Recording, pk=recording_id)
        analysis, names = selectors.recording_analysis(recording)
        if which == "frames":
            rows = mlvideo.frame_rows(analysis, empty_frames=_flag(request, "empty_frames"))
        else:
            rows = mlvideo.track_rows(analysis, names)
        writer = csv.writer(_Echo())
        response = StreamingHttpResponse((writer.writerow(r) for r in rows), content_type="text/csv")
        stem = recording.name.rsplit(".", 1)[0] or "recording"
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[:100]
        response["Content-Disposition"] = f'attachment; filename="{safe}.{which}.csv"'
        return response


def _on_track(recording_id: int, field: str, service, **kwargs):
    """A track operation on a recording that exists; its refusal is a 400 on ``field``."""
    recording = get_object_or_404(Recording, pk=recording_id)
    try:
        return service(recording=recording, **kwargs)
    except services.RecordingError as exc:
        raise ValidationError({field: [str(exc)]}) from None


class TrackApi(APIView):
    permission_classes = [IsLabeler]

    @extend_schema_serializer(component_name="TrackRenameInput")
    class InputSerializer(Input):
        name = serializers.CharField(max_length=100, allow_blank=True, help_text="a participant's name or code")

    @extend_schema(request=InputSerializer, responses=TrackOutput)
    def patch(self, request, recording_id: int, number: int):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        track = _on_track(recording_id, "number", services.track_rename, number=number, **data.validated_data)
        return Response(TrackOutput(track).data)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, recording_id: int, number: int):
        _on_track(recording_id, "number", services.track_delete, number=number)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TrackMergeApi(APIView):
    permission_classes = [IsLabeler]

    @extend_schema_serializer(component_name="TrackMergeInput")
    class InputSerializer(Input):
        into = serializers.IntegerField(min_value=1, help_text="the track that stays: the same person")

    @extend_schema(request=InputSerializer, responses=TrackOutput)
    def post(self, request, recording_id: int, number: int):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        track = _on_track(recording_id, "into", services.track_merge, number=number, **data.validated_data)
        return Response(TrackOutput(track).data)
