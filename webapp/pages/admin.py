class ReadOnlyAdminMixin:
    """History is shown, never edited in the admin: rows change only through the services."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class StaffAdminMixin:
    """Every staff user sees the project's rows in the admin (the roles are staff and labelers, not Django's
    per-model permissions); what a superuser may change stays as Django decides."""

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff
