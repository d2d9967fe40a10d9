"""Faces with their labels, annotations, predictions, the labeling queue, leases, agreement and review. One view per
operation: validate, call a service, serialize."""

from django.conf import settings
from django.shortcuts import get_object_or_404
from django.utils import timezone
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
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.common.models import Task
from webapp.common.throttling import ScopedRateThrottle
from webapp.faces.labeling import browse, selectors, services
from webapp.faces.labeling.models import Annotation, Lease, Prediction
from webapp.faces.store.api import FaceOutput
from webapp.faces.store.models import UPLOADS_DATASET, Face
from webapp.pages.errors import Conflict, ErrorOutput
from webapp.pages.permissions import IsStaff
from webapp.pages.serializers import Input, ModelOutput
from webapp.registry.models import ModelVersion
from webapp.registry.selectors import active_version

# what FaceOutput shows as a face's labels and their sources
LABELS = {"labels_of": selectors.face_labels_and_sources}


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


class LabeledFaceOutput(FaceOutput):
    """A face as the Faces page shows it: its current labels and the newest emotion guess of a model."""

    guess = serializers.CharField(source="summary.guess", default=None, allow_null=True)
    guess_probability = serializers.FloatField(source="summary.guess_probability", default=None, allow_null=True)
    disputed = serializers.BooleanField(source="summary.disputed", default=False)
    dataset = serializers.CharField(read_only=True)
    emotion_suspicion = serializers.FloatField(
        source="summary.emotion_suspicion",
        default=None,
        allow_null=True,
        help_text="the label check: 1 - the probability that models which never saw this person give its label",
    )
    emotion_suggestion = serializers.CharField(
        source="summary.emotion_suggestion", default="", help_text="the class those models found likeliest"
    )
    excluded = serializers.BooleanField(
        source="summary.excluded", default=False, help_text="left out of training and exports by staff"
    )
    keypoints_suspicion = serializers.FloatField(
        source="summary.keypoints_suspicion",
        default=None,
        allow_null=True,
        help_text="the label check of points: mean distance (px) from what models that never saw this person place",
    )

    class Meta(FaceOutput.Meta):
        fields = [
            *FaceOutput.Meta.fields,
            "dataset",
            "guess",
            "guess_probability",
            "disputed",
            "emotion_suspicion",
            "emotion_suggestion",
            "excluded",
            "keypoints_suspicion",
        ]


def _page_labels(faces) -> dict:
    """The labels of a page of faces in two queries (not two per face): the context FaceOutput reads them from."""
    ids = [face.pk for face in faces]
    by_task = {task: selectors.labels_with_sources(task=task, face_ids=ids) for task in Task.values}
    found = {
        face_id: (
            {task: by_task[task].get(face_id, (None, None))[0] for task in Task.values},
            {task: by_task[task].get(face_id, (None, None))[1] for task in Task.values},
        )
        for face_id in ids
    }
    return {"labels_of": lambda face: found[face.pk]}


BROWSE_PARAMETERS = [
    OpenApiParameter(
        "q",
        str,
        description="search: a face id (123 or #123), else part of a file name or group, or a checksum's start",
    ),
    OpenApiParameter(
        "dataset", str, description=f"an imported file's name, or {UPLOADS_DATASET!r} for uploaded photos"
    ),
    OpenApiParameter("group", str, description="the person, session or photo (exact)"),
    OpenApiParameter("source", str, enum=Face.Source.values),
    OpenApiParameter("split", str, enum=Face.Split.values),
    OpenApiParameter(
        "state",
        str,
        enum=list(browse.STATES),
        description="review: waits for a reviewer; disputed: its labels name more than one emotion",
    ),
    OpenApiParameter("emotion", str, description=f"the current emotion label's class, or {browse.NONE!r}"),
    OpenApiParameter("guess", str, description=f"the newest emotion prediction's class, or {browse.NONE!r}"),
    OpenApiParameter("mismatch", str, enum=["true", "false"], description="label and guess differ (true) or agree"),
    OpenApiParameter("labeler", str, description="a username: faces this person labeled or reviewed"),
    OpenApiParameter("created_after", str, description="a date (2026-12-05) or an ISO date and time"),
    OpenApiParameter("created_before", str, description="a date (the whole day counts) or an ISO date and time"),
    OpenApiParameter("uncertainty_min", float, description="the emotion model's uncertainty, at least"),
    OpenApiParameter("uncertainty_max", float, description="the emotion model's uncertainty, at most"),
    OpenApiParameter("excluded", str, enum=["true", "false"], description="left out of training and exports"),
    OpenApiParameter("suspicion_min", float, description="the label check's suspicion, at least (0..1)"),
    OpenApiParameter("labeled", str, description="keypoints|emotion, or unlabeled:keypoints|unlabeled:emotion"),
    OpenApiParameter("photo", int, description="a face id: the faces found in the same picture, that one included"),
    OpenApiParameter("ids", str, description="comma-separated face ids (at most 1000): a selection"),
]


