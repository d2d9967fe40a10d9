from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from ml.schema import SKELETON
from webapp.faces.models import Annotation, Face, Prediction
from webapp.pages.admin import ReadOnlyAdminMixin, StaffAdminMixin


class ReadOnlyInline(ReadOnlyAdminMixin, admin.TabularInline):
    extra = 0
    can_delete = False


class AnnotationInline(ReadOnlyInline):
    model = Annotation
    fields = ["created_at", "origin", "author", "emotion", "skip", "points"]
    readonly_fields = fields
    ordering = ["-created_at"]


@admin.register(Face)
class FaceAdmin(StaffAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """A face and its history, read-only: faces come from imports and uploads, labels from the label page."""

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
    readonly_fields = ["preview", *[f.name for f in Face._meta.fields]]
    inlines = [AnnotationInline]

    @admin.display(description="face and current labels")
    def preview(self, face: Face):
        """The 96x96 face at 3x with its current keypoints drawn (an SVG over the image) and its current emotion."""
        from webapp.faces.labeling.selectors import face_labels

        labels = face_labels(face)
        points, emotion = labels["keypoints"], labels["emotion"]
        scale = 3
        lines = format_html_join(
            "",
            '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#35e0a1" stroke-width="1.5"/>',
            (
                tuple((points[i][axis] + 0.5) * scale for i in (a, b) for axis in ("x", "y"))
                for a, b in (SKELETON if points else [])
            ),
        )
        dots = format_html_join(
            "",
            '<circle cx="{}" cy="{}" r="3.5" fill="{}"/>',
            (
                ((p["x"] + 0.5) * scale, (p["y"] + 0.5) * scale, "#35e0a1" if p.get("visible", True) else "#ff6b6b")
                for p in (points or [])
            ),
        )
        size = 96 * scale
        return format_html(
            '<svg width="{}" height="{}" viewBox="0 0 {} {}" role="img" aria-label="face {}">'
            '<image href="{}" width="{}" height="{}" style="image-rendering: pixelated"/>{}{}</svg>'
            "<p>Emotion: {} · keypoints: {}</p>",
            size,
            size,
            size,
            size,
            face.pk,
            reverse("face-image", args=[face.pk]),
            size,
            size,
            lines,
            dots,
            emotion if emotion is not None else "none",
            "15 points" if points else "none",
        )


@admin.register(Annotation)
class AnnotationAdmin(StaffAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """A correction is a new row, made in the labeling page or the API."""

    list_display = ["id", "face", "origin", "author", "emotion", "skip", "created_at"]
    list_filter = ["origin", "emotion", "skip"]
    readonly_fields = [f.name for f in Annotation._meta.fields]


@admin.register(Prediction)
class PredictionAdmin(AnnotationAdmin):
    list_display = ["id", "face", "task", "version", "uncertainty", "created_at"]
    list_filter = ["task"]
    readonly_fields = [f.name for f in Prediction._meta.fields]
