from django.contrib import admin

from webapp.faces.models import Annotation, Face, Prediction
from webapp.pages.admin import ReadOnlyAdminMixin


class ReadOnlyInline(ReadOnlyAdminMixin, admin.TabularInline):
    extra = 0
    can_delete = False


class AnnotationInline(ReadOnlyInline):
    model = Annotation
    fields = ["created_at", "origin", "author", "emotion", "skip", "points"]
    readonly_fields = fields
    ordering = ["-created_at"]


@admin.register(Face)
class FaceAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "source",
        "source_name",
        "source_line",
        "split",
        "human_keypoints",
        "human_emotion",
        "created_at",
    ]
    list_filter = ["source", "split", "human_keypoints", "human_emotion"]
    search_fields = ["checksum", "source_name"]
    readonly_fields = [f.name for f in Face._meta.fields]
    inlines = [AnnotationInline]


@admin.register(Annotation)
class AnnotationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """A correction is a new row, made in the labeling page or the API."""

    list_display = ["id", "face", "origin", "author", "emotion", "skip", "created_at"]
    list_filter = ["origin", "emotion", "skip"]
    readonly_fields = [f.name for f in Annotation._meta.fields]


@admin.register(Prediction)
class PredictionAdmin(AnnotationAdmin):
    list_display = ["id", "face", "task", "version", "uncertainty", "created_at"]
    list_filter = ["task"]
    readonly_fields = [f.name for f in Prediction._meta.fields]
