"""A throwaway instance for the benchmarks: its own SQLite database and files, a Redis db, a real worker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def instance_env(out: Path, redis_db: int) -> dict[str, str]:
    """The environment of an instance whose database, faces and models all live under ``out``."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "webapp.settings.base",
        "VAR_DIR": str(out),
        "CELERY_BROKER_URL": f"redis://127.0.0.1:6379/{redis_db}",
        "LOG_LEVEL": "WARNING",
    }


def production_env(out: Path, port: int, **extra: str) -> dict[str, str]:
    """The environment of a production web role (gunicorn, webapp.settings.production) whose SQLite database and
    files live under ``out``, listening on 127.0.0.1:``port``, the local Redis db 13 as its cache."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "webapp.settings.production",
        "SECRET_KEY": "bench-" + "k" * 50,
        "ALLOWED_HOSTS": "localhost,127.0.0.1",
        "CACHE_URL": "redis://127.0.0.1:6379/13",
        "SECURE_SSL_REDIRECT": "false",
        "VAR_DIR": str(out),
        "DATABASE_URL": f"sqlite:///{out}/db.sqlite3",
        "BIND": f"127.0.0.1:{port}",
        **extra,
    }


def labeling_env(out: Path, redis_db: int) -> dict[str, str]:
    """``instance_env`` for a benchmark that uploads and labels through the API as fast as it can: the per-user
    throttles are for people, and would only measure themselves."""
    return {**instance_env(out, redis_db), "THROTTLE_UPLOADS": "100000/minute", "THROTTLE_WRITES": "100000/minute"}


def manage(env: dict[str, str]):
    """``command("migrate", "-v0", EXTRA_ENV="1")``: manage.py of the instance, checked, its output captured."""

    def command(*args: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            env={**env, **extra},
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        )

    return command


def fresh_instance(out: Path, command, fmt: str, data: Path) -> None:
    """An empty instance in ``out``: migrated, the shipped baselines active, one real data file imported."""
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    command("migrate", "-v0")
    command("bootstrap")
    command("import_faces", "--format", fmt, str(data), "-v0")


def start_worker(env: dict[str, str], out: Path) -> subprocess.Popen:
    """One real Celery worker on an emptied broker db, logging to ``out``/worker.log; stop it with terminate()."""
    import redis

    redis.Redis.from_url(env["CELERY_BROKER_URL"]).flushdb()
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "webapp", "worker", "-Q", "training,celery", "-c", "1", "-l", "INFO"],
        env=env,
        cwd=ROOT,
        stdout=(out / "worker.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    time.sleep(5)  # let it connect before the first request
    return worker


def timed_retrain(env: dict[str, str], out: Path, command, kind: str = "emotion") -> float:
    """One real worker, ``retrain --kind KIND --wait`` as a user types it, timed from the request to its end."""
    worker = start_worker(env, out)
    try:
        started = time.monotonic()
        command("retrain", "--kind", kind, "--wait")
        return time.monotonic() - started
    finally:
        worker.terminate()
        worker.wait(timeout=60)


def free_port() -> int:
    """A free TCP port on loopback."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_app(out: Path, models: Path | None = None) -> tuple[subprocess.Popen, str]:
    """The app as a user gets it, emptied into ``out``: migrated, the shipped baselines (or ``models``) active,
    ``runserver`` on a free loopback port, answering its models' manifest. (process, its URL); terminate() stops it."""
    import shutil
    import urllib.request

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    env = instance_env(out, redis_db=12)
    if models is not None:
        env["BASELINE_MODELS_DIR"] = str(models.resolve())
    command = manage(env)
    command("migrate", "--noinput", "-v0")
    command("bootstrap")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "runserver", f"127.0.0.1:{port}", "--noreload", "--nothreading"],
        env=env,
        cwd=ROOT,
        stdout=(out / "server.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    for _ in range(240):
        try:
            urllib.request.urlopen(f"{url}api/models/active/", timeout=2).close()
            return server, url
        except OSError:
            time.sleep(0.25)
    server.terminate()
    raise SystemExit(f"the instance did not answer on {url}: see {out / 'server.log'}")


def serve_repo():
    """The repository's files over loopback HTTP (the benchmark pages, node_modules, models): (server, its URL);
    shutdown() stops it."""
    import functools
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".wasm": "application/wasm"}

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(ROOT)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


def chromium(playwright):
    """Debian's headless Chromium, as every browser benchmark launches it (never a downloaded browser)."""
    flags = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    return playwright.chromium.launch(
        executable_path="/usr/bin/chromium", headless=True, args=[*flags, "--no-first-run"]
    )
