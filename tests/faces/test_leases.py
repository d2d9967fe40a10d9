"""Labeling as a team: the queue leases each face to one labeler at a time."""

import concurrent.futures
from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from tests import factories
from webapp.faces.models import Annotation, Lease

pytestmark = pytest.mark.django_db


def _next(client, task="keypoints", exclude=""):
    return client.get(f"/api/queue/next/?task={task}&exclude={exclude}").json()


def test_two_labelers_get_different_faces_and_a_reload_gets_the_same_one(client_for):
    faces = [factories.face() for _ in range(3)]
    ann, bob = client_for("labeler"), client_for("labeler")
    first = _next(ann)
    assert first["face"]["id"] == faces[0].pk and first["lease"]["seconds"] == 120
    assert _next(bob)["face"]["id"] == faces[1].pk  # not the face Ann holds
    assert _next(ann)["face"]["id"] == faces[0].pk  # Ann reloads the page: her face, renewed
    # Ann skips: her face goes back to the queue at once, and she gets the next free one
    assert _next(ann, exclude=str(faces[0].pk))["face"]["id"] == faces[2].pk
    assert _next(client_for("labeler"))["face"]["id"] == faces[0].pk


def test_an_expired_lease_returns_the_face_to_the_queue(client_for):
    face = factories.face()
    ann, bob = client_for("labeler"), client_for("labeler")
    assert _next(ann)["face"]["id"] == face.pk
    assert _next(bob)["face"] is None  # the only face is held
    Lease.objects.filter(face=face).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert _next(bob)["face"]["id"] == face.pk
    assert Lease.objects.get(face=face).holder.username != "" and Lease.objects.count() == 1


def test_renew_release_and_save(client_for):
    face, other = factories.face(), factories.face()
    ann, bob = client_for("labeler"), client_for("labeler")
    _next(ann)
    lease = Lease.objects.get(face=face)
    lease.expires_at = timezone.now() + timedelta(seconds=5)
    lease.save()
    renewed = ann.post(f"/api/faces/{face.pk}/lease/?task=keypoints")
    assert renewed.status_code == 200 and Lease.objects.get(face=face).expires_at > lease.expires_at
    taken = bob.post(f"/api/faces/{face.pk}/lease/?task=keypoints")
    assert taken.status_code == 409 and "someone else" in taken.json()["detail"]
    assert ann.delete(f"/api/faces/{face.pk}/lease/").status_code == 204 and not Lease.objects.exists()
    assert _next(bob)["face"]["id"] == face.pk
    saved = bob.post(f"/api/faces/{face.pk}/annotations/", {"points": factories.points(1)}, format="json")
    assert saved.status_code == 201 and not Lease.objects.filter(face=face).exists()  # saved: released
    assert _next(ann)["face"]["id"] == other.pk  # Bob's labeled face is no longer first in the queue


@pytest.mark.django_db(transaction=True)
def test_concurrent_labelers_never_share_a_face(live_server):
    from rest_framework.authtoken.models import Token

    faces = [factories.face() for _ in range(40)]
    tokens = [Token.objects.create(user=factories.user("labeler")).key for _ in range(12)]

    def work(token):
        served = []
        with requests.Session() as session:
            session.headers["Authorization"] = f"Token {token}"
            for _ in range(3):  # each takes a face, "labels" it, takes the next
                body = session.get(f"{live_server.url}/api/queue/next/?task=emotion", timeout=30).json()
                served.append(body["face"]["id"])
                saved = session.post(
                    f"{live_server.url}/api/faces/{served[-1]}/annotations/", json={"emotion": "sad"}, timeout=30
                )
                assert saved.status_code == 201, saved.text
        return served

    with concurrent.futures.ThreadPoolExecutor(len(tokens)) as pool:
        served = [face for batch in pool.map(work, tokens) for face in batch]
    assert len(served) == 36 and len(set(served)) == 36, sorted(served)  # no face went to two labelers
    assert Annotation.objects.filter(origin="human").count() == 36 and not Lease.objects.exists()
    assert set(served) <= {f.pk for f in faces}


def test_a_save_on_a_face_another_labeler_holds_is_refused_and_stores_nothing(client_for):
    """The queue promised the face to Ann: Bob's save gets a 409 that says who holds it and until when; Ann's goes
    through; once her lease has expired (or she saved), Bob's would too. A reviewer's decision is never refused."""
    face = factories.face()
    ann, bob = client_for("labeler"), client_for("labeler")
    assert _next(ann, task="emotion")["face"]["id"] == face.pk
    refused = bob.post(f"/api/faces/{face.pk}/annotations/", {"emotion": "sad"}, format="json")
    assert refused.status_code == 409 and "is being labeled by" in refused.json()["detail"]
    assert "(emotion)" in refused.json()["detail"] and not Annotation.objects.filter(face=face, origin="human").exists()
    # a lease for the other task does not hold this one
    assert (
        bob.post(f"/api/faces/{face.pk}/annotations/", {"points": factories.points(1)}, format="json").status_code
        == 201
    )
    assert bob.post(f"/api/faces/{face.pk}/annotations/", {"skip": True}, format="json").status_code == 409
    assert (
        client_for("staff")
        .post(f"/api/faces/{face.pk}/annotations/", {"emotion": "happiness", "review": True}, format="json")
        .status_code
        == 201
    )
    assert ann.post(f"/api/faces/{face.pk}/annotations/", {"emotion": "anger"}, format="json").status_code == 201
    assert not Lease.objects.filter(face=face).exists()  # Ann's save let go of her lease
    assert bob.post(f"/api/faces/{face.pk}/annotations/", {"emotion": "sad"}, format="json").status_code == 201
