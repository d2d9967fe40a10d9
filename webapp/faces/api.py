"""Faces, annotations, predictions and the labeling queue. One view per operation: validate, call a service,
serialize."""

from pathlib import Path

from django.conf import settings
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.generics import ListAPIView
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.common.throttling import ScopedRateThrottle
from webapp.faces import selectors, services
from webapp.faces.detection import InferenceUnavailable, UnprocessableImage
from webapp.faces.models import Annotation, Face, Prediction, Task
from webapp.pages.errors import Conflict, ErrorOutput, ServiceUnavailable, Unprocessable
from webapp.pages.permissions import IsStaff
from webapp.pages.serializers import Input, ModelOutput
from webapp.registry.models import ModelVersion


class AnnotationOutput(ModelOutput):
    author = serializers.CharField(source="author.username", default=None, allow_null=True)
    emotion_label = serializers.SerializerMethodField()

    class Meta:
        model = Annotation
        fields = [
            "id",
            "face",
            "points",
            "emotion",
            "emotion_label",
            "skip",
            "origin",
            "author",
            "prediction",
            "created_at",
        ]

    def get_emotion_label(self, obj) -> str | None:
        return obj.emotion  # the class's key is its name (kept for the clients that read emotion_label)


class FaceOutput(ModelOutput):
    image_url = serializers.SerializerMethodField()
    labels = serializers.SerializerMethodField()
    label_sources = serializers.SerializerMethodField()

    class Meta:
        model = Face
        fields = [
            "id",
            "checksum",
            "image_url",
            "source",
            "source_name",
            "source_line",
            "usage",
            "split",
            "group",
            "created_at",
            "human_keypoints",
            "human_emotion",
            "keypoints_uncertainty",
            "emotion_uncertainty",
            "labels",
            "label_sources",
        ]

    def get_image_url(self, obj) -> str:
        return f"/api/faces/{obj.pk}/image/"

    def _labels(self, obj) -> tuple[dict, dict]:
        if not self.context.get("with_labels"):
            return {}, {}
        if getattr(obj, "_labels_and_sources", None) is None:
            obj._labels_and_sources = selectors.face_labels_and_sources(obj)
        return obj._labels_and_sources

    def get_labels(self, obj) -> dict:
        """The current label per task, as ``selectors.face_labels`` decides it."""
        return self._labels(obj)[0]

    def get_label_sources(self, obj) -> dict:
        """Per task, where the current label comes from: review, human, labelers (a consensus), import, or null."""
        return self._labels(obj)[1]


