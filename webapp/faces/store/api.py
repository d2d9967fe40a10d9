"""The face store over HTTP: a face as stored, its image, and adding photos. One view per operation."""

from pathlib import Path

from django.conf import settings
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.common.throttling import ScopedRateThrottle
from webapp.faces.store import services
from webapp.faces.store.detection import InferenceUnavailable, UnprocessableImage
from webapp.faces.store.models import Face
from webapp.pages.errors import ErrorOutput, ServiceUnavailable, Unprocessable
from webapp.pages.serializers import Input, ModelOutput


class FaceOutput(ModelOutput):
    image_url = serializers.SerializerMethodField()
    original_url = serializers.SerializerMethodField()
    labels = serializers.SerializerMethodField()
    label_sources = serializers.SerializerMethodField()

    class Meta:
        model = Face
        fields = [
            "id",
            "checksum",
            "image_url",
            "original_url",
            "box",
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

    def get_original_url(self, obj) -> str | None:
        """The picture the face was found in (signed-in labelers and staff only); null when none was kept."""
        return f"/api/faces/{obj.pk}/original/" if obj.original else None

    def _labels(self, obj) -> tuple[dict, dict]:
        # The store knows nothing of how labels are decided: labeling passes its reader (face -> (labels, sources)).
        labels_of = self.context.get("labels_of")
        if labels_of is None:
            return {}, {}
        if getattr(obj, "_labels_and_sources", None) is None:
            obj._labels_and_sources = labels_of(obj)
        return obj._labels_and_sources

    def get_labels(self, obj) -> dict:
        """The current label per task, as labeling decides it (``labeling.selectors.face_labels``)."""
        return self._labels(obj)[0]

    def get_label_sources(self, obj) -> dict:
        """Per task, where the current label comes from: review, human, labelers (a consensus), import, or null."""
        return self._labels(obj)[1]


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
        picture = serializers.FileField(
            required=False,
            help_text="with `crops`: the picture they were cut from (JPEG, PNG or WEBP, the limits of `image`), kept "
            "once as their original",
        )
        boxes = serializers.JSONField(
            required=False,
            help_text="with `picture`: one box per crop, its four [x, y] corners in the picture's pixels, clockwise "
            "from the crop's top left",
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
                    picture=values["picture"].read() if values.get("picture") else None,
                    boxes=values.get("boxes"),
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


class FaceOriginalApi(APIView):
    """The picture a face was found in: to signed-in labelers and staff only (it shows more than the face), never
    under a public media path."""

    @extend_schema(
        responses={
            (200, "image/*"): bytes,
            404: OpenApiResponse(ErrorOutput, description="no picture was kept for this face"),
        }
    )
    def get(self, request, face_id: int):
        face = get_object_or_404(Face, pk=face_id)
        path = Path(settings.MEDIA_ROOT) / face.original if face.original else None
        if path is None or not path.is_file():
            raise Http404("no picture was kept for this face")
        kind = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}.get(path.suffix.lstrip("."))
        response = FileResponse(path.open("rb"), content_type=kind or "application/octet-stream")
        response["Cache-Control"] = "private, max-age=86400"  # named by its checksum: never changes
        response["Content-Disposition"] = "inline"
        return response


class PhotoFaceAddApi(APIView):
    """A face the detector missed in the picture face <id> was found in: the person's box is cut through the same
    alignment as a detected face and stored with the picture; it then waits in the labeling queue."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "uploads"

    @extend_schema_serializer(component_name="PhotoFaceAddInput")
    class InputSerializer(Input):
        box = serializers.JSONField(help_text="[x, y, width, height] in the picture's own pixels")

    @extend_schema(
        request=InputSerializer,
        responses={
            201: FaceOutput,
            200: OpenApiResponse(FaceOutput, description="the box holds a face already stored"),
            503: OpenApiResponse(ErrorOutput, description="no keypoint model can place the face now"),
        },
    )
    def post(self, request, face_id: int):
        face = get_object_or_404(Face, pk=face_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            added, created = services.face_add_in_photo(face=face, box=data.validated_data["box"], author=request.user)
        except InferenceUnavailable as exc:
            raise ServiceUnavailable(str(exc), retry_after=exc.retry_after) from None
        return Response(FaceOutput(added).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
