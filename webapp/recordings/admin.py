from django.contrib import admin

from webapp.recordings.models import Recording, Track


class TrackInline(admin.TabularInline):
    model = Track
    extra = 0
    fields = ["number", "name"]
    readonly_fields = ["number"]


@admin.register(Recording)
class RecordingAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "source", "status", "duration_s", "frames_analysed", "created_by", "created_at"]
    list_filter = ["source", "status"]
    search_fields = ["name", "tracks__name", "checksum"]
    readonly_fields = [f.name for f in Recording._meta.fields]
    inlines = [TrackInline]
