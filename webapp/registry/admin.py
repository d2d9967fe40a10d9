from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from webapp.pages.admin import ReadOnlyAdminMixin, StaffAdminMixin
from webapp.registry import services
from webapp.registry.models import ActiveVersion, ModelVersion, Promotion


@admin.register(ModelVersion)
class ModelVersionAdmin(StaffAdminMixin, admin.ModelAdmin):
    list_display = ["__str__", "kind", "number", "is_active", "parent", "created_at", "note"]
    list_filter = ["kind"]
    readonly_fields = [f.name for f in ModelVersion._meta.fields]
    actions = ["promote", "rollback_to"]

    @admin.display(boolean=True, description="active")
    def is_active(self, obj):
        return ActiveVersion.objects.filter(version=obj).exists()

    def has_add_permission(self, request):
        return False  # versions come from training runs only

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Promote the selected version (make it active)")
    def promote(self, request, queryset):
        self._each(request, queryset, lambda v: services.version_promote(version=v, author=request.user))

    @admin.action(description="Roll back to the selected version")
    def rollback_to(self, request, queryset):
        self._each(
            request, queryset, lambda v: services.version_rollback(kind=v.kind, author=request.user, to_version=v)
        )

    def _each(self, request, queryset, action):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version.", messages.ERROR)
            return
        version = queryset.get()
        try:
            action(version)
        except ValidationError as exc:
            self.message_user(request, "; ".join(exc.messages), messages.ERROR)
        else:
            self.message_user(request, f"{version} is now the active {version.kind} model.")


@admin.register(Promotion)
class PromotionAdmin(StaffAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "kind", "action", "from_version", "to_version", "author", "reason"]
    list_filter = ["kind", "action"]
    readonly_fields = [f.name for f in Promotion._meta.fields]


@admin.register(ActiveVersion)
class ActiveVersionAdmin(StaffAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Move the pointer with the promote / roll back actions on versions, which log the move."""

    list_display = ["kind", "version", "updated_at"]
