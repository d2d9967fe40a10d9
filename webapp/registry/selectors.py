from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.templatetags.static import static
from django.urls import reverse

from ml.align import DATA_FRAMINGS, pipeline_manifest
from ml.schema import TASKS
from ml.video import tracking_manifest
from webapp.registry.models import ActiveVersion, ModelVersion


def version_dir(version: ModelVersion) -> Path:
    return Path(settings.MODELS_ROOT) / version.artifact_dir


def active_version(*, kind: str) -> ModelVersion | None:
    pointer = ActiveVersion.objects.select_related("version").filter(kind=kind).first()
    return pointer.version if pointer else None


def version_manifest(version: ModelVersion) -> dict:
    """What the browser needs about one version: the export's manifest.json plus where to fetch model.json."""
    path = version_dir(version) / "manifest.json"
    exported = json.loads(path.read_text()) if path.is_file() else {}
    exported.pop("history", None)
    exported.setdefault("framing", DATA_FRAMINGS[version.kind].to_dict())  # exports from before framings
    return {
        **exported,
        "id": version.pk,
        "kind": version.kind,
        "version": version.number,
        "model_url": reverse(
            "model-file", kwargs={"kind": version.kind, "name": Path(version.artifact_dir).name, "path": "model.json"}
        ),
        "metrics": {k: v for k, v in version.metrics.items() if not isinstance(v, dict | list)},
    }


def version_labels(version: ModelVersion) -> list[str]:
    """The classes of an emotion version's outputs, in order (its manifest's)."""
    labels = version_manifest(version).get("labels")
    if not labels:
        raise ValueError(f"{version} has no labels in its manifest")
    return labels


def newest_version_with_labels(*, kind: str, labels) -> ModelVersion | None:
    """The newest registered version whose outputs are exactly ``labels`` (a label set's own model)."""
    for version in ModelVersion.objects.filter(kind=kind).order_by("-number"):
        if version_manifest(version).get("labels") == list(labels):
            return version
    return None


def version_history(version: ModelVersion) -> dict:
    path = version_dir(version) / "manifest.json"
    return json.loads(path.read_text()).get("history", {}) if path.is_file() else {}


def active_manifest() -> dict:
    """GET /api/models/active/: per kind, the served version's manifest (null when none is active)."""
    pointers = {p.kind: p.version for p in ActiveVersion.objects.select_related("version")}
    manifests = {kind: (version_manifest(pointers[kind]) if kind in pointers else None) for kind in TASKS}
    pipeline = pipeline_manifest()
    # each file by its own (in production, hashed) URL: neither name can be derived from the other
    pipeline["detector"]["model_url"] = static("detector/model.json")
    pipeline["detector"]["spec_url"] = static("detector/detector.json")
    pipeline["tracking"] = tracking_manifest()
    return {**manifests, "pipeline": pipeline}
