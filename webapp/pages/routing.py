from django.http import HttpResponseNotAllowed
from django.views.decorators.csrf import csrf_exempt


def by_method(**views):
    """One URL, one view per operation: GET -> list view, POST -> create view (DRF still enforces CSRF)."""
    handlers = {method.upper(): view.as_view() for method, view in views.items()}

    @csrf_exempt  # DRF's SessionAuthentication performs the CSRF check itself
    def dispatch(request, *args, **kwargs):
        handler = handlers.get(request.method) or (
            handlers.get("GET") if request.method in ("HEAD", "OPTIONS") else None
        )
        if handler is None:
            return HttpResponseNotAllowed(list(handlers))
        return handler(request, *args, **kwargs)

    return dispatch