class FaceListApi(ListAPIView):
    serializer_class = FaceOutput

    @extend_schema(
        parameters=[
            OpenApiParameter("source", str, enum=Face.Source.values),
            OpenApiParameter("split", str, enum=Face.Split.values),
            OpenApiParameter("labeled", str, description="keypoints|emotion, or unlabeled:keypoints|unlabeled:emotion"),
        ]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        params = self.request.query_params
        return selectors.face_list(
            source=params.get("source"), split=params.get("split"), labeled=params.get("labeled")
        )


class FaceUploadApi(APIView):
    parser_classes = [MultiPartParser, FormParser]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "uploads"

    @extend_schema_serializer(component_name="FaceUploadInput")
    class InputSerializer(Input):
        image = serializers.FileField(
            required=False, help_text="JPEG, PNG or WEBP; at most 10 MB and 40 megapixels (or send `crops`)"
        )
        crops = serializers.ListField(
            child=serializers.FileField(),
            required=False,
            max_length=64,
            help_text="the faces of one picture as the browser cut them, 96x96 each: one request per picture, "
            "counted once by the upload throttle",
        )
        name = serializers.CharField(
            required=False, max_length=200, help_text="the picture's file name, kept with its faces"
        )
        group = serializers.CharField(
            required=False,
            default="",
            allow_blank=True,
            max_length=100,
            help_text="the person or session the photo shows; every split keeps a group on one side "
            "(default: the photo itself)",
        )

    @extend_schema_serializer(component_name="FaceUploadOutput")
    class OutputSerializer(serializers.Serializer):
        faces = FaceOutput(many=True, help_text="one per face found (a 96x96 picture is one face already cut)")
        created = serializers.IntegerField(help_text="how many of them are new")

    @extend_schema(
        request=InputSerializer,
        responses={
            201: OutputSerializer,
            200: OpenApiResponse(OutputSerializer, description="every face was already stored"),
            422: OpenApiResponse(ErrorOutput, description="the picture holds no face"),
            503: OpenApiResponse(
                ErrorOutput, description="the server cannot run the models now (Retry-After says when to try again)"
            ),
        },
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if bool(values.get("image")) == bool(values.get("crops")):
            raise serializers.ValidationError({"image": ["send one picture as `image`, or its faces as `crops`"]})
        try:
            if values.get("crops"):
                results = services.faces_upload_crops(
                    crops=[crop.read() for crop in values["crops"]],
                    filename=values.get("name") or values["crops"][0].name,
                    author=request.user,
                    group=values["group"],
                )
            else:
                upload = values["image"]
                results = services.face_upload(
                    data=upload.read(),
                    filename=values.get("name") or upload.name,
                    author=request.user,
                    group=values["group"],
                )
        except UnprocessableImage as exc:
            raise Unprocessable(str(exc)) from None
        except InferenceUnavailable as exc:
            raise ServiceUnavailable(str(exc), retry_after=exc.retry_after) from None
        created = sum(1 for _, new in results if new)
        body = self.OutputSerializer({"faces": [face for face, _ in results], "created": created}).data
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class FaceDetailApi(APIView):
    @extend_schema(responses=FaceOutput)
    def get(self, request, face_id: int):
        face = get_object_or_404(Face, pk=face_id)
        return Response(FaceOutput(face, context={"with_labels": True}).data)


class FaceImageApi(APIView):
    @extend_schema(responses={(200, "image/png"): bytes})
    def get(self, request, face_id: int):
        face = get_object_or_404(Face, pk=face_id)
        path = Path(settings.MEDIA_ROOT) / face.image
        if not path.is_file():
            raise Http404("image file missing")
        response = FileResponse(path.open("rb"), content_type="image/png")
        response["Cache-Control"] = "private, max-age=86400"  # content-addressed: a face's image never changes
        return response


class AnnotationApi(ListAPIView):
    """GET: the face's annotation history, newest first. POST: a correction (throttled like every write)."""

    serializer_class = AnnotationOutput
    pagination_class = None
    throttle_scope = "writes"

    def get_throttles(self):
        return [ScopedRateThrottle()] if self.request.method == "POST" else []

    def get_queryset(self):
        return selectors.annotation_history(face=get_object_or_404(Face, pk=self.kwargs["face_id"]))

    @extend_schema_serializer(component_name="AnnotationSubmitInput")
    class InputSerializer(Input):
        points = serializers.JSONField(required=False, help_text='15 x {"x", "y", "visible"}, x and y in [0, 96)')
        emotion = serializers.CharField(
            required=False, max_length=40, help_text="a class of the label set (GET /api/labelsets/emotion/)"
        )
        skip = serializers.BooleanField(required=False, default=False, help_text="mark the face unusable")
        prediction = serializers.IntegerField(required=False, help_text="id of the prediction this corrects")
        review = serializers.BooleanField(
            required=False, default=False, help_text="staff: a reviewer's decision between labelers (it is the label)"
        )

    @extend_schema(
        request=InputSerializer,
        responses={
            201: AnnotationOutput,
            409: OpenApiResponse(ErrorOutput, description="another labeler holds the face for this task (a lease)"),
        },
    )
    def post(self, request, face_id: int):
        face = get_object_or_404(Face, pk=face_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        prediction = None
        if "prediction" in values:
            prediction = Prediction.objects.filter(pk=values["prediction"]).first()
            if prediction is None:
                raise serializers.ValidationError({"prediction": [f"no prediction {values['prediction']}"]})
        if values["review"] and not request.user.is_staff:
            raise PermissionDenied("Only staff review labels.")
        try:
            annotation = services.annotation_submit(
                face=face,
                author=request.user,
                points=values.get("points"),
                emotion=values.get("emotion"),
                skip=values["skip"],
                prediction=prediction,
                origin=Annotation.Origin.REVIEW if values["review"] else Annotation.Origin.HUMAN,
            )
        except services.FaceHeld as exc:
            raise Conflict(str(exc)) from None
        return Response(AnnotationOutput(annotation).data, status=status.HTTP_201_CREATED)


class PredictionOutput(ModelOutput):
    version_number = serializers.IntegerField(source="version.number")

    class Meta:
        model = Prediction
        fields = [
            "id",
            "face",
            "task",
            "version",
            "version_number",
            "points",
            "probabilities",
            "uncertainty",
            "created_at",
        ]


class PredictionRecordApi(APIView):
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "writes"

    @extend_schema_serializer(component_name="PredictionRecordInput")
    class InputSerializer(Input):
        version = serializers.IntegerField(help_text="id of the model version that made the prediction")
        points = serializers.JSONField(required=False)
        probabilities = serializers.JSONField(required=False)
        uncertainty = serializers.FloatField(help_text="higher = less sure; orders the labeling queue")

    @extend_schema(request=InputSerializer, responses={201: PredictionOutput})
    def post(self, request, face_id: int):
        face = get_object_or_404(Face, pk=face_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        version = ModelVersion.objects.filter(pk=values["version"]).first()
        if version is None:
            raise serializers.ValidationError({"version": [f"no model version {values['version']}"]})
        prediction = services.prediction_record(
            face=face,
            version=version,
            author=request.user,
            points=values.get("points"),
            probabilities=values.get("probabilities"),
            uncertainty=values["uncertainty"],
        )
        return Response(PredictionOutput(prediction).data, status=status.HTTP_201_CREATED)


class LeaseOutput(serializers.Serializer):
    face = serializers.IntegerField(source="face_id")
    task = serializers.CharField()
    expires_at = serializers.DateTimeField()
    seconds = serializers.SerializerMethodField(help_text="how long a lease lasts; renew well before it runs out")

    def get_seconds(self, lease) -> int:
        return settings.LABEL_LEASE_SECONDS


def _queue_params(request) -> tuple[str, list[int]]:
    """?task= (required) and ?exclude= (comma-separated face ids skipped in this session) of a queue request."""
    task = request.query_params.get("task")
    if task not in Task.values:
        raise serializers.ValidationError({"task": [f"must be one of {', '.join(Task.values)}"]})
    try:
        exclude = [int(x) for x in request.query_params.get("exclude", "").split(",") if x.strip()][:1000]
        if any(not 0 < x < 2**63 for x in exclude):  # beyond any database's integer: not a face id
            raise ValueError
    except ValueError:
        raise serializers.ValidationError({"exclude": ["must be comma-separated face ids"]}) from None
    return task, exclude


class QueueNextApi(APIView):
    """The next face for this labeler, leased to them: nobody else is served it until the lease ends."""

    @extend_schema(
        parameters=[
            OpenApiParameter("task", str, enum=Task.values, required=True),
            OpenApiParameter("exclude", str, description="comma-separated face ids skipped in this session"),
        ],
        responses={
            200: inline_serializer(
                "QueueNext",
                {
                    "face": FaceOutput(allow_null=True),
                    "lease": LeaseOutput(allow_null=True),
                    "remaining": serializers.IntegerField(help_text="faces without a human label of the task"),
                    "remaining_capped": serializers.BooleanField(
                        help_text="true: there are more than `remaining` (counting stops at QUEUE_COUNT_LIMIT)"
                    ),
                },
            )
        },
    )
    def get(self, request):
        task, exclude = _queue_params(request)
        face, lease = services.queue_take(task=task, user=request.user, exclude=exclude)
        remaining, capped = selectors.queue_remaining(task=task)
        return Response(
            {
                # several labelers per face label blind: each is shown the model's guess, never another's label
                "face": FaceOutput(face, context={"with_labels": settings.LABELS_PER_FACE < 2}).data if face else None,
                "lease": LeaseOutput(lease).data if lease else None,
                "remaining": remaining,
                "remaining_capped": capped,
            }
        )


class LeaseApi(APIView):
    """POST: keep holding the face (409 if someone else holds it now). DELETE: let go of it (skip, close)."""

    class QuerySerializer(serializers.Serializer):
        task = serializers.ChoiceField(choices=Task.choices)

    @extend_schema(parameters=[QuerySerializer], request=None, responses={200: LeaseOutput, 409: ErrorOutput})
    def post(self, request, face_id: int):
        face = get_object_or_404(Face, pk=face_id)
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        try:
            lease = services.lease_renew(face=face, task=query.validated_data["task"], user=request.user)
        except services.LeaseLost as exc:
            raise Conflict(str(exc)) from exc
        return Response(LeaseOutput(lease).data)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, face_id: int):
        services.lease_release(face=get_object_or_404(Face, pk=face_id), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class KeypointsAgreementOutput(serializers.Serializer):
    faces = serializers.IntegerField(help_text="faces two or more labelers annotated")
    mean_distance_px = serializers.FloatField(allow_null=True, help_text="between two labelers' points")
    pairs = serializers.IntegerField()


class EmotionAgreementOutput(serializers.Serializer):
    faces = serializers.IntegerField(help_text="faces two or more labelers annotated")
    fleiss_kappa = serializers.FloatField(allow_null=True)
    unanimous_share = serializers.FloatField(allow_null=True)


class LabelerAgreementOutput(serializers.Serializer):
    labeler = serializers.CharField()
    faces = serializers.IntegerField()
    annotations = serializers.IntegerField()
    median_seconds_per_save = serializers.FloatField(allow_null=True)
    emotion_agreement_with_others = serializers.FloatField(allow_null=True)
    emotion_shared_faces = serializers.IntegerField()
    keypoints_distance_to_others_px = serializers.FloatField(allow_null=True)
    keypoints_shared_faces = serializers.IntegerField()


class AgreementOutput(serializers.Serializer):
    keypoints = KeypointsAgreementOutput()
    emotion = EmotionAgreementOutput()
    labelers = LabelerAgreementOutput(many=True)


class AgreementApi(APIView):
    """How much labelers agree, per task, and per labeler: counts, speed, agreement with the others (staff)."""

    permission_classes = [IsStaff]

    @extend_schema(responses=AgreementOutput)
    def get(self, request):
        from webapp.faces.agreement import agreement

        return Response(AgreementOutput(agreement()).data)


class ReviewNextApi(APIView):
    """The next face whose labelers disagree, with each labeler's label and their consensus (staff)."""

    permission_classes = [IsStaff]

    @extend_schema(
        parameters=[OpenApiParameter("task", str, enum=Task.values, required=True), OpenApiParameter("exclude", str)],
        responses={
            200: inline_serializer(
                "ReviewNext",
                {
                    "face": FaceOutput(allow_null=True),
                    "labels": serializers.DictField(help_text="labeler -> label (null: skipped)"),
                    "consensus": serializers.JSONField(allow_null=True),
                    "remaining": serializers.IntegerField(),
                },
            )
        },
    )
    def get(self, request):
        task, exclude = _queue_params(request)
        face = selectors.review_next(task=task, exclude=exclude)
        labels = selectors.labels_by_labeler(face=face, task=task) if face else {}
        return Response(
            {
                "face": FaceOutput(face, context={"with_labels": True}).data if face else None,
                "labels": labels,
                "consensus": selectors.consensus(task, list(labels.values())) if labels else None,
                "remaining": Face.objects.filter(**{f"review_{task}": True}).count(),
            }
        )
