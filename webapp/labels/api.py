"""The label set: read by anyone (the demo and the label page show its classes), changed by staff."""

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.permissions import SAFE_METHODS, AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from ml.schema import PRESETS
from webapp.common.models import Task
from webapp.labels import selectors, services
from webapp.pages.permissions import IsStaff
from webapp.pages.serializers import Input


class LabelSetOutput(serializers.Serializer):
    task = serializers.CharField()
    labels = serializers.ListField(child=serializers.CharField(), help_text="the classes, in display order")
    retired = serializers.ListField(
        child=serializers.CharField(), help_text="classes once in the set; their stored labels keep their key"
    )
    presets = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))
    changed_at = serializers.DateTimeField(allow_null=True)
    changed_by = serializers.CharField(allow_null=True)


def _output(task: str) -> dict:
    current = selectors.label_set(task=task)
    change = current.change
    return {
        "task": task,
        "labels": list(current.labels),
        "retired": list(current.retired),
        "presets": {name: list(labels) for name, labels in PRESETS.items()},
        "changed_at": change.created_at if change and change.pk else None,
        "changed_by": change.author.username if change and change.pk and change.author else None,
    }


class BoundedListField(serializers.ListField):
    """A ListField that checks its length before it validates each item: the limit holds before the work."""

    def to_internal_value(self, data):
        if self.max_length is not None and hasattr(data, "__len__") and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().to_internal_value(data)


class LabelSetApi(APIView):
    def get_permissions(self):
        return [AllowAny()] if self.request.method in SAFE_METHODS else [IsStaff()]

    @extend_schema_serializer(component_name="LabelSetInput")
    class InputSerializer(Input):
        labels = BoundedListField(
            child=serializers.CharField(max_length=40),
            max_length=services.MAX_CLASSES,
            required=False,
            help_text="the whole set in display order: a new name adds a class, a missing one retires it",
        )
        preset = serializers.ChoiceField(choices=list(PRESETS), required=False, help_text="instead of labels")

        def validate(self, attrs):
            if ("labels" in attrs) == ("preset" in attrs):
                raise serializers.ValidationError("send labels or preset (one of them)")
            return attrs

    @extend_schema(responses=LabelSetOutput)
    def get(self, request, task: str):
        return Response(_output(_task(task)))

    @extend_schema(request=InputSerializer, responses=LabelSetOutput)
    def put(self, request, task: str):
        task = _task(task)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if "preset" in data.validated_data:
            services.labelset_preset(task=task, preset=data.validated_data["preset"], author=request.user)
        else:
            services.labelset_change(task=task, labels=data.validated_data["labels"], author=request.user)
        return Response(_output(task))


def _task(task: str) -> str:
    if task != Task.EMOTION:
        raise NotFound(f"no label set {task!r}: only {Task.EMOTION} has one")
    return task
