"""How GET /api/queue/next/ grows with the queue: the same requests against 3k, 30k and 100k faces.

    .venv/bin/python bench/queue_sweep.py [--sizes 3000 30000 100000] [--requests 300]

For each size, a fresh SQLite instance in bench/out/queue-sweep/ gets that many face rows (bulk-inserted: the queue
reads rows, never the image files), a tenth of them with a human label, every one with a model uncertainty, and a
tenth of the rest leased to other labelers (live leases the queue must step over). One labeler then asks for the next
face and lets it go (as a skip does), ``--requests`` times after 20 warm-up requests, through the API in-process (DRF,
the ORM, SQLite in WAL mode); it prints p50 / p99 per size, and the very first request's time apart (a cold process and
page cache).

With DATABASE_URL set to a PostgreSQL database, each size gets that database dropped and created afresh instead (the
setup's rows are ANALYZEd, as autovacuum would have them on a running instance); the figures say which database.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "queue-sweep"


def recreate_postgres(url: str) -> None:
    """Drop and create the database DATABASE_URL names (connecting to the server's ``postgres`` database)."""
    from urllib.parse import urlsplit

    import psycopg

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


def run_size(size: int, requests: int) -> dict:
    out = OUT / str(size)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "webapp.settings.base", "VAR_DIR": str(out), "DEBUG": "false"}
    if env.get("DATABASE_URL", "").startswith("postgres"):
        recreate_postgres(env["DATABASE_URL"])
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "-v0"], env=env, cwd=ROOT, check=True)
    script = f"""
import gc, json, random, time
from datetime import timedelta
from django.contrib.auth.models import Group, User
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient
from webapp.faces.models import Face, Lease

rng = random.Random(0)
faces = [
    Face(checksum=f"{{i:064x}}", image=f"faces/x/{{i}}.png", source="import", split="train",
         human_keypoints=rng.random() < 0.1, keypoints_uncertainty=rng.random())
    for i in range({size})
]
Face.objects.bulk_create(faces, batch_size=5000)
others = [User.objects.create_user(f"other{{i}}") for i in range(20)]
ids = list(Face.objects.filter(human_keypoints=False).values_list("id", flat=True))
until = timezone.now() + timedelta(hours=1)
Lease.objects.bulk_create(
    [Lease(face_id=f, task="keypoints", holder=others[i % 20], expires_at=until) for i, f in enumerate(ids[::10])],
    batch_size=5000,
)
del faces, ids  # a server process holds none of the rows set up here
gc.collect()
with connection.cursor() as cursor:  # the setup's writes settled, as a running instance has them
    cursor.execute("ANALYZE" if connection.vendor == "postgresql" else "PRAGMA wal_checkpoint(TRUNCATE)")
labeler = User.objects.create_user("bench-labeler")
labeler.groups.add(Group.objects.get_or_create(name="labelers")[0])
client = APIClient(SERVER_NAME="localhost")
client.force_authenticate(labeler)
times = []
for i in range(20 + {requests}):  # the first 20 warm the process and the page cache: left out, the first one printed
    t0 = time.perf_counter()
    body = client.get("/api/queue/next/?task=keypoints").json()
    times.append(time.perf_counter() - t0)
    client.delete(f"/api/faces/{{body['face']['id']}}/lease/")
first, times = times[0], sorted(times[20:])
print(json.dumps({{"faces": {size}, "database": connection.vendor, "p50_ms": round(1000 * times[len(times) // 2], 2),
                  "p99_ms": round(1000 * times[int(0.99 * len(times))], 2), "first_ms": round(1000 * first, 1)}}))
"""
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "shell", "-c", script],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[3000, 30000, 100000])
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    results = []
    for size in args.sizes:
        t0 = time.monotonic()
        results.append({**run_size(size, args.requests), "setup_and_run_s": round(time.monotonic() - t0, 1)})
        print(json.dumps(results[-1]), flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
