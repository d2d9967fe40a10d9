"""Roles: anonymous (demo + manifest), labeler (group "labelers", or staff), staff (is_staff)."""

from rest_framework.permissions import BasePermission

LABELERS_GROUP = "labelers"


def is_labeler(user) -> bool:
    if not (user and user.is_authenticated):
        return False
    if user.is_staff:
        return True
    known = getattr(user, "in_labelers_group", None)  # read with the token (webapp.pages.authentication)
    return known if known is not None else user.groups.filter(name=LABELERS_GROUP).exists()


class IsLabeler(BasePermission):
    message = "Labelers only: sign in with an account in the 'labelers' group."

    def has_permission(self, request, view) -> bool:
        return is_labeler(request.user)


class IsStaff(BasePermission):
    message = "Staff only."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)
