import re

import pytest
from django.core.exceptions import ValidationError

from ml.schema import DEFAULT_LABELS
from webapp.registry import services
from webapp.registry.models import ActiveVersion, ModelVersion
from webapp.registry.selectors import active_manifest

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(media):
    return media


@pytest.fixture
def baseline():
    return {v.kind: v for v in services.baseline_register()}


def _new_version(kind: str, tiny_exports, tmp_path) -> ModelVersion:
    import shutil

    staging = services.staging_dir(kind)
    shutil.rmtree(staging)
    shutil.copytree(tiny_exports / kind, staging)
    return services.version_register(kind=kind, export_dir=staging, metrics={"task": kind}, trained_on={"faces": 1})


def test_manifest_shape(client_for, baseline):
    body = client_for("anonymous").get("/api/models/active/").json()
    assert set(body) == {"keypoints", "emotion", "pipeline"}
    kp, em = body["keypoints"], body["emotion"]
    # the crop each model reads is the model's own: in its manifest, never a constant in the browser
    assert set(kp["framing"]) >= {"center", "distance", "rotate"} and set(em["framing"]) >= {"center", "distance"}
    detector = body["pipeline"]["detector"]
    assert detector["name"] == "blazeface" and set(detector["box_prior"]) == {"dx", "dy", "k"}
    assert detector["model_url"].endswith("/detector/model.json")
    assert detector["align_steps"] >= 1 and body["pipeline"]["face_framing"]["distance"] > 0
    assert kp["version"] == 1 and re.fullmatch(r"/model-files/keypoints/v1-[0-9a-f]{8}/model\.json", kp["model_url"])
    assert kp["input_shape"] == [96, 96, 1] and len(kp["keypoint_names"]) == 15 and kp["skeleton"]
    assert kp["normalization"]["pixel_scale"] == pytest.approx(1 / 255) and kp["keypoint_scale"] == 96
    assert em["labels"] == list(DEFAULT_LABELS) and em["output"] == "probabilities"  # the version's own classes
    assert "history" not in kp
    files = client_for("anonymous").get(kp["model_url"])
    assert files.status_code == 200 and "immutable" in files["Cache-Control"]
    assert client_for("anonymous").get("/model-files/keypoints/v1/../../../etc/passwd").status_code == 404


def test_manifest_is_null_for_a_kind_with_no_active_version(client_for):
    body = client_for("anonymous").get("/api/models/active/").json()
    assert body["keypoints"] is None and body["emotion"] is None


def test_promote_and_rollback_move_the_pointer_and_walk_back(baseline, tiny_exports, tmp_path):
    v2 = _new_version("emotion", tiny_exports, tmp_path)
    v3 = _new_version("emotion", tiny_exports, tmp_path)
    assert [v2.number, v3.number] == [2, 3] and (tmp_path / "models" / v3.artifact_dir / "model.json").is_file()
    services.version_promote(version=v2)
    services.version_promote(version=v3)
    assert active_manifest()["emotion"]["version"] == 3
    services.version_rollback(kind="emotion")
    assert ActiveVersion.objects.get(kind="emotion").version == v2
    services.version_rollback(kind="emotion")
    assert ActiveVersion.objects.get(kind="emotion").version == baseline["emotion"]
    with pytest.raises(ValidationError, match="no earlier version"):
        services.version_rollback(kind="emotion")
    services.version_rollback(kind="emotion", to_version=v3)
    assert active_manifest()["emotion"]["version"] == 3
    with pytest.raises(ValidationError, match="already the active"):
        services.version_promote(version=v3)
    with pytest.raises(ValidationError, match="emotion v2 cannot serve as the active keypoints model"):
        services.version_rollback(kind="keypoints", to_version=v2)


def test_versions_are_immutable(baseline):
    version = baseline["keypoints"]
    version.note = "changed"
    with pytest.raises(RuntimeError, match="append-only"):
        version.save()


@pytest.mark.parametrize(("role", "expected"), [("anonymous", 403), ("labeler", 403), ("staff", 200)])
def test_promote_and_rollback_are_staff_only(client_for, baseline, tiny_exports, tmp_path, role, expected):
    v2 = _new_version("keypoints", tiny_exports, tmp_path)
    client = client_for(role)
    assert client.post(f"/api/models/{v2.pk}/promote/").status_code == expected
    assert client.post("/api/models/rollback/", {"kind": "keypoints"}, format="json").status_code == expected
    active = ActiveVersion.objects.get(kind="keypoints").version
    assert active == baseline["keypoints"]  # promoted then rolled back, or never moved


def test_version_list_marks_the_active_one(client_for, baseline, tiny_exports, tmp_path):
    _new_version("keypoints", tiny_exports, tmp_path)
    rows = client_for("labeler").get("/api/models/?kind=keypoints").json()
    assert [(r["number"], r["active"]) for r in rows] == [(2, False), (1, True)]
    bad = client_for("staff").post(
        "/api/models/rollback/", {"kind": "emotion", "version": rows[0]["id"]}, format="json"
    )
    assert bad.status_code == 400 and "keypoints v2 cannot serve as the active emotion model" in bad.json()["detail"]


