"""Where a labeling request's CPU goes, in-process (no server, no network): one labeler takes the next face from the
queue and saves it, N times, through Django's test client with a token, on a throwaway instance with the real
keypoint faces (the same one bench/load_labeling.py builds).

    .venv/bin/python bench/profile_labeling.py [--cycles 300]

Prints, per request kind, the median CPU time of the request's thread and its number of SQL queries (timed without the
profiler), then, from a second, profiled pass, the share of the time spent in each layer (by the file a function lives
in): SQLite itself, Django's ORM, DRF, the rest of Django, this project's code, Python's library and built-ins.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import sys
import time

from load_labeling import OUT, ROOT, django_env, prepare

LAYERS = [
    ("sqlite (C)", ("sqlite3.Cursor", "sqlite3.Connection", "SQLiteCursorWrapper.execute")),
    ("django ORM", ("django/db/",)),
    ("DRF", ("rest_framework/",)),
    ("django (rest)", ("django/",)),
    ("this project", (str(ROOT / "webapp"), str(ROOT / "ml"))),
    ("Python's library and built-ins", ("/lib/python3", "<built-in", "<method", "~:")),
]


def layer(filename: str, name: str) -> str:
    where = f"{filename}:{name}"
    return next((label for label, keys in LAYERS if any(k in where for k in keys)), "other")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=300)
    args = parser.parse_args()
    prepare(1, None)
    os.environ.update(django_env())
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from rest_framework.authtoken.models import Token

    token = Token.objects.get()
    client = Client(HTTP_AUTHORIZATION=f"Token {token.key}", HTTP_ACCEPT="application/json")
    points = [{"x": 30.0 + i, "y": 40.0 + i, "visible": True} for i in range(15)]
    cpu: dict[str, list[float]] = {"GET /api/queue/next/": [], "POST annotations": []}
    queries: dict[str, int] = {}

    def timed(kind, call):
        count = []  # an execute wrapper counts the queries (Django's debug cursor would add its own cost)
        with connection.execute_wrapper(lambda execute, *a: count.append(1) or execute(*a)):
            t0 = time.thread_time()
            response = call()
            cpu[kind].append(time.thread_time() - t0)
        queries[kind] = len(count)
        return response

    def cycle(i: int) -> None:
        face = timed("GET /api/queue/next/", lambda: client.get("/api/queue/next/?task=keypoints")).json()["face"]
        body = json.dumps({"points": points, "emotion": i % 5})
        url = f"/api/faces/{face['id']}/annotations/"
        timed("POST annotations", lambda: client.post(url, body, content_type="application/json"))

    for i in range(20):  # warm: the first requests import and compile
        cycle(i)
    for values in cpu.values():
        values.clear()
    for i in range(args.cycles):  # timed, without the profiler
        cycle(i)
    requests = {
        kind: {"median_cpu_ms": round(statistics.median(v) * 1000, 2), "queries": queries[kind]}
        for kind, v in cpu.items()
    }
    profile = cProfile.Profile()
    profile.enable()
    for i in range(args.cycles):  # profiled: slower, so only the shares below come from this pass
        cycle(i)
    profile.disable()
    shares: dict[str, float] = {}
    for (filename, _, name), (_, _, self_time, _, _) in pstats.Stats(profile).stats.items():
        where = layer(filename, name)
        shares[where] = shares.get(where, 0.0) + self_time
    total = sum(shares.values())
    print(
        json.dumps(
            {
                "cycles": args.cycles,
                "instance": str(OUT),
                "requests": requests,
                "profiled_time_share": {k: round(v / total, 3) for k, v in sorted(shares.items(), key=lambda x: -x[1])},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
