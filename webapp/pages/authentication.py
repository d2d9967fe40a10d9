"""Token authentication that reads, with the token, what the permission of every API call needs."""

from functools import cache

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connections, router
from django.db.models import BooleanField
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from webapp.pages.permissions import LABELERS_GROUP

# What a request's permissions read of its user; anything else is loaded when first asked for (a deferred field).
USER_FIELDS = ("id", "username", "is_active", "is_staff", "is_superuser")


@cache
def _lookup() -> tuple[str, list[str], list[bool]]:
    """One SELECT: the token's user (``USER_FIELDS``) and whether they are in the labelers group.

    Written out once from the models' metadata rather than built by the ORM on every request: building and compiling
    the equivalent queryset (a join and an EXISTS) cost more CPU than the rest of a labeling request's authentication,
    a tenth of the whole request (bench/profile_labeling.py).
    """
    from rest_framework.authtoken.models import Token

    User = get_user_model()
    membership = User.groups.through._meta
    q = connections[router.db_for_read(Token)].ops.quote_name
    pk = q(User._meta.pk.column)
    fields = [f for f in User._meta.concrete_fields if f.attname in USER_FIELDS]  # from_db wants the model's order
    columns = ", ".join(f"u.{q(f.column)}" for f in fields)
    sql = (
        f"SELECT {columns}, EXISTS(SELECT 1 FROM {q(membership.db_table)} m"
        f" INNER JOIN {q(Group._meta.db_table)} g ON g.{q('id')} = m.{q('group_id')}"
        f" WHERE m.{q('user_id')} = u.{pk} AND g.{q('name')} = %s)"
        f" FROM {q(Token._meta.db_table)} t INNER JOIN {q(User._meta.db_table)} u ON u.{pk} = t.{q('user_id')}"
        f" WHERE t.{q('key')} = %s"
    )
    return sql, [f.attname for f in fields], [isinstance(f, BooleanField) for f in fields]


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's TokenAuthentication (same checks, same errors), plus whether the user is in the labelers group, in one
    query (``IsLabeler`` would ask the database again on every request: the labeling API is called twice per face)."""

    def authenticate_credentials(self, key):
        Token = self.get_model()
        using = router.db_for_read(Token)
        sql, names, booleans = _lookup()
        with connections[using].cursor() as cursor:
            cursor.execute(sql, [LABELERS_GROUP, key])
            row = cursor.fetchone()
        if row is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        *values, labeler = row
        values = [bool(v) if boolean else v for v, boolean in zip(values, booleans, strict=True)]  # SQLite: 0/1
        user = get_user_model().from_db(using, names, values)
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        user.in_labelers_group = bool(labeler)
        token = Token.from_db(using, ["key", "user_id"], [key, user.pk])  # "created" is read if someone asks
        token.user = user
        return user, token


class ThrottledBasicAuthentication(authentication.BasicAuthentication):
    """HTTP basic auth (Label Studio's ML backend connection) whose wrong passwords are limited per client address.

    DRF checks throttles only after a request has authenticated, so a throttle never sees a failed password; this
    counts the failures itself, at the token sign-in's rate (THROTTLE_LOGIN), in the shared cache, and answers 429
    once they reach it.
    """

    def authenticate_credentials(self, userid, password, request=None):
        from django.conf import settings
        from django.core.cache import cache

        from webapp.common.throttling import client_address

        number, period = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["login"].split("/")
        limit, seconds = int(number), {"s": 1, "m": 60, "h": 3600, "d": 86400}[period[0]]  # DRF's rate format
        address = client_address(request) if request is not None else "unknown"
        key = f"basic-auth-failures:{address}"
        if cache.get(key, 0) >= limit:
            raise exceptions.Throttled(wait=seconds, detail="Too many wrong passwords from this address.")
        try:
            return super().authenticate_credentials(userid, password, request)
        except exceptions.AuthenticationFailed:
            if not cache.add(key, 1, seconds):
                cache.incr(key)
            raise


class ThrottledBasicScheme(OpenApiAuthenticationExtension):
    """The OpenAPI security scheme of ThrottledBasicAuthentication: plain HTTP basic."""

    target_class = ThrottledBasicAuthentication
    name = "basicAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "basic"}
