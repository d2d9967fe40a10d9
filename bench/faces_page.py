"""The Faces page at scale: the filtered face list and its counts at 100,000 faces on PostgreSQL (issue #28's goal:
p95 < 300 ms, the first grid in < 1 s).

    .venv/bin/python bench/faces_page.py [--faces 100000] [--requests 300] [--keep] [--browser]

A throwaway PostgreSQL database (bench_faces_page on 127.0.0.1:5432) gets ``--faces`` faces written straight into its
tables (one shared 96x96 image file: the page's queries never read pixels): five imported files and uploads, a
person per 20 faces, imported emotion labels on 90 % with 3 % of them corrected by one of 20 labelers, a model's guess
on 60 %, a label check's suspicion on 30 %. Then ``--requests`` requests of the page's API, each a random mix of 0-3
filters and an ordering (as people click), go through Django's full stack in process (middleware, session auth,
DRF, the database; no network), and the time per request is reported by endpoint: p50, p95, max. ``--browser``
also opens /faces/ in Chromium against a local server on that database and times the first grid.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DB = "bench_faces_page"
URL = f"postgres://postgres@127.0.0.1:5432/{DB}"
OUT = ROOT / "bench" / "out" / "faces_page"
CLASSES = ["anger", "disgust", "fear", "happiness", "sad", "surprise", "neutral"]


def fill(n: int, seed: int = 1) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from webapp.faces.labeling.models import Annotation, FaceSummary
    from webapp.faces.models import Face
    from webapp.faces.store.images import png_bytes

    rng = np.random.default_rng(seed)
    media = Path(os.environ["VAR_DIR"]) / "media"
    (media / "faces").mkdir(parents=True, exist_ok=True)
    (media / "faces" / "bench.png").write_bytes(png_bytes(np.full((96, 96), 128, np.uint8)))
    users = [get_user_model().objects.get_or_create(username=f"labeler{i}")[0] for i in range(20)]
    files = ["fer2013.csv.gz", "lab-a.csv", "lab-b.csv", "pool.csv.gz", "clinic.csv"]
    batch = 5000
    for start in range(0, n, batch):
        size = min(batch, n - start)
        upload = rng.random(size) < 0.1
        with transaction.atomic():
            faces = Face.objects.bulk_create(
                Face(
                    checksum=f"{start + i:064x}",
                    image="faces/bench.png",
                    source="upload" if upload[i] else "import",
                    source_name=f"photo-{start + i}.jpg" if upload[i] else files[rng.integers(len(files))],
                    source_line=None if upload[i] else start + i + 2,
                    split="val" if rng.random() < 0.1 else "train",
                    group=f"person-{(start + i) // 20}",
                    emotion_uncertainty=float(rng.random()) if rng.random() < 0.6 else None,
                    review_emotion=bool(rng.random() < 0.01),
                )
                for i in range(size)
            )
            labels, summaries = [], []
            for face, up in zip(faces, upload, strict=True):
                label = CLASSES[rng.integers(7)] if not up and rng.random() < 0.9 else None
                corrected = label is not None and rng.random() < 0.03
                if label:
                    labels.append(Annotation(face=face, origin="import", emotion=label))
                final = CLASSES[rng.integers(7)] if corrected else label
                if corrected:
                    labels.append(Annotation(face=face, origin="human", emotion=final, author=users[rng.integers(20)]))
                guess = CLASSES[rng.integers(7)] if face.emotion_uncertainty is not None else None
                summaries.append(
                    FaceSummary(
                        face=face,
                        emotion=final,
                        emotion_source=("human" if corrected else "import") if final else "",
                        disputed=corrected and final != label,
                        guess=guess,
                        guess_probability=float(rng.random()) if guess else None,
                        emotion_suspicion=float(rng.random()) if final and rng.random() < 0.3 else None,
                        excluded=bool(rng.random() < 0.01),
                    )
                )
            Annotation.objects.bulk_create(labels)
            FaceSummary.objects.bulk_create(summaries)
        print(f"{start + size} faces", file=sys.stderr, flush=True)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def queries(rng, count: int) -> list[tuple[str, str]]:
    """Random mixes of what people click: 0-3 filters (and the same with an ordering)."""
    choices = {
        "dataset": ["fer2013.csv.gz", "lab-a.csv", "pool.csv.gz", "uploads"],
        "split": ["train", "val"],
        "source": ["import", "upload"],
        "state": ["unlabeled", "labeled", "review", "disputed"],
        "emotion": [*CLASSES, "none"],
        "guess": ["sad", "happiness", "none"],
        "mismatch": ["true"],
        "labeler": ["labeler3"],
        "q": ["lab-b", "#4321", "photo-12"],
        "uncertainty_min": ["0.8"],
        "suspicion_min": ["0.7"],
        "excluded": ["true"],
        "created_after": ["2026-01-01"],
    }
    orderings = ["-id", "-emotion_suspicion", "-emotion_uncertainty", "emotion", "dataset", "-guess_probability"]
    out = []
    for _ in range(count):
        names = rng.choice(list(choices), size=rng.integers(0, 4), replace=False)
        params = {name: rng.choice(choices[name]) for name in names}
        out.append((urlencode(params), urlencode({**params, "ordering": rng.choice(orderings)})))
    return out


def timed(client, urls: list[str]) -> dict:
    times = []
    for url in urls:
        t0 = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, (url, response.content[:300])
    times = np.array(times)
    return {
        "requests": len(times),
        "p50_ms": round(float(np.percentile(times, 50)), 1),
        "p95_ms": round(float(np.percentile(times, 95)), 1),
        "max_ms": round(float(times.max()), 1),
    }


def browser_first_grid(env: dict) -> float:
    from playwright.sync_api import sync_playwright

    server = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "runserver", "127.0.0.1:8765", "--noreload"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(6)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto("http://127.0.0.1:8765/accounts/login/")
            page.fill("input[name=username]", "bench-staff")
            page.fill("input[name=password]", "bench")
            page.click("button.primary")
            page.wait_for_load_state()
            t0 = time.perf_counter()
            page.goto("http://127.0.0.1:8765/faces/")
            page.wait_for_function("document.querySelectorAll('.tile').length > 0", timeout=30_000)
            seconds = time.perf_counter() - t0
            browser.close()
        return seconds
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--keep", action="store_true", help="reuse the filled database")
    parser.add_argument("--browser", action="store_true", help="also time the first grid in Chromium")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "webapp.settings.base",
        "DATABASE_URL": URL,
        "VAR_DIR": str(OUT),
        "LOG_LEVEL": "WARNING",
    }
    if not args.keep:
        subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", DB], check=True)
        subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", DB], check=True)
        subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "-v0"], env=env, cwd=ROOT, check=True)
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.test import Client

    from webapp.faces.models import Face

    if not args.keep:
        fill(args.faces)
    staff = get_user_model().objects.filter(username="bench-staff").first()
    if staff is None:
        staff = get_user_model().objects.create_user("bench-staff", password="bench", is_staff=True)
    client = Client(SERVER_NAME="localhost")
    client.force_login(staff)
    rng = np.random.default_rng(7)
    mixes = queries(rng, args.requests)
    client.get("/api/faces/?limit=60")  # warm: first connection, URL resolver, serializers
    result = {
        "faces": Face.objects.count(),
        "database": "PostgreSQL",
        "list (limit 60)": timed(client, [f"/api/faces/?{ordered}&limit=60" for _, ordered in mixes]),
        "counts (facets)": timed(client, [f"/api/faces/facets/?{filters}" for filters, _ in mixes]),
        "page html": timed(client, ["/faces/"] * 20),
    }
    if args.browser:
        result["first_grid_s"] = round(browser_first_grid(env), 2)
    print(json.dumps(result, indent=2))
    (OUT / "results.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