class FaceListApi(ListAPIView):
    """Faces, filtered and ordered as on the Faces page (the page's URL holds the same parameters)."""

    serializer_class = LabeledFaceOutput

    @extend_schema(
        parameters=[
            *BROWSE_PARAMETERS,
            OpenApiParameter(
                "ordering",
                str,
                enum=[f"{sign}{name}" for name in browse.ORDERINGS for sign in ("", "-")],
                description="default -id (newest first); a missing value sorts last either way",
            ),
        ]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        return browse.face_browse(self.request.query_params, viewer=self.request.user)

    def get_serializer(self, *args, **kwargs):
        if args and isinstance(args[0], list):
            kwargs["context"] = {**self.get_serializer_context(), **_page_labels(args[0])}
        return super().get_serializer(*args, **kwargs)


class FaceFacetsApi(APIView):
    """How many faces each value of each filter would show, the other filters applied (the Faces page's counts)."""

    @extend_schema(
        parameters=BROWSE_PARAMETERS,
        responses=inline_serializer(
            "FaceFacetsOutput",
            {
                name: serializers.DictField(child=serializers.IntegerField(), help_text=f"{name} -> faces")
                for name in browse.FACETS
            },
        ),
    )
    def get(self, request):
        return Response(browse.face_facets(request.query_params, viewer=request.user))


class FaceDetailApi(APIView):
    @extend_schema(responses=LabeledFaceOutput)
    def get(self, request, face_id: int):
        face = get_object_or_404(Face.objects.select_related("summary"), pk=face_id)
        data = LabeledFaceOutput(face, context=LABELS).data
        if hidden := selectors.blind_tasks(request.user, face):  # labeling blind: what others said stays unsaid
            for task in hidden:
                data["labels"][task] = data["label_sources"][task] = None
            data.update(disputed=False, emotion_suspicion=None, emotion_suggestion="", keypoints_suspicion=None)
        return Response(data)


class AnnotationApi(ListAPIView):
    """GET: the face's annotation history, newest first. POST: a correction (throttled like every write)."""

    serializer_class = AnnotationOutput
    pagination_class = None
    throttle_scope = "writes"

    def get_throttles(self):
        return [ScopedRateThrottle()] if self.request.method == "POST" else []

    def get_queryset(self):
        face = get_object_or_404(Face, pk=self.kwargs["face_id"])
        return selectors.annotation_history(face=face, viewer=self.request.user)

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
    labels = serializers.SerializerMethodField()

    def get_labels(self, obj) -> list[str] | None:
        """An emotion prediction's classes, in the order of its probabilities (its version's)."""
        from webapp.registry.selectors import version_labels

        return list(version_labels(obj.version)) if obj.task == Task.EMOTION else None

    class Meta:
        model = Prediction
        fields = [
            "id",
            "face",
            "task",
            "version",
            "version_number",
            "labels",
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
        version = serializers.IntegerField(
            help_text="id of the model version that made the prediction: the served one of its kind (staff: any)"
        )
        task = serializers.ChoiceField(choices=Task.choices, required=False, help_text="if sent, the version's kind")
        points = serializers.JSONField(required=False)
        probabilities = serializers.JSONField(required=False)
        uncertainty = serializers.FloatField(
            help_text="higher = less sure; orders the labeling queue. emotion: 1 - the top probability, in [0, 1]; "
            "keypoints: px of the 96 frame, at most its diagonal"
        )

    @extend_schema(responses=PredictionOutput(many=True))
    def get(self, request, face_id: int):
        """What the models said about the face, newest first."""
        face = get_object_or_404(Face, pk=face_id)
        rows = face.predictions.select_related("version").order_by("-created_at", "-id")[:200]
        return Response(PredictionOutput(rows, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: PredictionOutput})
    def post(self, request, face_id: int):
        face = get_object_or_404(Face, pk=face_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        version = ModelVersion.objects.filter(pk=values["version"]).first()
        if version is None:
            raise serializers.ValidationError({"version": [f"no model version {values['version']}"]})
        if not request.user.is_staff:  # a labeler's page records what the served models say of the faces it shows
            _check_browser_prediction(request.user, face, version)
        prediction = services.prediction_record(
            face=face,
            version=version,
            author=request.user,
            points=values.get("points"),
            probabilities=values.get("probabilities"),
            uncertainty=values["uncertainty"],
            task=values.get("task"),
        )
        return Response(PredictionOutput(prediction).data, status=status.HTTP_201_CREATED)


def _check_browser_prediction(user, face: Face, version: ModelVersion) -> None:
    """A labeler records a prediction as the app's pages do, and only so (the guess everyone sees and the queue's
    order come from it): of the served version of its kind, on a face the labeler holds (the label page) or added
    (an upload), or has just labeled. Staff may record any version's, on any face."""
    served = active_version(kind=version.kind)
    if served is None or served.pk != version.pk:
        now = f"v{served.number}" if served else "none"
        raise serializers.ValidationError(
            {"version": [f"{version.kind} v{version.number} is not the served {version.kind} version ({now})"]}
        )
    held = Lease.objects.filter(face=face, holder=user, expires_at__gt=timezone.now()).exists()
    # the label page records as it shows a face, and a quick save can release the lease before that call lands
    labeled = Annotation.objects.filter(face=face, author=user).exists()
    if not (held or labeled or face.created_by_id == user.pk):
        raise PermissionDenied(
            f"face {face.pk} is not held, labeled or added by you: its predictions are not yours to record"
        )


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
            OpenApiParameter(
                "face", int, description="lease this face instead of the queue's next (409 if another labeler holds it)"
            ),
        ],
        responses={
            409: OpenApiResponse(ErrorOutput, description="the face asked for is held by another labeler"),
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
            ),
        },
    )
    def get(self, request):
        task, exclude = _queue_params(request)
        asked = request.query_params.get("face")
        if asked:  # "Label this face": the face asked for, outside the queue's order
            if not asked.isdigit() or not 0 < int(asked) < 2**63:
                raise serializers.ValidationError({"face": [f"must be a face id, got {asked!r}"]})
            face = get_object_or_404(Face, pk=int(asked))
            try:
                lease = services.face_take(face=face, task=task, user=request.user)
            except services.FaceHeld as exc:
                raise Conflict(str(exc)) from None
        else:
            face, lease = services.queue_take(task=task, user=request.user, exclude=exclude)
        remaining, capped = selectors.queue_remaining(task=task)
        return Response(
            {
                # several labelers per face label blind: each is shown the model's guess, never another's label
                "face": FaceOutput(face, context=LABELS if settings.LABELS_PER_FACE < 2 else {}).data if face else None,
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
        from webapp.faces.labeling.agreement import agreement

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
                "face": FaceOutput(face, context=LABELS).data if face else None,
                "labels": labels,
                "consensus": selectors.consensus(task, list(labels.values())) if labels else None,
                "remaining": Face.objects.filter(**{f"review_{task}": True}).count(),
            }
        )


