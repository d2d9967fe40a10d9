"""Rows for tests, made through the services so every invariant holds."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import numpy as np
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from PIL import Image

from ml.schema import DEFAULT_LABELS
from tests.csvs import synthetic_face
from webapp.faces.store.services import face_upload
from webapp.pages.permissions import LABELERS_GROUP

_counter = itertools.count(1)


def user(role: str = "labeler", name: str | None = None):
    name = name or f"{role}{next(_counter)}"
    account = get_user_model().objects.create_user(name, password="pw", is_staff=role == "staff")
    if role == "labeler":
        account.groups.add(Group.objects.get_or_create(name=LABELERS_GROUP)[0])
    return account


def png(seed: int = 0, size: tuple[int, int] = (96, 96), mode: str = "L", fmt: str = "PNG") -> bytes:
    image = Image.fromarray(synthetic_face(seed)[0]).resize(size).convert(mode)
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def face(seed: int | None = None, author=None):
    seed = next(_counter) if seed is None else seed
    return face_upload(data=png(seed), filename=f"face{seed}.png", author=author)[0][0]


def points(seed: int = 0) -> list[dict]:
    return [{"x": float(x), "y": float(y), "visible": True} for x, y in synthetic_face(seed)[1]]


def probabilities(top: int = 3, classes: int = len(DEFAULT_LABELS)) -> list[float]:
    p = np.full(classes, 0.4 / (classes - 1))
    p[top] = 0.6
    return p.tolist()


def version(kind: str = "emotion", labels=DEFAULT_LABELS):
    """A registered version with only its manifest on disk (what the API reads of it), not its weights."""
    import json

    from django.conf import settings

    from ml.schema import manifest_fields
    from webapp.registry.models import ModelVersion

    number = ModelVersion.objects.filter(kind=kind).count() + 1
    made = ModelVersion.objects.create(kind=kind, number=number, artifact_dir=f"{kind}/v{number}")
    directory = Path(settings.MODELS_ROOT) / made.artifact_dir
    directory.mkdir(parents=True, exist_ok=True)
    fields = manifest_fields(kind, labels if kind == "emotion" else None)
    (directory / "manifest.json").write_text(json.dumps(fields))
    return made


def points_array(seed: int = 0) -> np.ndarray:
    """The 15 points of ``synthetic_face(seed)`` as a (15, 2) array in its 96x96 pixels."""
    return np.asarray(synthetic_face(seed)[1], float)
