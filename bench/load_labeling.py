"""Load run of the labeling path against gunicorn on loopback: each client loops GET /api/queue/next/ then
POST /api/faces/<id>/annotations/, with its own labeler account and token.

    .venv/bin/python bench/load_labeling.py [--clients 50] [--seconds 30] [--think 0] [--workers 4] [--data CSV]

--think: seconds a client waits after a face is served before it saves (as a person looks and drags; 0 = none).
"served_to_two_at_once" counts faces that two clients held at the same time (served, not yet saved): the leases
of the queue should keep it at 0.

It sets up a throwaway instance in bench/out/ (SQLite unless DATABASE_URL is set), imports the faces (default: the
real keypoints CSV in ../shared/data, else 2,000 synthetic faces), starts gunicorn, runs the clients and prints
requests/s, p50/p99 latency and errors. Throttles are raised for the run: they are per-user limits for people, and
this measures the server, not the limiter.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "load"


def django_env() -> dict:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "webapp.settings.base",
        "DEBUG": "false",
        "VAR_DIR": str(OUT),
        "THROTTLE_WRITES": "1000000/minute",
        "LOG_LEVEL": "WARNING",
    }


def prepare(clients: int, data: str | None) -> list[str]:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    env = django_env()
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, cwd=ROOT)
    if data is None:
        real = ROOT.parent / "shared" / "data" / "keypoints.csv.gz"
        if real.is_file():
            data = str(real)
        else:
            sys.path.insert(0, str(ROOT))
            from tests.csvs import keypoints_csv

            data = str(keypoints_csv(OUT / "synthetic.csv", n=2000))
    subprocess.run(
        [*manage, "import_faces", "--format", "kaggle-keypoints", data, "-v0"], env=env, check=True, cwd=ROOT
    )
    script = f"""
from django.contrib.auth.models import Group, User
from rest_framework.authtoken.models import Token
group, _ = Group.objects.get_or_create(name="labelers")
for i in range({clients}):
    user = User.objects.create_user(f"bench{{i}}")
    user.groups.add(group)
    print(Token.objects.create(user=user).key)
