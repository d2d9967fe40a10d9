from django.contrib import admin, messages

from webapp.pages.admin import StaffAdminMixin
from webapp.training import services
from webapp.training.models import TrainingRun


@admin.register(TrainingRun)
class TrainingRunAdmin(StaffAdminMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "kind",
        "status",
        "epoch",
        "epochs",
        "val_loss",
        "version",
        "promoted",
        "requested_by",
        "created_at",
    ]
    list_filter = ["kind", "status"]
    readonly_fields = [f.name for f in TrainingRun._meta.fields]
    actions = ["retrain_same_kind", "cancel"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Retrain these kinds (fine-tune the active version)")
    def retrain_same_kind(self, request, queryset):
        for kind in sorted(set(queryset.values_list("kind", flat=True))):
            try:
                run, created = services.run_request(kind=kind, user=request.user, trigger="admin")
            except services.BrokerUnavailable as exc:
                self.message_user(request, f"Retraining is unavailable: {exc}", messages.ERROR)
                return
            verb = "started" if created else f"already {run.status}"
            self.message_user(request, f"{kind}: run {run.pk} {verb}.")

    @admin.action(description="Cancel the selected runs")
    def cancel(self, request, queryset):
        for run in queryset:
            if run.is_active:
                services.run_cancel(run=run)
        self.message_user(request, "Cancellation requested.")
