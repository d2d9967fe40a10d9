"""The API's pagination: LimitOffset with bounds, so an absurd limit or offset is a 400, not a database error."""

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination

MAX_OFFSET = 2**62  # past any table; SQLite and PostgreSQL integers end at 2**63 - 1


class Pagination(LimitOffsetPagination):
    max_limit = 1000

    def _read(self, request, name: str, default, cutoff: int | None):
        raw = request.query_params.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
            if value < 0 or (name == "limit" and value == 0) or value > MAX_OFFSET:
                raise ValueError
        except ValueError:
            low = 1 if name == "limit" else 0
            raise ValidationError(
                {name: [f"must be a whole number from {low} to {cutoff or MAX_OFFSET}, got {raw!r}"]}
            ) from None
        return min(value, cutoff) if cutoff else value

    def get_limit(self, request):
        return self._read(request, self.limit_query_param, self.default_limit, self.max_limit)

    def get_offset(self, request):
        return self._read(request, self.offset_query_param, 0, None)
