"""The retraining loop through a real Celery worker process (never eager mode)."""

import concurrent.futures
import json
import socket
import subprocess
import sys
import time

import pytest
from django.db import connections

from tests import factories
from tests.conftest import REPO_ROOT
from tests.training.conftest import process_env, wait_for
from webapp.registry.models import ActiveVersion, ModelVersion
from webapp.registry.selectors import active_manifest
from webapp.training.models import TrainingRun

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_labels_retrain_register_promote_and_flip_the_manifest(start_worker, redis_broker, labeled_faces, staff_client):
    start_worker()
    # a person corrects a face: the training set takes the newest human label
    from webapp.faces.labeling.services import annotation_submit
    from webapp.faces.models import Face

    annotation_submit(face=Face.objects.filter(source_name="kp.csv").first(), author=None, points=factories.points(7))

    response = staff_client.post("/api/training-runs/", {"kind": "keypoints", "from_scratch": True}, format="json")
    assert response.status_code == 201, response.content
    run = wait_for(response.json()["id"])
    assert run.status == "succeeded", run.log + run.error
    assert run.promoted and "promoted" in run.decision
    version = run.version
    assert version.number == 2 and version.parent == labeled_faces["keypoints"]
    assert version.trained_on["human_labels"] == 1 and version.trained_on["faces"] == 30
    assert version.metrics["rmse_px"] > 0 and run.epoch == run.epochs == 1 and run.loss is not None
    assert active_manifest()["keypoints"]["version"] == 2
    detail = staff_client.get(f"/api/training-runs/{run.pk}/").json()
    assert detail["status"] == "succeeded" and detail["version_number"] == 2 and "epoch 1/1" in detail["log"]

    # emotion: the worker demands +2.0 accuracy, which no model reaches -> registered, kept as a candidate. From
    # scratch, so a version is always registered (a fine-tune that beats its parent on nothing registers nothing,
    # and on these eight validation faces whether one epoch does is up to the threads' summation order)
    response = staff_client.post("/api/training-runs/", {"kind": "emotion", "from_scratch": True}, format="json")
    run = wait_for(response.json()["id"])
    assert run.status == "succeeded", run.log + run.error
    assert not run.promoted and "kept as a candidate" in run.decision
    assert run.version.number == 2 and run.version.trained_on["mode"] == "from scratch"
    assert run.version.parent.number == 1
    # exported like the version it would replace (uint8 here), and scored as those files
    from webapp.registry.selectors import version_dir

    manifest = json.loads((version_dir(run.version) / "manifest.json").read_text())
    assert manifest["quantization"] == "uint8" == run.version.metrics["quantization"]
    assert ActiveVersion.objects.get(kind="emotion").version.number == 1


def test_a_retrain_on_a_few_faces_stays_a_candidate_with_the_reason(
    start_worker, redis_broker, labeled_faces, staff_client
):
    """The default rule: at least 200 validation faces to promote automatically, whatever the figures say."""
    start_worker(PROMOTION_MIN_FACES="200")
    response = staff_client.post("/api/training-runs/", {"kind": "keypoints", "from_scratch": True}, format="json")
    run = wait_for(response.json()["id"])
    assert run.status == "succeeded", run.log + run.error
    assert not run.promoted and "at least 200 needed to promote automatically" in run.decision
    assert ActiveVersion.objects.get(kind="keypoints").version == labeled_faces["keypoints"]
    comparison = run.version.metrics["comparison"]
    # both models' figures on the same validation faces, and how sure the difference is
    assert comparison["n"] == run.version.metrics["n"] and comparison["n"] < 200
    assert comparison["active"] > 0 and comparison["candidate"] > 0 and comparison["ci_low"] <= comparison["ci_high"]
    assert comparison["against"] == str(labeled_faces["keypoints"])


