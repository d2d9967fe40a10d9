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
