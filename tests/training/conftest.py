"""A real Celery worker process against a real broker, sharing the test database and directories."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection
from rest_framework.test import APIClient

from tests import csvs, factories
from tests.conftest import REPO_ROOT

TEST_REDIS = "redis://127.0.0.1:6379/15"


def _database_url() -> str:
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    return f"postgres://{settings['USER']}@{settings['HOST']}:{settings['PORT']}/{settings['NAME']}"


def process_env(broker: str, dirs: Path, **env: str) -> dict[str, str]:
    """The environment of a worker (or a manage.py command) that shares this test's database and directories."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "webapp.settings.test",
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": broker,
        "MEDIA_ROOT": str(dirs / "media"),
        "MODELS_ROOT": str(dirs / "models"),
        "VAR_DIR": str(dirs),
        # Deterministic promotion decisions on a few dozen faces: keypoints must only improve beyond noise (a
        # trained model against the untrained baseline does), emotion can never beat a 2.0 margin.
        "PROMOTION_MIN_FACES": "1",
        "PROMOTION_MARGIN_RMSE_PX": "0",
        "PROMOTION_MARGIN_ACCURACY": "2.0",
        **env,
    }


class Worker:
    def __init__(self, broker: str, dirs: Path, **env: str):
        self.log = dirs / f"worker-{time.monotonic_ns()}.log"
        environment = process_env(broker, dirs, **env)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "webapp",
                "worker",
                "-Q",
                "training,celery",
                "--concurrency",
                "1",
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=REPO_ROOT,
            env=environment,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: kill -9 reaches the pool child too
        )
        deadline = time.monotonic() + 60
        while "ready" not in self.log.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 30) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=timeout)

    def stop(self) -> None:
        """A warm shutdown; a worker that has not left after 10 s (kombu's SQLite transport was seen never to: every
        such test waited the whole 30 s this used to allow) is killed, so that no worker outlives its test and holds
        the next test's database open."""
        try:
            self.kill(signal.SIGTERM, timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()


@pytest.fixture
def dirs(media):
    """The test's media/models directories, which its worker shares."""
    return media


@pytest.fixture
def redis_broker():
    import redis

    client = redis.Redis.from_url(TEST_REDIS)
    client.flushdb()  # nothing left over from an earlier run
    return TEST_REDIS


@pytest.fixture
def start_worker(dirs, transactional_db):
    started: list[Worker] = []

    def start(broker: str = TEST_REDIS, **env: str) -> Worker:
        worker = Worker(broker, dirs, **env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def staff_client(transactional_db):
    client = APIClient()
    client.force_authenticate(factories.user("staff"))
    return client


@pytest.fixture
def labeled_faces(dirs, transactional_db):
    """A few dozen labeled faces of each task, and the (untrained) baseline registered as active."""
    from webapp.faces.interchange.services import faces_import
    from webapp.registry.services import baseline_register

    faces_import(path=csvs.keypoints_csv(dirs / "kp.csv", n=30), fmt="kaggle-keypoints")
    rows = [
        csvs.fer_row([0, 1, 3, 4, 5][i % 5], 100 + i, "PublicTest" if i % 4 == 0 else "Training") for i in range(30)
    ]
    faces_import(path=csvs.write(dirs / "fer.csv", csvs.FER_HEADER, rows), fmt="fer2013")
    return {v.kind: v for v in baseline_register()}


def wait_for(run_id: int, statuses=("succeeded", "failed", "cancelled"), timeout: float = 180):
    from webapp.training.models import TrainingRun
    from webapp.training.services import runs_reap_stale

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs_reap_stale()
        run = TrainingRun.objects.get(pk=run_id)
        if run.status in statuses:
            return run
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} still {run.status} after {timeout}s; log:\n{run.log}")
