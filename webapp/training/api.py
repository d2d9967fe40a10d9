"""Retraining runs: create (single flight), list, detail, cancel. Staff only."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.common.models import Task
from webapp.pages.errors import ServiceUnavailable, kind_param
from webapp.pages.permissions import IsStaff
from webapp.pages.serializers import Input, ModelOutput
from webapp.training import services
from webapp.training.models import TrainingRun


class RunOutput(ModelOutput):
    requested_by = serializers.CharField(source="requested_by.username", default=None, allow_null=True)
    version_number = serializers.IntegerField(source="version.number", default=None, allow_null=True)

    class Meta:
        model = TrainingRun
        exclude = ["history"]


class RunDetailOutput(RunOutput):
    class Meta:
        model = TrainingRun
        fields = "__all__"


class RunApi(ListAPIView):
    """GET: the runs, newest first (``?kind=``). POST: ask for a retrain (one run per kind at a time)."""

    permission_classes = [IsStaff]
    serializer_class = RunOutput

    def get_queryset(self):
        services.runs_reap_stale()
        qs = TrainingRun.objects.select_related("requested_by", "version")
        return qs.filter(kind=kind_param(self.request)) if self.request.query_params.get("kind") else qs

    @extend_schema_serializer(component_name="RunCreateInput")
    class InputSerializer(Input):
        kind = serializers.ChoiceField(choices=Task.choices)
        from_scratch = serializers.BooleanField(default=False, help_text="default: fine-tune the active version")

    @extend_schema(request=InputSerializer, responses={201: RunOutput, 409: RunOutput, 503: None})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            run, created = services.run_request(user=request.user, **data.validated_data)
        except services.BrokerUnavailable as exc:
            raise ServiceUnavailable(f"Retraining is unavailable right now: {exc}. Labeling keeps working.") from exc
        body = RunOutput(run).data
        if not created:
            body = {**body, "detail": f"Run {run.pk} ({run.kind}) is already {run.status}; not starting another."}
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_409_CONFLICT)


class PlanOutput(serializers.Serializer):
    kind = serializers.CharField()
    mode = serializers.ChoiceField(choices=["fine-tune", "from scratch"])
    recipe = serializers.CharField(
        help_text="from-scratch (ml.train.RECIPES: the shipped baselines' schedules, not distilled), fine-tuning, or "
        "domain (ml.domain: users' own faces beside the reference set, k-fold by person then the final model)"
    )
    faces = serializers.DictField(child=serializers.IntegerField(), help_text="train and val counts")
    reference = serializers.CharField(
        allow_null=True, help_text="the reference dataset (the largest, unless TRAINING_REFERENCE_DATASET names one)"
    )
    user_faces = serializers.IntegerField(help_text="labeled faces of the other datasets: the users' own slices")
    epochs = serializers.IntegerField(help_text="in all: a domain run counts its fold models' epochs too")
    learning_rate = serializers.FloatField()
    schedule = serializers.CharField()
    batch_size = serializers.IntegerField()
    estimated_seconds = serializers.FloatField(help_text="every epoch over every training face")
    estimate = serializers.CharField(help_text="the same, for people: '18 min'")
    basis = serializers.CharField(help_text="whose speed the estimate uses")
    blocked = serializers.CharField(allow_null=True, help_text="why such a run would fail at once (null: it can run)")


class RunPlanApi(APIView):
    """What a retrain would do if asked now: the faces, the recipe and an estimated duration. Starts nothing."""

    permission_classes = [IsStaff]

    class QuerySerializer(serializers.Serializer):
        kind = serializers.ChoiceField(choices=Task.choices)
        from_scratch = serializers.BooleanField(default=False)

    @extend_schema(parameters=[QuerySerializer], responses=PlanOutput)
    def get(self, request):
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response(PlanOutput(services.run_plan(**query.validated_data)).data)


class RunDetailApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(responses=RunDetailOutput)
    def get(self, request, run_id: int):
        services.runs_reap_stale()
        return Response(RunDetailOutput(get_object_or_404(TrainingRun, pk=run_id)).data)


class RunCancelApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(request=None, responses=RunOutput)
    def post(self, request, run_id: int):
        run = services.run_cancel(run=get_object_or_404(TrainingRun, pk=run_id))
        return Response(RunOutput(run).data)


class LabelCheckApi(APIView):
    """Ask the workers to check the users' labels (k fold models by person; no version is made). The run's progress
    is at /api/training-runs/<id>/; its result orders the Faces page (``ordering=-emotion_suspicion``)."""

    permission_classes = [IsStaff]

    @extend_schema_serializer(component_name="LabelCheckInput")
    class InputSerializer(Input):
        kind = serializers.ChoiceField(choices=Task.choices, default=Task.EMOTION)

    @extend_schema(request=InputSerializer, responses={201: RunOutput, 409: RunOutput, 503: None})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        kind = data.validated_data["kind"]
        try:
            run, created = services.run_request(
                kind=kind, user=request.user, trigger="api", job=TrainingRun.Job.LABEL_CHECK
            )
        except services.BrokerUnavailable as exc:
            raise ServiceUnavailable(f"The label check is unavailable right now: {exc}.") from exc
        body = RunOutput(run).data
        if not created:
            body = {**body, "detail": f"Run {run.pk} ({run.job} of {run.kind}) is already {run.status}."}
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_409_CONFLICT)
