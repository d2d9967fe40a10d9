"""Model versions, the active manifest, promote and rollback, and the immutable model files."""

from pathlib import Path

from django.conf import settings
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.common.models import Task
from webapp.pages.errors import kind_param
from webapp.pages.permissions import IsStaff
from webapp.pages.serializers import Input, ModelOutput
from webapp.registry import selectors, services
from webapp.registry.models import ActiveVersion, ModelVersion, Promotion


class VersionOutput(ModelOutput):
    active = serializers.SerializerMethodField()
    parent_number = serializers.IntegerField(source="parent.number", default=None, allow_null=True)
    created_by = serializers.CharField(source="created_by.username", default=None, allow_null=True)
    model_url = serializers.SerializerMethodField()
    rolls_back_to = serializers.SerializerMethodField(
        help_text="on the active version: the number a rollback would serve, null if there is none"
    )
    labels = serializers.SerializerMethodField(
        help_text="emotion: the classes the version predicts, in its output order (its metrics are on these); "
        "keypoints: null"
    )

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "kind",
            "number",
            "active",
            "metrics",
            "trained_on",
            "parent",
            "parent_number",
            "note",
            "created_at",
            "created_by",
            "model_url",
            "rolls_back_to",
            "labels",
        ]

    def get_rolls_back_to(self, obj) -> int | None:
        if not self.get_active(obj):
            return None
        target = services.rollback_target(obj.kind)
        return target.number if target else None

    def get_active(self, obj) -> bool:
        active = self.context.get("active_ids")
        if active is None:
            active = set(ActiveVersion.objects.values_list("version_id", flat=True))
        return obj.pk in active

    def get_labels(self, obj) -> list[str] | None:
        return list(selectors.version_labels(obj)) if obj.kind == "emotion" else None

    def get_model_url(self, obj) -> str:
        return selectors.version_manifest(obj)["model_url"]


class PromotionOutput(ModelOutput):
    from_number = serializers.IntegerField(source="from_version.number", default=None, allow_null=True)
    to_number = serializers.IntegerField(source="to_version.number")
    author = serializers.CharField(source="author.username", default=None, allow_null=True)

    class Meta:
        model = Promotion
        fields = [
            "id",
            "kind",
            "from_version",
            "from_number",
            "to_version",
            "to_number",
            "action",
            "reason",
            "author",
            "created_at",
        ]


class VersionListApi(ListAPIView):
    serializer_class = VersionOutput
    pagination_class = None

    def get_queryset(self):
        qs = ModelVersion.objects.select_related("parent", "created_by")
        return qs.filter(kind=kind_param(self.request)) if self.request.query_params.get("kind") else qs

    def get_serializer_context(self):
        return {
            **super().get_serializer_context(),
            "active_ids": set(ActiveVersion.objects.values_list("version_id", flat=True)),
        }


class VersionDetailOutput(VersionOutput):
    history = serializers.SerializerMethodField(help_text="per-epoch training curves, from the export")

    class Meta(VersionOutput.Meta):
        fields = [*VersionOutput.Meta.fields, "history"]

    def get_history(self, obj) -> dict:
        return selectors.version_history(obj)


class VersionDetailApi(APIView):
    @extend_schema(responses=VersionDetailOutput)
    def get(self, request, version_id: int):
        return Response(VersionDetailOutput(get_object_or_404(ModelVersion, pk=version_id)).data)


class ActiveManifestApi(APIView):
    """Everything the browser needs about the served models. Open to anyone: the demo needs no account."""

    permission_classes = [AllowAny]

    @extend_schema(
        responses={
            200: inline_serializer(
                "ActiveManifest",
                {
                    **{k: serializers.DictField(allow_null=True) for k in Task.values},
                    "pipeline": serializers.DictField(
                        help_text="detector, box prior, alignment steps, face framing, tracking (video)"
                    ),
                },
            )
        }
    )
    def get(self, request):
        response = Response(selectors.active_manifest())
        response["Cache-Control"] = "no-cache"  # must see a promotion on the next page load
        return response


class VersionPromoteApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(request=None, responses=PromotionOutput)
    def post(self, request, version_id: int):
        version = get_object_or_404(ModelVersion, pk=version_id)
        return Response(PromotionOutput(services.version_promote(version=version, author=request.user)).data)


class VersionRollbackApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema_serializer(component_name="VersionRollbackInput")
    class InputSerializer(Input):
        kind = serializers.ChoiceField(choices=Task.choices)
        version = serializers.IntegerField(required=False, help_text="target version id; default: the previous one")

    @extend_schema(request=InputSerializer, responses=PromotionOutput)
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        target = None
        if "version" in data.validated_data:
            target = get_object_or_404(ModelVersion, pk=data.validated_data["version"])
        move = services.version_rollback(kind=data.validated_data["kind"], author=request.user, to_version=target)
        return Response(PromotionOutput(move).data)


class PromotionListApi(ListAPIView):
    serializer_class = PromotionOutput
    pagination_class = None

    def get_queryset(self):
        return Promotion.objects.select_related("from_version", "to_version", "author")[:200]


def model_file(request, kind: str, name: str, path: str):
    """Files of a version: immutable, so cached for a year; open to anyone, like the demo.

    The URL names the version's directory, not its number: a directory name is never given twice (see
    ``services.version_register``), so a cached file can never stand for other weights.
    """
    if "\x00" in path:  # a path with a NUL byte names no file (the OS refuses it: a 500 before)
        raise Http404("no such model file")
    version = get_object_or_404(ModelVersion, artifact_dir=f"{kind}/{name}")
    root = (Path(settings.MODELS_ROOT) / version.artifact_dir).resolve()
    target = (root / path).resolve()
    if root not in target.parents or not target.is_file() or target.suffix not in (".json", ".bin", ".png"):
        raise Http404("no such model file")
    response = FileResponse(target.open("rb"))
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    return response