def test_numbers_do_not_skip_and_urls_are_never_reused(baseline, tiny_exports, tmp_path):
    leftover = tmp_path / "models" / "keypoints" / "v2"
    leftover.mkdir()  # left behind by a crash before the row was written, or by a database reset
    (leftover / "model.json").write_text("{}")
    second, third = (_new_version("keypoints", tiny_exports, tmp_path) for _ in range(2))
    assert (second.number, third.number) == (2, 3)
    assert second.artifact_dir.startswith("keypoints/v2-") and second.artifact_dir != "keypoints/v2"
    assert (leftover / "model.json").read_text() == "{}"  # the old files stay where a cached URL points


def test_bootstrap_is_idempotent(capsys):
    from django.core.management import call_command

    call_command("bootstrap")
    first = capsys.readouterr().out
    call_command("bootstrap")
    second = capsys.readouterr().out
    assert "registered the shipped baseline keypoints v1" in first and "created the local admin" in first
    assert "registered" not in second and ModelVersion.objects.count() == 2


def test_the_active_row_says_what_a_rollback_would_serve(client_for, baseline, tiny_exports, tmp_path):
    rows = lambda: {r["number"]: r for r in client_for("staff").get("/api/models/?kind=emotion").json()}  # noqa: E731
    assert rows()[1]["rolls_back_to"] is None  # only the baseline was ever served
    services.version_promote(version=_new_version("emotion", tiny_exports, tmp_path))
    now = rows()
    assert now[2]["active"] and now[2]["rolls_back_to"] == 1 and now[1]["rolls_back_to"] is None


def test_the_shipped_baselines_say_what_they_were_trained_on_not_their_validation_count(settings, media):
    settings.BASELINE_MODELS_DIR = settings.BASE_DIR / "models" / "baseline"
    versions = {(v.kind, v.number): v for v in services.baseline_register()}
    keypoints, seven, five = versions["keypoints", 1], versions["emotion", 1], versions["emotion", 2]
    assert keypoints.trained_on["faces"] == keypoints.metrics["n_train"]
    assert seven.trained_on["faces"] == seven.metrics["n_train"]
    # the distilled five-class baseline names no training count: unknown, not its 2,275 validation faces
    assert five.trained_on["faces"] is None and five.trained_on["validation"] == five.metrics["n"]
    # the seven-class one is served, the seed's five are registered beside it (labelset --preset seed-five --serve)
    assert ActiveVersion.objects.get(kind="emotion").version == seven and len(versions) == 3


def _shipped_copy(tmp_path, settings):
    """The shipped baseline folders, copied so a test can release a newer one."""
    import shutil

    root = tmp_path / "baseline"
    shutil.copytree(settings.BASE_DIR / "models" / "baseline", root)
    settings.BASELINE_MODELS_DIR = root
    return root


def _release(root, folder: str) -> None:
    """A newer release of a shipped export that changes only its manifest (what the model reads, not its weights)."""
    import json

    path = root / folder / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["framing"]["rotate"] = not manifest["framing"]["rotate"]
    path.write_text(json.dumps(manifest, indent=2))


def test_a_newer_shipped_export_replaces_the_served_one_of_its_own_folder_only(settings, tmp_path):
    from webapp.registry.selectors import active_version
    from webapp.registry.services import version_promote

    root = _shipped_copy(tmp_path, settings)
    first = {(v.kind, services.shipped_folder(v)): v for v in services.baseline_register()}
    assert active_version(kind="emotion") == first["emotion", "emotion"]
    # a manifest-only release of the default is registered (its files differ) and served in place of the old one
    _release(root, "emotion")
    (default,) = services.baseline_register()
    assert services.shipped_folder(default) == "emotion" and active_version(kind="emotion") == default
    assert services.baseline_register() == []  # registered once
    # a team serving the seed's five keeps the seed's five: a newer default is registered, not served ...
    seed_five = first["emotion", "emotion-seed-five"]
    version_promote(version=seed_five, author=None, action="promote", reason="the team's choice")
    _release(root, "emotion")
    (newer_default,) = services.baseline_register()
    assert active_version(kind="emotion") == seed_five and newer_default.number > default.number
    # ... and a newer seed's five replaces the one served
    _release(root, "emotion-seed-five")
    (newer_five,) = services.baseline_register()
    assert services.shipped_folder(newer_five) == "emotion-seed-five" and active_version(kind="emotion") == newer_five
    # a version registered before trained_on named its folder is known by its note
    seed_five.trained_on.pop("folder")
    assert services.shipped_folder(seed_five) == "emotion-seed-five"
