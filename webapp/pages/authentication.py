"""Token authentication that reads, with the token, what the permission of every API call needs."""

from django.contrib.auth.models import Group
from django.db.models import Exists, OuterRef
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions

from webapp.pages.permissions import LABELERS_GROUP


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's TokenAuthentication, plus whether the user is in the labelers group in the same query (``IsLabeler``
    would ask the database again on every request: the labeling API is called twice per face)."""

    def authenticate_credentials(self, key):
        labeler = Exists(Group.objects.filter(name=LABELERS_GROUP, user=OuterRef("user")))
        token = self.get_model().objects.select_related("user").annotate(labeler=labeler).filter(key=key).first()
        if token is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        token.user.in_labelers_group = token.labeler
        return token.user, token
