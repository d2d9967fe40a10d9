"""The API docs page works offline: Swagger UI comes from an installed package, never from a CDN."""

import re

import pytest

pytestmark = pytest.mark.django_db


def test_the_docs_page_loads_swagger_ui_from_this_server(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any("swagger-ui" in s for s in sources), sources
    assert all(not s.startswith(("http://", "https://", "//")) for s in sources), sources
    from django.conf import settings
    from django.contrib.staticfiles import finders

    bundle = next(s for s in sources if s.endswith("swagger-ui-bundle.js"))
    assert bundle.startswith(settings.STATIC_URL) and finders.find(bundle.removeprefix(settings.STATIC_URL))


def test_every_api_route_and_method_is_in_the_schema(client):
    """A route the schema leaves out is invisible to clients and to the fuzzing step (it happened: by_method)."""
    import yaml

    from webapp.urls import api

    paths = yaml.safe_load(client.get("/api/schema/").content)["paths"]
    for pattern in api:
        route = "/api/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(pattern.pattern))
        if route in ("/api/schema/", "/api/docs/"):
            continue
        assert route in paths, route
        view = pattern.callback.cls
        methods = {m for m in ("get", "post", "put", "patch", "delete") if hasattr(view, m)}
        assert methods <= set(paths[route]), (route, methods, set(paths[route]))


def test_the_emotion_a_client_sends_is_documented_as_the_label_sets_classes(client):
    import yaml

    from webapp.labels.services import labelset_add

    labelset_add(names=["contempt"])
    schema = yaml.safe_load(client.get("/api/schema/").content)
    emotion = schema["components"]["schemas"]["AnnotationSubmitInputRequest"]["properties"]["emotion"]
    assert emotion["enum"][-1] == "contempt" and "neutral" in emotion["enum"]
