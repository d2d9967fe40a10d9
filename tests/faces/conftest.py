import pytest
from rest_framework.test import APIClient

from tests import factories


@pytest.fixture
def labeler(db):
    return factories.user("labeler")


@pytest.fixture
def staff(db):
    return factories.user("staff")


@pytest.fixture
def client_for(db):
    """APIClient logged in as a role: anonymous, outsider (signed in, no role), labeler or staff."""

    def make(role: str) -> APIClient:
        client = APIClient()
        if role != "anonymous":
            client.force_authenticate(factories.user(role if role != "outsider" else "none"))
        return client

    return make
