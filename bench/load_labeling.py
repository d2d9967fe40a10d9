"""Load run of the labeling path against gunicorn on loopback: each client loops GET /api/queue/next/ then
POST /api/faces/<id>/annotations/, with its own labeler account and token.

    .venv/bin/python bench/load_labeling.py [--clients 50] [--seconds 30] [--think 0] [--workers N]
                                            [--data CSV | --synthetic N]

--think: seconds a client waits after a face is served before it saves (as a person looks and drags; 0 = none).
The clients start one after another over --ramp seconds (default: the think time), as people do, not all in the
same millisecond; latency figures count requests sent after --warmup seconds (default 5, at least the ramp), for
--seconds more; the start-up's own figures are printed apart ("start_up").
"served_to_two_at_once" counts faces that two clients held at the same time (served, save not yet sent): the
leases of the queue should keep it at 0. "served_again_while_a_save_was_in_flight" counts the faces served to a second
client after the first had sent its save but before that save's answer came back: the server had released the lease
(a saved face stays in the queue, behind every face without a human label, for relabeling), so not a double hold; it
happens once the clients have labeled the whole queue.

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
import resource
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


def prepare(clients: int, data: str | None, synthetic: int = 0) -> list[str]:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    env = django_env()
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, cwd=ROOT)
    if data is None:
        real = ROOT.parent / "shared" / "data" / "keypoints.csv.gz"
        if real.is_file() and not synthetic:
            data = str(real)
        else:
            sys.path.insert(0, str(ROOT))
            from tests.csvs import keypoints_csv

            data = str(keypoints_csv(OUT / "synthetic.csv", n=synthetic or 2000))
    subprocess.run(
        [*manage, "import_faces", "--format", "kaggle-keypoints", data, "-v0"], env=env, check=True, cwd=ROOT
    )
    return labeler_tokens(env, clients)


def labeler_tokens(env: dict, clients: int) -> list[str]:
    """``clients`` labeler accounts (bench0, bench1, …) in the instance of ``env``, and their API tokens."""
    manage = [sys.executable, str(ROOT / "manage.py")]
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
    def __init__(self, token: str, port: int, start_at: float, stop_at: float, index: int, think: float = 0.0):
        super().__init__(daemon=True)
        self.token, self.port, self.start_at, self.stop_at, self.think = token, port, start_at, stop_at, think
        self.held: list[tuple[int, float, float, float]] = []  # (face, served at, save sent at, save answered at)
        self.requests: list[tuple[float, float, str]] = []  # (sent at, seconds, method)
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
        self.requests.append((t0, time.perf_counter() - t0, method))
        if response.status >= 400:
            self.errors.append(f"{method} {path}: {response.status} {payload[:120]!r}")
            return None
        return json.loads(payload)

    def run(self):
        time.sleep(max(0.0, self.start_at - time.perf_counter()))
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
                sent = time.perf_counter()
                self.request(
                    conn, "POST", f"/api/faces/{face}/annotations/", {"points": points, "emotion": self.index % 5}
                )
                self.held.append((face, served, sent, time.perf_counter()))
            except (OSError, http.client.HTTPException) as exc:
                self.errors.append(repr(exc))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)


class Result:
    """What a client thread measured, without its connection (picklable, to come back from a process)."""

    def __init__(self, client: Client):
        self.index, self.requests = client.index, client.requests
        self.errors, self.held, self.exclude = client.errors, client.held, client.exclude


def gunicorn_settings(overrides: dict) -> str:
    """The server's processes x threads (worker class): webapp/gunicorn.py's, less what the flags override."""
    sys.path.insert(0, str(ROOT))
    from webapp import gunicorn as conf

    workers, threads, kind = (
        value if value is not None else default
        for value, default in zip(overrides.values(), (conf.workers, conf.threads, conf.worker_class), strict=True)
    )
    return f"{workers} workers x {threads} threads ({kind})"


def cpu_seconds() -> float:
    """User + system CPU time of this process's children that have ended (and theirs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def database_cpu_seconds() -> float:
    """User + system CPU time of the local PostgreSQL server's processes (its backends run our queries; on SQLite
    that work is inside gunicorn's own figure). 0 when none runs on this machine."""
    ticks, total = os.sysconf("SC_CLK_TCK"), 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)
            if not fields[0].endswith("(postgres"):
                continue
            values = fields[1].split()
            total += int(values[11]) + int(values[12])  # utime, stime (fields 14 and 15 of proc(5))
        except (OSError, IndexError, ValueError):
            continue
    return total / ticks