class FaceBulkApi(APIView):
    """One action on many faces (staff): the faces listed in ``ids``, or every face a filter of the face list shows
    (``filter``: the same parameters as GET /api/faces/, at most BULK_MAX_FACES)."""

    permission_classes = [IsStaff]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "writes"

    @extend_schema_serializer(component_name="FaceBulkInput")
    class InputSerializer(Input):
        action = serializers.ChoiceField(
            choices=services.BULK_ACTIONS,
            help_text="exclude: leave out of training and exports (soft, in the history); include: bring back; "
            "review: wait for a reviewer; queue_first: first in the labeling queues until labeled",
        )
        ids = serializers.ListField(
            child=serializers.IntegerField(min_value=1, max_value=2**63 - 1), required=False, max_length=100_000
        )
        filter = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False)
        task = serializers.ChoiceField(choices=Task.choices, required=False, help_text="review: for which task")
        note = serializers.CharField(required=False, default="", allow_blank=True, max_length=200)

    @extend_schema(
        request=InputSerializer,
        responses=inline_serializer(
            "FaceBulkOutput",
            {
                "action": serializers.CharField(),
                "selected": serializers.IntegerField(help_text="faces the ids or the filter named"),
                "changed": serializers.IntegerField(help_text="faces whose state this changed"),
            },
        ),
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if ("ids" in values) == ("filter" in values):
            raise serializers.ValidationError({"ids": ["send the faces as `ids`, or a face-list `filter`"]})
        if "ids" in values:
            ids = list(Face.objects.filter(pk__in=values["ids"]).values_list("pk", flat=True))
        else:
            qs = browse.browse_parse(values["filter"]).faces()
            ids = list(qs.values_list("pk", flat=True)[: settings.BULK_MAX_FACES + 1])
            if len(ids) > settings.BULK_MAX_FACES:
                raise serializers.ValidationError(
                    {"filter": [f"the filter shows more than {settings.BULK_MAX_FACES} faces: narrow it"]}
                )
        changed = services.faces_bulk(
            action=values["action"], face_ids=ids, author=request.user, task=values.get("task"), note=values["note"]
        )
        return Response({"action": values["action"], "selected": len(ids), "changed": changed})