"""
    done = subprocess.run(
        [*manage, "shell", "-c", script], env=env, check=True, cwd=ROOT, capture_output=True, text=True
    )
    return [word for word in done.stdout.split() if len(word) == 40 and word.isalnum()]  # the keys, not log noise


class Client(threading.Thread):
    def __init__(self, token: str, port: int, stop_at: float, index: int, think: float = 0.0):
        super().__init__(daemon=True)
        self.token, self.port, self.stop_at, self.think = token, port, stop_at, think
        self.held: list[tuple[int, float, float]] = []  # (face, served at, saved at)
        self.by_method: dict[str, list[float]] = {}
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.exclude: list[int] = []
        self.index = index

    def request(self, conn, method, path, body=None):
        headers = {"Authorization": f"Token {self.token}", "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        t0 = time.perf_counter()
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        self.latencies.append(time.perf_counter() - t0)
        self.by_method.setdefault(method, []).append(self.latencies[-1])
        if response.status >= 400:
            self.errors.append(f"{method} {path}: {response.status} {payload[:120]!r}")
            return None
        return json.loads(payload)

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        points = [{"x": 30.0 + i, "y": 40.0 + i, "visible": True} for i in range(15)]
        while time.perf_counter() < self.stop_at:
            try:
                # Each client works its own slice of the queue (exclude what it did), as a labeler session does.
                nxt = self.request(
                    conn, "GET", f"/api/queue/next/?task=keypoints&exclude={','.join(map(str, self.exclude[-50:]))}"
                )
                if not nxt or not nxt["face"]:
                    continue
                face = nxt["face"]["id"]
                served = time.perf_counter()
                self.exclude.append(face)
                if self.think:
                    time.sleep(self.think)
                self.request(
                    conn, "POST", f"/api/faces/{face}/annotations/", {"points": points, "emotion": self.index % 5}
                )
                self.held.append((face, served, time.perf_counter()))
            except (OSError, http.client.HTTPException) as exc:
                self.errors.append(repr(exc))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)


class Result:
    """What a client thread measured, without its connection (picklable, to come back from a process)."""

    def __init__(self, client: Client):
        self.index, self.latencies, self.by_method = client.index, client.latencies, client.by_method
        self.errors, self.held, self.exclude = client.errors, client.held, client.exclude


def run_clients(part: list[tuple[int, str]], port: int, stop_at: float, think: float) -> list[Result]:
    clients = [Client(token, port, stop_at, i, think) for i, token in part]
    for c in clients:
        c.start()
    for c in clients:
        c.join()
    return [Result(c) for c in clients]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--think", type=float, default=0.0, help="seconds between a face served and its save")
    parser.add_argument("--processes", type=int, default=4, help="client processes (threads spread over them)")
    parser.add_argument("--data", help="Kaggle keypoints CSV to import (default: ../shared/data/keypoints.csv.gz)")
    args = parser.parse_args()

    tokens = prepare(args.clients, args.data)
    database = os.environ.get("DATABASE_URL", "sqlite (var)")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "webapp.wsgi",
            "--bind",
            f"127.0.0.1:{args.port}",
            "--workers",
            str(args.workers),
            "--worker-class",
            "gthread",
            "--threads",
            "4",
            "--log-level",
            "warning",
            "--keep-alive",
            "10",  # longer than a labeler's pause between requests, so the server does not drop idle connections
        ],
        cwd=ROOT,
        env=django_env(),
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                http.client.HTTPConnection("127.0.0.1", args.port, timeout=2).request("GET", "/api/models/active/")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        time.sleep(1)
        stop_at = time.perf_counter() + args.seconds
        started = time.perf_counter()
        # The clients run in --processes processes (threads inside each), so the load generator's own GIL does not
        # add to the latencies it measures; perf_counter is the system's monotonic clock, shared by the processes.
        slices = [list(enumerate(tokens))[i :: args.processes] for i in range(args.processes)]
        with multiprocessing.get_context("fork").Pool(args.processes) as pool:
            parts = pool.starmap(run_clients, [(part, args.port, stop_at, args.think) for part in slices])
        clients = [c for part in parts for c in part]
        elapsed = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=30)
    latencies = sorted(x for c in clients for x in c.latencies)
    by_method = {}
    for method in ("GET", "POST"):
        values = sorted(x for c in clients for x in c.by_method.get(method, []))
        if values:
            by_method[method] = {
                "p50_ms": round(values[len(values) // 2] * 1000, 1),
                "p99_ms": round(values[min(len(values) - 1, int(0.99 * len(values)))] * 1000, 1),
            }
    holds: dict[int, list[tuple[float, float, int]]] = {}
    for c in clients:
        for face, start, end in c.held:
            holds.setdefault(face, []).append((start, end, c.index))
    twice = sum(
        1
        for spans in holds.values()
        for j, (s1, e1, c1) in enumerate(spans)
        for s2, e2, c2 in spans[j + 1 :]
        if c1 != c2 and s1 < e2 and s2 < e1
    )
    errors = [e for c in clients for e in c.errors]
    q = lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000  # noqa: E731
    print(
        json.dumps(
            {
                "clients": args.clients,
                "think_s": args.think,
                "served_to_two_at_once": twice,
                "seconds": round(elapsed, 1),
                "gunicorn": f"{args.workers} workers x 4 threads (gthread)",
                "database": database,
                "requests": len(latencies),
                "requests_per_s": round(len(latencies) / elapsed, 1),
                "annotations_saved": sum(len(c.exclude) for c in clients),
                "p50_ms": round(q(0.50), 1),
                "p99_ms": round(q(0.99), 1),
                "by_request": {"GET /api/queue/next/": by_method.get("GET"), "POST annotations": by_method.get("POST")},
                "client_processes": args.processes,
                "mean_ms": round(statistics.mean(latencies) * 1000, 1),
                "errors": len(errors),
                "first_errors": errors[:3],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
