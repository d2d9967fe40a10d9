import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def tiny_exports(tmp_path_factory) -> Path:
    """Untrained exports of both real architectures, laid out like models/baseline/ (emotion in uint8, as shipped)."""
    from ml.export import export_tfjs
    from ml.models import BUILDERS
    from ml.schema import DEFAULT_LABELS

    root = tmp_path_factory.mktemp("baseline")
    for task, build in BUILDERS.items():
        quantize = "uint8" if task == "emotion" else None
        labels = DEFAULT_LABELS if task == "emotion" else None
        export_tfjs(build(), root / task, task=task, quantize=quantize, metrics={"task": task, "n": 0}, labels=labels)
    return root


@pytest.fixture
def media(settings, tmp_path, tiny_exports):
    """Every Django test gets its own media, models and baseline directories."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MODELS_ROOT = tmp_path / "models"
    settings.BASELINE_MODELS_DIR = tiny_exports
    settings.VAR_DIR = tmp_path
    return tmp_path


@pytest.fixture
def labeler(db):
    from tests import factories

    return factories.user("labeler")


@pytest.fixture
def staff(db):
    from tests import factories

    return factories.user("staff")


@pytest.fixture
def client_for(db):
    """APIClient logged in as a role: anonymous, outsider (signed in, no role), labeler or staff."""
    from rest_framework.test import APIClient

    from tests import factories

    def make(role: str) -> APIClient:
        client = APIClient()
        if role != "anonymous":
            client.force_authenticate(factories.user(role if role != "outsider" else "none"))
        return client

    return make
