"""Model versions: register (immutable), promote and roll back (a pointer flip in one transaction)."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max

from ml.schema import TASKS
from webapp.registry.models import ActiveVersion, ModelVersion, Promotion


def models_root() -> Path:
    root = Path(settings.MODELS_ROOT)
    root.mkdir(parents=True, exist_ok=True)
    return root


def staging_dir(kind: str) -> Path:
    """A fresh directory on the same filesystem as the versions, for an export to be moved in with os.replace."""
    parent = models_root() / kind
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".staging-", dir=parent))


def _next_number(kind: str) -> int:
    """Numbers count the versions, with no gaps; directories never decide them (see ``version_register``)."""
    return (ModelVersion.objects.filter(kind=kind).aggregate(n=Max("number"))["n"] or 0) + 1


def version_register(
    *,
    kind: str,
    export_dir: Path,
    metrics: dict,
    trained_on: dict,
    parent: ModelVersion | None = None,
    created_by=None,
    note: str = "",
) -> ModelVersion:
    """Move a finished export (a staging dir) into models/<kind>/v<N>-<random>/ and record it.

    The directory name carries a random part so that it is new even when the number is not new to the disk (a
    directory left by a crash, a database reset beside kept model files): model files are served as immutable, and a
    browser that cached an earlier v3 must never be handed different weights under the same URL. The number itself
    comes from the rows alone, so versions count 1, 2, 3 with no gaps.
    """
    export_dir = Path(export_dir)
    if not (export_dir / "model.json").is_file():
        raise ValidationError({"export_dir": [f"{export_dir} holds no model.json"]})
    for _ in range(5):
        number = _next_number(kind)
        name = f"v{number}-{secrets.token_hex(4)}"
        target = models_root() / kind / name
        os.rename(export_dir, target)  # a fresh name: atomic, and nothing else can hold it
        try:
            with transaction.atomic():
                return ModelVersion.objects.create(
                    kind=kind,
                    number=number,
                    artifact_dir=f"{kind}/{name}",
                    metrics=metrics,
                    trained_on=trained_on,
                    parent=parent,
                    created_by=created_by,
                    note=note[:200],
                )
        except IntegrityError:  # another registration took the number first: try the next one
            os.rename(target, export_dir)
    raise RuntimeError(f"could not allocate a version number for {kind}")


def _stack(kind: str) -> list[int]:
    """Replay the promotion log: promotions push, rollbacks pop. The top is the active version."""
    stack: list[int] = []
    for move in Promotion.objects.filter(kind=kind).order_by("created_at", "id"):
        if move.action == Promotion.Action.ROLLBACK:
            while stack and stack[-1] != move.to_version_id:
                stack.pop()
            if not stack:
                stack.append(move.to_version_id)
        else:
            stack.append(move.to_version_id)
    return stack


def rollback_target(kind: str) -> ModelVersion | None:
    """The version a plain rollback would serve: the one active before the current one (None: nothing to go back to)."""
    stack = _stack(kind)
    return ModelVersion.objects.filter(pk=stack[-2]).first() if len(stack) >= 2 else None


def version_promote(*, version: ModelVersion, author=None, action: str = Promotion.Action.PROMOTE, reason: str = ""):
    with transaction.atomic():
        current = ActiveVersion.objects.select_for_update().filter(kind=version.kind).first()
        previous = current.version if current else None
        if previous and previous.pk == version.pk:
            raise ValidationError({"version": [f"{version} is already the active {version.kind} model"]})
        ActiveVersion.objects.update_or_create(kind=version.kind, defaults={"version": version})
        return Promotion.objects.create(
            kind=version.kind,
            from_version=previous,
            to_version=version,
            action=action,
            reason=reason[:600],
            author=author,
        )


def version_rollback(*, kind: str, author=None, to_version: ModelVersion | None = None) -> Promotion:
    """Back to ``to_version``, or else to the version that was active before the current one."""
    with transaction.atomic():
        current = ActiveVersion.objects.select_for_update().filter(kind=kind).first()
        if current is None:
            raise ValidationError({"kind": [f"no {kind} model is active; nothing to roll back"]})
        if to_version is None:
            stack = _stack(kind)
            if len(stack) < 2:
                raise ValidationError({"kind": [f"{current.version} has no earlier version to roll back to"]})
            to_version = ModelVersion.objects.get(pk=stack[-2])
        if to_version.kind != kind:
            raise ValidationError({"version": [f"{to_version} cannot serve as the active {kind} model"]})
        if to_version.pk == current.version_id:
            raise ValidationError({"version": [f"{to_version} is already active"]})
        previous = current.version
        current.version = to_version
        current.save()
        return Promotion.objects.create(
            kind=kind, from_version=previous, to_version=to_version, action=Promotion.Action.ROLLBACK, author=author
        )


BASELINE_SOURCE = "shipped baseline"


def _baselines() -> list[tuple[str, Path]]:
    """(kind, folder) of every export shipped in BASELINE_MODELS_DIR: ``<kind>/``, the one served by default (v1 on a
    fresh install), then ``<kind>-<name>/``, others a user can choose (emotion-seed-five: the seed's five classes)."""
    root = Path(settings.BASELINE_MODELS_DIR)
    found = []
    for kind in TASKS:
        if (root / kind / "model.json").is_file():
            found.append((kind, root / kind))
        found += [(kind, d) for d in sorted(root.glob(f"{kind}-*")) if (d / "model.json").is_file()]
    return found


def _registered(kind: str, source: Path) -> ModelVersion | None:
    """The version holding the same files as the shipped ``source`` (its model.json, weights and manifest: a release
    that changes only what a model reads, its framing, ships a new version), if any."""
    from webapp.registry.selectors import version_dir

    wanted = {
        p.name: p.read_bytes()
        for p in source.iterdir()
        if p.name in ("model.json", "manifest.json") or p.suffix == ".bin"
    }
    for version in ModelVersion.objects.filter(kind=kind, trained_on__source=BASELINE_SOURCE).order_by("-number"):
        directory = version_dir(version)
        if all(
            (directory / name).is_file() and (directory / name).read_bytes() == data for name, data in wanted.items()
        ):
            return version
    return None


def shipped_folder(version: ModelVersion) -> str | None:
    """The folder of ``models/baseline/`` a version was registered from (None: the deployment trained it)."""
    if version.trained_on.get("source") != BASELINE_SOURCE:
        return None
    named = re.search(r"\(([^()]+)\)$", version.note or "")  # registered before trained_on named the folder
    return version.trained_on.get("folder") or (named.group(1) if named else None)


def baseline_register() -> list[ModelVersion]:
    """Register the exports shipped in the repository that are not registered yet, and serve one: the kind's default
    on a fresh install, and a newer release of the shipped export that is served (the default replaces the default,
    the seed's five replace the seed's five); a version the deployment trained is never displaced."""
    from webapp.registry.selectors import active_version

    registered = []
    for kind, source in _baselines():
        if _registered(kind, source) is not None:
            continue
        staging = staging_dir(kind)
        shutil.rmtree(staging)
        shutil.copytree(source, staging, ignore=shutil.ignore_patterns("plots", "quantized-*"))
        metrics_file = source / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
        version = version_register(
            kind=kind,
            export_dir=staging,
            metrics=metrics,
            # what its own training saw: the distilled emotion baseline's metrics name no training count (None), and
            # its validation faces are not faces it was trained on
            trained_on={
                "faces": metrics.get("n_train"),
                "validation": metrics.get("n"),
                "source": BASELINE_SOURCE,
                "folder": source.name,
            },
            note=f"baseline shipped with the repository ({source.name})",
        )
        registered.append(version)
        served = active_version(kind=kind)
        if (served is None and source.name == kind) or (served is not None and shipped_folder(served) == source.name):
            version_promote(version=version, action=Promotion.Action.BASELINE, reason="shipped baseline")
    return registered


def tflite_backfill() -> list[ModelVersion]:
    """Write model.tflite (the web process's LiteRT runtime) into every version registered before exports had one.

    Needs TensorFlow: ``manage.py bootstrap`` runs it at deploy time, never a web request. A version's directory is
    otherwise immutable; this adds the same weights in a second format and changes none of its files.
    """
    from ml.litert import TFLITE_FILE, write_tflite
    from webapp.registry.selectors import version_dir

    written = []
    for version in ModelVersion.objects.order_by("kind", "number"):
        directory = version_dir(version)
        if (directory / "model.json").is_file() and not (directory / TFLITE_FILE).is_file():
            write_tflite(directory)
            written.append(version)
    return written