def run_clients(part: list[tuple[int, str, float]], port: int, stop_at: float, think: float) -> list[Result]:
    clients = [Client(token, port, start_at, stop_at, i, think) for i, token, start_at in part]
    for c in clients:
        c.start()
    for c in clients:
        c.join()
    return [Result(c) for c in clients]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workers", type=int, help="gunicorn processes (default: webapp/gunicorn.py's)")
    parser.add_argument("--threads", type=int, help="threads per gunicorn process (default: webapp/gunicorn.py's)")
    parser.add_argument("--worker-class", help="gunicorn worker class (default: webapp/gunicorn.py's)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--think", type=float, default=0.0, help="seconds between a face served and its save")
    parser.add_argument("--ramp", type=float, help="seconds over which the clients start (default: --think)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds left out of the latency figures")
    parser.add_argument("--processes", type=int, default=4, help="client processes (threads spread over them)")
    faces = parser.add_mutually_exclusive_group()
    faces.add_argument("--data", help="Kaggle keypoints CSV to import (default: ../shared/data/keypoints.csv.gz)")
    faces.add_argument(
        "--synthetic",
        type=int,
        default=0,
        help="N synthetic faces instead of the real file, for runs that would label all of it: 50 clients without think"
        " time label its 3,447 faces in ~15 s, and then the queue serves labeled faces again",
    )
    args = parser.parse_args()

    tokens = prepare(args.clients, args.data, args.synthetic)
    database = os.environ.get("DATABASE_URL", "sqlite (var)")
    overrides = {"--workers": args.workers, "--threads": args.threads, "--worker-class": args.worker_class}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "python:webapp.gunicorn",  # the web role's settings (one thread per process, cores + 1 processes)
            "webapp.wsgi",
            "--bind",
            f"127.0.0.1:{args.port}",
            "--log-level",
            "warning",
            *(str(x) for flag, value in overrides.items() if value is not None for x in (flag, value)),
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
        started = time.perf_counter()
        # Labelers do not all press "next" in the same millisecond: client i starts at i/N of the ramp. Latencies count
        # from the end of the warm-up, so the figures are the steady state, not the start-up burst (printed apart).
        ramp = args.think if args.ramp is None else args.ramp
        measured_from = started + max(args.warmup, ramp)
        stop_at = measured_from + args.seconds
        # The clients run in --processes processes (threads inside each), so the load generator's own GIL does not
        # add to the latencies it measures; perf_counter is the system's monotonic clock, shared by the processes.
        starts = [(i, token, started + ramp * i / len(tokens)) for i, token in enumerate(tokens)]
        slices = [starts[i :: args.processes] for i in range(args.processes)]
        before, database_before = cpu_seconds(), database_cpu_seconds()
        with multiprocessing.get_context("fork").Pool(args.processes) as pool:
            parts = pool.starmap(run_clients, [(part, args.port, stop_at, args.think) for part in slices])
            pool.close()
            pool.join()
        clients_cpu = cpu_seconds() - before
        database_cpu = database_cpu_seconds() - database_before if database.startswith("postgres") else 0.0
        clients = [c for part in parts for c in part]
    finally:
        server.terminate()
        server.wait(timeout=30)
    server_cpu = cpu_seconds() - before - clients_cpu  # gunicorn's master and workers, reaped by now (incl. start-up)
    every = [r for c in clients for r in c.requests]
    steady = [r for r in every if r[0] >= measured_from]

    def quantiles(rows) -> dict:
        values = sorted(seconds for _, seconds, _ in rows)
        if not values:
            return {}
        q = lambda p: round(values[min(len(values) - 1, int(p * len(values)))] * 1000, 1)  # noqa: E731
        return {"n": len(values), "p50_ms": q(0.50), "p99_ms": q(0.99), "max_ms": q(1.0)}

    # A client surely holds a face from its arrival until the save is sent; while the save is in flight the server may
    # already have released the lease and served the (now labeled) face to someone else, whose answer can arrive first.
    holds: dict[int, list[tuple[float, float, float, int]]] = {}
    for c in clients:
        for face, start, sent, answered in c.held:
            holds.setdefault(face, []).append((start, sent, answered, c.index))
    pairs = [(a, b) for spans in holds.values() for j, a in enumerate(spans) for b in spans[j + 1 :] if a[3] != b[3]]
    twice = sum(1 for (s1, e1, _, _), (s2, e2, _, _) in pairs if s1 < e2 and s2 < e1)
    in_flight = sum(1 for (s1, _, a1, _), (s2, _, a2, _) in pairs if s1 < a2 and s2 < a1) - twice
    errors = [e for c in clients for e in c.errors]
    window = stop_at - measured_from
    print(
        json.dumps(
            {
                "clients": args.clients,
                "think_s": args.think,
                "served_to_two_at_once": twice,
                "served_again_while_a_save_was_in_flight": in_flight,
                "gunicorn": gunicorn_settings(overrides),
                "database": database,
                "measured_s": round(window, 1),
                "requests": len(steady),
                "requests_per_s": round(len(steady) / window, 1),
                "annotations_saved": sum(len(c.exclude) for c in clients),
                **{k: v for k, v in quantiles(steady).items() if k != "n"},
                "by_request": {
                    "GET /api/queue/next/": quantiles([r for r in steady if r[2] == "GET"]),
                    "POST annotations": quantiles([r for r in steady if r[2] == "POST"]),
                },
                "start_up": {
                    "ramp_s": ramp,
                    "warmup_s": round(measured_from - started, 1),
                    **quantiles([r for r in every if r[0] < measured_from]),
                },
                "client_processes": args.processes,
                "mean_ms": round(statistics.mean(seconds for _, seconds, _ in steady) * 1000, 1),
                # CPU per request on this machine: the load generator shares its cores with the server.
                "cpu_ms_per_request": {
                    "server": round(server_cpu / len(every) * 1000, 2),
                    "clients": round(clients_cpu / len(every) * 1000, 2),
                    "database_server": round(database_cpu / len(every) * 1000, 2),
                },
                "cores": os.cpu_count(),
                "errors": len(errors),
                "first_errors": errors[:3],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
