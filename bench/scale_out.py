"""Scale-out, run rather than written: two web roles and a training worker on one PostgreSQL and one Redis.

    .venv/bin/python bench/scale_out.py [--clients 100] [--think 2] [--seconds 60] [--web-processes 2]

A fresh PostgreSQL database (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/emotion_ai_scale) gets the
real keypoints CSV and the shipped baselines. Then, as compose runs them: two production web roles (gunicorn with
webapp/gunicorn.py, --web-processes each, on two ports; CACHE_URL on Redis db 10, so the throttles and the queue's
count are shared), and one Celery worker on Redis db 11 (the training queue). Half the labelers talk to each role
(bench/load_labeling.py's clients: next face, think, save); at the start a staff user asks for a keypoints retrain
(fine-tune, TRAINING_FINETUNE_EPOCHS=2), so the worker trains while people label; each role also takes whole-photo
uploads (LiteRT). It prints the load's figures per role, the retrain's outcome and time, and every web process's
memory.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
from light_web import photos, rss_mb, upload  # noqa: E402
from load_labeling import labeler_tokens, run_clients  # noqa: E402

OUT = ROOT / "bench" / "out" / "scale_out"
DATA = ROOT.parent / "shared" / "data" / "keypoints.csv.gz"


def role_env(database: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "webapp.settings.production",
        "SECRET_KEY": "bench-" + "k" * 50,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "DATABASE_URL": database,
        "CACHE_URL": "redis://127.0.0.1:6379/10",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/11",
        "VAR_DIR": str(OUT),  # media and models: the shared storage of a real deployment
        "THROTTLE_WRITES": "1000000/minute",  # people's limits would measure the limiter
        "THROTTLE_UPLOADS": "1000000/minute",
        "TRAINING_FINETUNE_EPOCHS": "2",
        "LOG_LEVEL": "WARNING",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


def prepare(env: dict[str, str], clients: int) -> tuple[list[str], str]:
    from queue_sweep import recreate_postgres

    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    recreate_postgres(env["DATABASE_URL"])
    import redis

    for db in (10, 11):
        redis.Redis(db=db).flushdb()
    manage = [sys.executable, str(ROOT / "manage.py")]
    for command in (["migrate", "-v0"], ["bootstrap"], ["import_faces", "--format", "kaggle-keypoints", str(DATA)]):
        subprocess.run([*manage, *command], env=env, check=True, cwd=ROOT, capture_output=True)
    staff_script = (
        "from django.contrib.auth.models import User; from rest_framework.authtoken.models import Token; "
        "print(Token.objects.create(user=User.objects.create_user('bench-staff', is_staff=True)).key)"
    )
    staff = subprocess.run(
        [*manage, "shell", "-c", staff_script], env=env, check=True, cwd=ROOT, capture_output=True, text=True
    ).stdout.split()[-1]
    return labeler_tokens(env, clients), staff


def api(port: int, token: str, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def quantiles(rows) -> dict:
    values = sorted(seconds for _, seconds, _ in rows)
    if not values:
        return {}
    q = lambda p: round(values[min(len(values) - 1, int(p * len(values)))] * 1000, 1)  # noqa: E731
    return {"requests": len(values), "p50_ms": q(0.5), "p99_ms": q(0.99), "max_ms": q(1.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--think", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--web-processes", type=int, default=2)
    parser.add_argument("--ports", type=int, nargs=2, default=[8771, 8772])
    parser.add_argument("--wait-retrain", type=float, default=900, help="seconds to wait for the retrain to end")
    args = parser.parse_args()
    database = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/emotion_ai_scale")
    if not database.startswith("postgres"):
        sys.exit("scale_out.py runs on PostgreSQL: set DATABASE_URL=postgres://…")
    env = role_env(database)
    tokens, staff = prepare(env, args.clients)
    processes = []
    for i, port in enumerate(args.ports):
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", "python:webapp.gunicorn", "webapp.wsgi"],
                env={**env, "BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": str(args.web_processes)},
                cwd=ROOT,
                stdout=(OUT / f"web{i + 1}.log").open("w"),
                stderr=subprocess.STDOUT,
            )
        )
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "webapp", "worker", "-Q", "training,celery", "-c", "1", "-l", "INFO"],
        env=env,
        cwd=ROOT,
        stdout=(OUT / "worker.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        for port in args.ports:
            deadline = time.monotonic() + 60
            while True:
                try:
                    api(port, staff, "GET", "/api/training-runs/plan/?kind=keypoints")
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
        time.sleep(5)  # the worker connects
        run = api(args.ports[0], staff, "POST", "/api/training-runs/", {"kind": "keypoints"})
        asked = time.monotonic()
        started = time.perf_counter()
        ramp = args.think
        measured_from, stop_at = started + max(5.0, ramp), started + max(5.0, ramp) + args.seconds
        starts = [(i, token, started + ramp * i / len(tokens)) for i, token in enumerate(tokens)]
        jobs = [(starts[i::4], args.ports[i % 2], stop_at, args.think) for i in range(4)]  # two processes per role
        uploads = {port: [] for port in args.ports}
        with multiprocessing.get_context("fork").Pool(4) as pool:
            pending = pool.starmap_async(run_clients, jobs)
            pictures = photos(ROOT.parent / "shared" / "data" / "frames" / "images", 20)
            time.sleep(max(0.0, measured_from - time.perf_counter()))
            for n, (name, data) in enumerate(pictures):  # a labeler's whole photos, spread over the window
                port = args.ports[n % 2]
                status, _, seconds = upload(f"http://127.0.0.1:{port}", staff, name, data)
                assert status in (200, 201), (name, status)
                uploads[port].append(seconds)
                time.sleep(args.seconds / len(pictures))
            parts = pending.get()
        during = api(args.ports[1], staff, "GET", f"/api/training-runs/{run['id']}/")
        memory = {
            f"web{i + 1}": [
                round(rss_mb(int(pid)), 1)
                for pid in subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split()
            ]
            for i, p in enumerate(processes)
        }
        while True:
            final = api(args.ports[0], staff, "GET", f"/api/training-runs/{run['id']}/")
            if final["status"] in ("succeeded", "failed", "cancelled") or time.monotonic() - asked > args.wait_retrain:
                break
            time.sleep(5)
    finally:
        for p in processes:
            p.terminate()
        worker.terminate()
        for p in [*processes, worker]:
            p.wait(timeout=60)
    report = {"database": database, "web_roles": len(args.ports), "processes_per_role": args.web_processes}
    window = stop_at - measured_from
    for i, port in enumerate(args.ports):
        clients = [c for j, part in enumerate(parts) if jobs[j][1] == port for c in part]
        steady = [r for c in clients for r in c.requests if r[0] >= measured_from]
        report[f"web{i + 1}"] = {
            "labelers": len(clients),
            "requests_per_s": round(len(steady) / window, 1),
            **quantiles(steady),
            "errors": sum(len(c.errors) for c in clients),
            "whole_photo_uploads": len(uploads[port]),
            "upload_median_ms": round(statistics.median(uploads[port]) * 1000, 1) if uploads[port] else None,
        }
    holds: dict[int, list[tuple[float, float, int]]] = {}
    for part in parts:
        for c in part:
            for face, start, sent, _ in c.held:
                holds.setdefault(face, []).append((start, sent, c.index))
    report["served_to_two_at_once"] = sum(
        1
        for spans in holds.values()
        for j, a in enumerate(spans)
        for b in spans[j + 1 :]
        if a[2] != b[2] and a[0] < b[1] and b[0] < a[1]
    )
    report["retrain"] = {
        "asked": "keypoints fine-tune at the start of the load (TRAINING_FINETUNE_EPOCHS=2)",
        "when_the_load_ended": f"{during['status']}, epoch {during['epoch']} of {during['epochs']}",
        "status": final["status"],
        "decision": final.get("decision"),
        "version": final.get("version_number"),
        "promoted": final.get("promoted"),
        "error": final.get("error") or None,
        "seconds_from_request": round(time.monotonic() - asked),
        "started_at": final.get("started_at"),
        "finished_at": final.get("finished_at"),
    }
    report["web_process_rss_mb"] = memory
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
