import pytest
from django.test import Client

from tests import factories
from webapp.faces.labeling.services import annotation_submit
from webapp.registry import services
from webapp.registry.models import ActiveVersion, ModelVersion

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(media, staff):
    staff.is_superuser = True
    staff.save()
    client = Client()
    client.force_login(staff)
    return client


def test_face_page_shows_the_annotation_history_read_only(admin_client):
    face = factories.face()
    annotation_submit(face=face, author=None, emotion="sad")
    annotation_submit(face=face, author=None, emotion="happiness")
    page = admin_client.get(f"/admin/faces/face/{face.pk}/change/").content.decode()
    assert page.count("human") >= 2 and "sad" in page and "happiness" in page
    # the face itself, with its current points drawn over it, not a file path
    annotation_submit(face=face, author=None, points=factories.points(3))
    page = admin_client.get(f"/admin/faces/face/{face.pk}/change/").content.decode()
    assert f'href="/api/faces/{face.pk}/image/"' in page and page.count("<circle") == 15 and "<line" in page
    assert "Emotion: happiness" in page
    assert admin_client.get("/admin/faces/annotation/add/").status_code == 403
    # read-only as the page says: no Save, Delete or Add, even for a superuser, and a title without a stray colon
    assert 'name="_save"' not in page and "/delete/" not in page
    assert admin_client.get("/admin/faces/face/add/").status_code == 403
    assert admin_client.post(f"/admin/faces/face/{face.pk}/change/", {"split": "val"}).status_code == 403
    assert str(face).endswith(f"({face.source} {face.source_name})") and not str(face).endswith(":)")


def test_promote_and_rollback_admin_actions(admin_client, tiny_exports):
    import shutil

    baseline = {v.kind: v for v in services.baseline_register()}
    staging = services.staging_dir("emotion")
    shutil.rmtree(staging)
    shutil.copytree(tiny_exports / "emotion", staging)
    v2 = services.version_register(kind="emotion", export_dir=staging, metrics={}, trained_on={})
    url = "/admin/registry/modelversion/"
    admin_client.post(url, {"action": "promote", "_selected_action": [v2.pk]})
    assert ActiveVersion.objects.get(kind="emotion").version == v2
    admin_client.post(url, {"action": "rollback_to", "_selected_action": [baseline["emotion"].pk]})
    assert ActiveVersion.objects.get(kind="emotion").version == baseline["emotion"]
    response = admin_client.post(
        url, {"action": "promote", "_selected_action": [v.pk for v in ModelVersion.objects.all()]}, follow=True
    )
    assert "Select exactly one version." in response.content.decode()


@pytest.mark.parametrize(
    "path", ["/admin/", "/admin/faces/face/", "/admin/registry/modelversion/", "/admin/training/trainingrun/"]
)
def test_staff_who_are_not_superusers_see_the_admins_rows(media, staff, path):
    client = Client()
    client.force_login(staff)  # is_staff, not a superuser, no per-model permission
    factories.face()
    assert client.get(path).status_code == 200


def test_a_labeler_opening_the_admin_is_told_it_is_for_staff(media):
    client = Client()
    labeler = factories.user("labeler", "lena")
    client.force_login(labeler)
    response = client.get("/admin/", follow=True)
    page = response.content.decode()
    assert response.status_code == 200 and "The admin is for staff" in page and "signed in as lena" in page