def test_concurrent_requests_start_one_run(start_worker, redis_broker, labeled_faces, staff_client):
    def request(_):
        try:
            return staff_client.post("/api/training-runs/", {"kind": "keypoints"}, format="json")
        finally:
            connections.close_all()

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(request, range(6)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [201, 409, 409, 409, 409, 409]
    assert len({r.json()["id"] for r in responses}) == 1
    assert "already" in next(r for r in responses if r.status_code == 409).json()["detail"]
    assert TrainingRun.objects.count() == 1
    start_worker()
    assert wait_for(responses[0].json()["id"]).status == "succeeded"


def test_too_few_labeled_faces_fails_at_once_with_a_message(start_worker, redis_broker, dirs, staff_client):
    from webapp.registry.services import baseline_register

    baseline_register()
    factories.face()
    start_worker()
    response = staff_client.post("/api/training-runs/", {"kind": "emotion"}, format="json")
    run = wait_for(response.json()["id"])
    assert run.status == "failed" and "Not enough labeled emotion faces to train: 0" in run.error
    assert ModelVersion.objects.filter(kind="emotion").count() == 1


def _wait_for_an_epoch(run_id: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while TrainingRun.objects.get(pk=run_id).epoch < 1 and time.monotonic() < deadline:
        time.sleep(0.2)


def test_kill_9_mid_training_registers_nothing_and_the_run_does_not_stay_running(
    start_worker, redis_broker, labeled_faces, staff_client
):
    worker = start_worker(TRAINING_EPOCHS="400")
    response = staff_client.post("/api/training-runs/", {"kind": "keypoints", "from_scratch": True}, format="json")
    run_id = response.json()["id"]
    run = wait_for(run_id, statuses=("running",), timeout=60)
    _wait_for_an_epoch(run_id)  # mid-training: at least one epoch done, many to go
    worker.kill()
    run = wait_for(run_id, statuses=("failed",), timeout=30)
    assert "stopped responding" in run.error
    assert ModelVersion.objects.filter(kind="keypoints").count() == 1
    assert ActiveVersion.objects.get(kind="keypoints").version == labeled_faces["keypoints"]
    # the kind is free again: a new request starts a new run
    assert staff_client.post("/api/training-runs/", {"kind": "keypoints"}, format="json").status_code == 201


def test_a_worker_that_comes_back_to_a_reaped_run_registers_nothing(
    start_worker, redis_broker, labeled_faces, staff_client
):
    """A worker paused past the heartbeat timeout (SIGSTOP, a frozen VM) finds its run marked failed when it wakes:
    it stops after the current epoch and registers no version, and the run stays failed with the reaper's reason."""
    start_worker(TRAINING_EPOCHS="400")
    run_id = staff_client.post(
        "/api/training-runs/", {"kind": "keypoints", "from_scratch": True}, format="json"
    ).json()["id"]
    wait_for(run_id, statuses=("running",), timeout=60)
    _wait_for_an_epoch(run_id)
    reason = "The worker stopped responding (killed or lost) during training; no version was registered."
    TrainingRun.objects.filter(pk=run_id).update(status="failed", error=reason)  # what runs_reap_stale writes
    deadline = time.monotonic() + 120
    while "no version registered" not in TrainingRun.objects.get(pk=run_id).log and time.monotonic() < deadline:
        time.sleep(0.3)
    run = TrainingRun.objects.get(pk=run_id)
    assert "stopped: the run was marked failed" in run.log, run.log
    assert run.status == "failed" and run.error == reason and run.version is None and run.epoch < 400
    assert ModelVersion.objects.filter(kind="keypoints").count() == 1


def test_cancel_stops_at_the_next_epoch(start_worker, redis_broker, labeled_faces, staff_client):
    start_worker(TRAINING_EPOCHS="400")
    run_id = staff_client.post(
        "/api/training-runs/", {"kind": "keypoints", "from_scratch": True}, format="json"
    ).json()["id"]
    wait_for(run_id, statuses=("running",), timeout=60)
    assert staff_client.post(f"/api/training-runs/{run_id}/cancel/").status_code == 200
    run = wait_for(run_id, timeout=120)
    assert run.status == "cancelled" and run.epoch < 400 and run.version is None
    assert ModelVersion.objects.filter(kind="keypoints").count() == 1
    again = staff_client.post(f"/api/training-runs/{run_id}/cancel/")
    assert again.status_code == 400 and "only pending or running runs" in again.json()["detail"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_redis_down_gives_503_while_labeling_keeps_working(dirs, transactional_db, staff_client, settings):
    from webapp.celery import app

    port = _free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    broker = f"redis://127.0.0.1:{port}/0"
    previous = app.conf.broker_url
    app.conf.broker_url = broker
    try:
        time.sleep(0.5)
        server.terminate()  # Redis stops
        server.wait(timeout=10)
        response = staff_client.post("/api/training-runs/", {"kind": "keypoints"}, format="json")
        assert response.status_code == 503
        assert "Retraining is unavailable right now" in response.json()["detail"]
        assert "Labeling keeps working" in response.json()["detail"]
        assert TrainingRun.objects.count() == 0
        face = factories.face()
        labeled = staff_client.post(f"/api/faces/{face.pk}/annotations/", {"emotion": "sad"}, format="json")
        assert labeled.status_code == 201
    finally:
        app.conf.broker_url = previous
        if server.poll() is None:
            server.kill()


def test_the_same_loop_on_the_embedded_sqlite_broker_from_the_retrain_command(start_worker, dirs, labeled_faces):
    """No Redis at all: kombu's SQLAlchemy transport on a SQLite file, driven by `manage.py retrain --wait`."""
    broker = f"sqla+sqlite:///{dirs / 'broker.sqlite3'}"
    start_worker(broker=broker)
    done = subprocess.run(
        [sys.executable, "manage.py", "retrain", "--kind", "keypoints", "--from-scratch", "--wait"],
        cwd=REPO_ROOT,
        env=process_env(broker, dirs),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "queued" in done.stdout and "running epoch" in done.stdout and "succeeded: v2" in done.stdout
    assert active_manifest()["keypoints"]["version"] == 2


def test_the_retrain_command_exits_non_zero_when_the_run_fails(start_worker, redis_broker, dirs):
    start_worker()
    done = subprocess.run(
        [sys.executable, "manage.py", "retrain", "--kind", "emotion", "--wait"],
        cwd=REPO_ROOT,
        env=process_env(redis_broker, dirs),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0 and "Not enough labeled emotion faces" in done.stderr


@pytest.mark.parametrize(("role", "expected"), [("anonymous", 403), ("labeler", 403)])
def test_retraining_is_staff_only(transactional_db, role, expected):
    from rest_framework.test import APIClient

    client = APIClient()
    if role != "anonymous":
        client.force_authenticate(factories.user(role))
    assert client.post("/api/training-runs/", {"kind": "keypoints"}, format="json").status_code == expected
    assert client.get("/api/training-runs/").status_code == expected
    assert TrainingRun.objects.count() == 0


def test_automatic_retrain_after_n_human_labels(redis_broker, dirs, settings):
    settings.AUTO_RETRAIN_AFTER_LABELS = 2
    from webapp.faces.labeling.services import annotation_submit

    faces = [factories.face() for _ in range(3)]
    annotation_submit(face=faces[0], author=None, emotion="sad")
    assert not TrainingRun.objects.exists()
    annotation_submit(face=faces[1], author=None, emotion="happiness")
    run = TrainingRun.objects.get()
    assert run.kind == "emotion" and run.trigger == "auto" and run.status == "pending"
    annotation_submit(face=faces[2], points=factories.points(), author=None)
    assert TrainingRun.objects.count() == 1  # one keypoint label is not enough for keypoints


def test_a_fine_tune_that_learned_nothing_registers_no_copy_of_its_parent(
    start_worker, redis_broker, labeled_faces, staff_client
):
    """At a rate of 1,000 every step wrecks the model, so no epoch beats the parent on validation loss: the run ends
    on the parent's own weights, and a version would be the parent again under a new number."""
    start_worker(TRAINING_FINETUNE_LEARNING_RATE="1000")
    run = wait_for(staff_client.post("/api/training-runs/", {"kind": "keypoints"}, format="json").json()["id"])
    assert run.status == "succeeded", run.log + run.error
    assert run.version is None and "nothing registered: no epoch beat keypoints v1" in run.decision
    assert ModelVersion.objects.filter(kind="keypoints").count() == 1
    assert staff_client.get(f"/api/training-runs/{run.pk}/").json()["version_number"] is None


def test_a_served_versions_class_prior_is_carried_to_the_candidate_not_learned_away(
    start_worker, redis_broker, labeled_faces, staff_client, tiny_exports, dirs
):
    """The shipped emotion model reads calm faces as neutral through a prior written in its manifest (prior_shift):
    a retrain leaves it out while training and gives it back to the candidate, whatever the new faces hold."""
    from ml.export import export_tfjs, load_tfjs
    from ml.models import shift_priors
    from ml.schema import DEFAULT_LABELS
    from webapp.registry.selectors import version_manifest
    from webapp.registry.services import staging_dir, version_promote, version_register

    model = shift_priors(load_tfjs(tiny_exports / "emotion"), DEFAULT_LABELS, {"neutral": 0.4})
    staging = staging_dir("emotion")
    staging.rmdir()
    export_tfjs(model, staging, task="emotion", labels=DEFAULT_LABELS, extra={"prior_shift": {"neutral": 0.4}})
    parent = version_register(kind="emotion", export_dir=staging, metrics={}, trained_on={})
    version_promote(version=parent)
    start_worker()
    run = wait_for(
        staff_client.post("/api/training-runs/", {"kind": "emotion", "from_scratch": True}, format="json").json()["id"]
    )
    assert run.status == "succeeded", run.log + run.error
    assert version_manifest(run.version)["prior_shift"] == {"neutral": 0.4}
