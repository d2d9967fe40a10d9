"""One error shape for the whole API: {"detail": "...", "errors": {field: [messages]}} with a fitting status."""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, AuthenticationFailed, ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class ServiceUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "A service this request needs is not available; try again later."
    default_code = "service_unavailable"

    def __init__(self, detail=None, *, retry_after: int | None = None):
        super().__init__(detail)
        self.retry_after = retry_after  # seconds, sent as Retry-After


class Unprocessable(APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "The request was understood but holds nothing that can be processed."
    default_code = "unprocessable"


class ErrorOutput(serializers.Serializer):
    """The API's error body (documented for the responses that are errors by design)."""

    detail = serializers.CharField()
    errors = serializers.DictField(required=False)


class TooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


def exception_handler(exc, context):
    if isinstance(exc, RequestDataTooBig):  # Django's own check, met while DRF reads the body
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        detail = f"Request body too large: at most {limit:,} bytes (uploads: {settings.UPLOAD_MAX_BYTES:,} per file)."
        return Response({"detail": detail}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        return Response({"detail": f"Malformed request: {exc}"}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, DjangoValidationError):
        # Services raise Django's ValidationError; the API turns it into a 400 naming the fields.
        exc = ValidationError(exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages})
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, AuthenticationFailed):
        # credentials were sent and are wrong (a bad or revoked token): 401 with the scheme to use, on every endpoint,
        # public ones included. DRF answers 403 here because the session scheme comes first and names no challenge;
        # a request with no credentials at all still gets 403 where a role is needed.
        response.status_code = status.HTTP_401_UNAUTHORIZED
        response["WWW-Authenticate"] = 'Token realm="api"'
    if getattr(exc, "retry_after", None):
        response["Retry-After"] = str(exc.retry_after)
    data = response.data
    if isinstance(exc, ValidationError):
        errors = data if isinstance(data, dict) else {"non_field_errors": data}
        first = next(iter(errors.items()), ("", [""]))
        message = first[1][0] if isinstance(first[1], list) and first[1] else first[1]
        label = "" if first[0] in ("detail", "non_field_errors") else f"{first[0]}: "
        response.data = {"detail": f"{label}{message}", "errors": errors}
    elif isinstance(data, dict) and "detail" in data:
        response.data = {**data, "detail": str(data["detail"])}
    return Response(response.data, status=response.status_code, headers=response.headers)


def kind_param(request) -> str:
    """``?kind=`` of a list: one of the model kinds, else a 400 naming them (not an empty list that looks like data)."""
    from webapp.common.models import Task

    kind = request.query_params.get("kind", "")
    if kind not in Task.values:
        raise ValidationError({"kind": [f"must be one of {', '.join(Task.values)}, got {kind!r}"]})
    return kind
