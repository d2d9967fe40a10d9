"""Label Studio's ML backend protocol under /api/label-studio/ (it appends health, setup, predict, webhook, train,
versions), plus the labeling config. Label Studio connects with basic auth as one of our staff users."""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.faces.interchange.labelstudio import protocol as ls
from webapp.faces.interchange.labelstudio.services import faces_import_label_studio, label_studio_predict
from webapp.faces.store.detection import InferenceUnavailable, active_model_version
from webapp.pages.authentication import ThrottledBasicAuthentication, TokenAuthentication
from webapp.pages.errors import ErrorOutput, ServiceUnavailable
from webapp.pages.permissions import IsStaff

log = logging.getLogger(__name__)


class _Backend(APIView):
    authentication_classes = [ThrottledBasicAuthentication, TokenAuthentication, SessionAuthentication]
    permission_classes = [IsStaff]


class LabelStudioConfigApi(APIView):
    """The labeling config for a Label Studio project: our 15 keypoints and five emotions on an image ``image``."""

    permission_classes = [AllowAny]

    @extend_schema(responses={(200, "application/xml"): str})
    def get(self, request):
        from webapp.labels.selectors import label_set

        config = ls.label_config(label_set(task="emotion").labels)
        return HttpResponse(config, content_type="application/xml; charset=utf-8")


class LabelStudioHealthApi(_Backend):
    @extend_schema(
        responses=inline_serializer(
            "LabelStudioHealth",
            {
                "status": serializers.CharField(),
                "model_class": serializers.CharField(),
                "model_version": serializers.CharField(),
                "problems": serializers.ListField(child=serializers.CharField(), help_text="what stops predictions"),
            },
        )
    )
    def get(self, request):
        return Response(
            {
                "status": "UP",
                "model_class": "EmotionAIStudio",
                "model_version": active_model_version(),
                "problems": ls.backend_problems(),
            }
        )


class LabelStudioSetupApi(_Backend):
    @extend_schema(
        request=inline_serializer("LabelStudioSetupInput", {"project": serializers.CharField(required=False)}),
        responses={
            200: inline_serializer("LabelStudioSetup", {"model_version": serializers.CharField()}),
            400: OpenApiResponse(ErrorOutput, description="the server is not set up to read Label Studio's images"),
        },
    )
    def post(self, request):
        # Label Studio shows a failed setup to the person connecting the model; a "Connected" backend whose every
        # prediction is empty showed nothing
        problems = ls.backend_problems()
        if problems:
            raise serializers.ValidationError({"detail": "; ".join(problems)})
        return Response({"model_version": active_model_version()})


class LabelStudioVersionsApi(_Backend):
    @extend_schema(responses=inline_serializer("LabelStudioVersions", {"versions": serializers.ListField()}))
    def get(self, request):
        return Response({"versions": [active_model_version()]})


class LabelStudioPredictApi(_Backend):
    """Predictions for Label Studio's tasks from the active models through the server's whole-photo path."""

    class InputSerializer(serializers.Serializer):
        tasks = serializers.ListField(child=serializers.DictField(), max_length=1000)  # Label Studio sends all at once
        # the project's config, which Label Studio sends along: a project made before the face boxes gets none
        label_config = serializers.CharField(required=False, allow_blank=True, max_length=1_000_000)

    @extend_schema(
        request=InputSerializer,
        responses={
            200: inline_serializer(
                "LabelStudioPredictions",
                {
                    "results": serializers.ListField(child=serializers.DictField()),
                    "model_version": serializers.CharField(),
                },
            ),
            503: OpenApiResponse(ErrorOutput, description="the models cannot run on this server now (Retry-After)"),
        },
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            results, model_version = label_studio_predict(
                data.validated_data["tasks"], data.validated_data.get("label_config")
            )
        except InferenceUnavailable as exc:
            raise ServiceUnavailable(str(exc), retry_after=exc.retry_after) from None
        return Response({"results": results, "model_version": model_version})


TRAINING_ACTIONS = {"ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED", "START_TRAINING"}


class LabelStudioWebhookApi(_Backend):
    """Label Studio's events. With LABEL_STUDIO_RETRAIN on, a new or changed annotation is imported (the same import
    as a JSON export) and a retrain of what it labeled is requested; START_TRAINING (the Train button) requests
    both. Off (the default), events are acknowledged and nothing changes."""

    @extend_schema(
        request=inline_serializer("LabelStudioEvent", {"action": serializers.CharField()}),
        responses=inline_serializer(
            "LabelStudioEventOutput", {"status": serializers.CharField(), "detail": serializers.CharField()}
        ),
    )
    def post(self, request):
        body = request.data if isinstance(request.data, dict) else {}
        return self.act(request, str(body.get("action", "")), body)

    def act(self, request, action: str, body: dict) -> Response:
        if action not in TRAINING_ACTIONS:
            return Response({"status": "ignored", "detail": f"{action or 'no action'}: not an event we act on"})
        if not settings.LABEL_STUDIO_RETRAIN:
            return Response({"status": "ignored", "detail": "LABEL_STUDIO_RETRAIN is off: nothing imported or queued"})
        from webapp.training.services import BrokerUnavailable, run_request

        kinds, detail = ["keypoints", "emotion"], []
        if action != "START_TRAINING":
            task, annotation = body.get("task"), body.get("annotation")
            if not isinstance(task, dict) or not isinstance(annotation, dict):
                raise serializers.ValidationError({"task": ["an annotation event carries its task and annotation"]})
            report = faces_import_label_studio(
                payload=[{**task, "annotations": [annotation]}], author=request.user, name="label-studio webhook"
            )
            if report.errors:
                raise serializers.ValidationError({"annotation": report.errors})
            detail.append(report.summary())
            results = annotation.get("result") or []
            kinds = [
                kind
                for kind, kind_type in (("keypoints", "keypointlabels"), ("emotion", "choices"))
                if any(isinstance(r, dict) and r.get("type") == kind_type for r in results)
            ]
        for kind in kinds:
            try:
                run, created = run_request(kind=kind, user=request.user, trigger="label-studio")
            except BrokerUnavailable as exc:
                raise ServiceUnavailable(f"Retraining is unavailable right now: {exc}.") from exc
            detail.append(f"run {run.pk} ({kind}) {'queued' if created else f'already {run.status}'}")
        return Response({"status": "ok", "detail": "; ".join(detail)})


class LabelStudioTrainApi(LabelStudioWebhookApi):
    """The older protocol's POST train: the same as a START_TRAINING event."""

    @extend_schema(
        request=None,
        responses=inline_serializer(
            "LabelStudioTrainOutput", {"status": serializers.CharField(), "detail": serializers.CharField()}
        ),
    )
    def post(self, request):
        return self.act(request, "START_TRAINING", {})
