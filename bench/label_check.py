"""Does the label check find wrong labels? Issue #28's goal, run as a lab would:

    .venv/bin/python bench/label_check.py [--flip 0.15] [--seed 1] [--keep]

1. The lab's pool (../shared/data/ckplus/pool.csv.gz) split by person as bench/domain.py splits it: a third of the
   people only measure ("other people"), the rest are the lab's labeled file.
2. A throwaway instance in bench/out/label_check/ (SQLite, the local Redis on db 11, one real Celery worker) with
   FER2013 imported and the shipped baselines served.
3. **Clean**: the labelable people's file imported as it is (`import_faces`), one `retrain --kind emotion --wait`; the
   model served afterwards is scored on the other people. Then its faces go and the baseline is served again.
4. **Flipped**: the same file with ``--flip`` of its labels changed at random (seeded) to another of the pool's
   classes, imported beside FER2013; `label_check --kind emotion --wait`; the top k suspects (k = the number flipped,
   `GET /api/faces/?dataset=<file>&ordering=-emotion_suspicion&limit=k`) are compared with the flipped faces
   (precision at k); those k faces are then corrected through the API (a labeler looks at each and posts its true
   label; one that was right keeps it), and one `retrain --kind emotion --wait` runs; the served model is scored on
   the other people.

Prints JSON and writes bench/out/label_check/results.json. Goals: precision at k >= 0.80; the corrected run's served
score on the other people within 0.01 of the clean run's.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import sys
import time

import numpy as np
from domain import POOL, lab_split
from instance import DATA, ROOT, fresh_instance, labeling_env, manage, start_worker

OUT = ROOT / "bench" / "out" / "label_check"


def write_pool(path, rows: list[dict], labels: np.ndarray) -> None:
    with gzip.open(path, "wt", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for row, label in zip(rows, labels, strict=True):
            writer.writerow({**row, "emotion": int(label)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flip", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="reuse the instance (FER2013 already imported)")
    parser.add_argument("--skip-clean", action="store_true", help="leave out the clean run (its figure: results.json)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="the instance holds the clean run and the flipped file's label check already: score the clean run's "
        "version, read the check's suspects, then correct them and retrain",
    )
    args = parser.parse_args()
    env = labeling_env(OUT, redis_db=11)
    os.environ.update(env)
    command = manage(env)
    if not args.keep:
        fresh_instance(OUT, command, "fer2013", DATA / "fer2013.csv.gz")

    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    from ml.align import framing_of
    from ml.datasets import read_faces, split
    from ml.evaluate import evaluate
    from ml.export import load_tfjs, read_manifest
    from ml.schema import FER_CLASSES
    from tests.factories import user as make_user
    from webapp.faces.models import Face
    from webapp.registry.models import ActiveVersion, ModelVersion, Promotion
    from webapp.registry.selectors import version_dir
    from webapp.registry.services import version_promote
    from webapp.training.models import TrainingRun

    _, other, labelable = lab_split()
    with gzip.open(POOL, "rt", newline="") as f:
        rows = list(csv.DictReader(f))
    keep = np.isin(np.array([r["subject"] for r in rows]), labelable)
    rows = [r for r, k in zip(rows, keep, strict=True) if k]
    truth = np.array([int(r["emotion"]) for r in rows])
    classes = sorted(set(truth))
    rng = np.random.default_rng(args.seed)
    flipped = np.zeros(len(rows), bool)
    flipped[rng.choice(len(rows), size=round(args.flip * len(rows)), replace=False)] = True
    noisy = truth.copy()
    for i in np.flatnonzero(flipped):
        noisy[i] = rng.choice([c for c in classes if c != truth[i]])

    fer_val = split(read_faces(DATA / "fer2013.csv.gz"))[1]
    baseline = ModelVersion.objects.get(kind="emotion", number=1)
    staff = get_user_model().objects.filter(is_staff=True).first()
    labeler = get_user_model().objects.filter(username="bench-labeler").first() or make_user("labeler", "bench-labeler")
    client = APIClient(SERVER_NAME="localhost")
    client.force_authenticate(labeler)

    def score(version: ModelVersion) -> dict:
        directory = version_dir(version)
        model, framing = load_tfjs(directory), framing_of(read_manifest(directory))
        return {
            "other_people": round(evaluate(model, other, framing)[0]["accuracy"], 4),
            "fer_val": round(evaluate(model, fer_val, framing)[0]["accuracy"], 4),
        }

    def start_over() -> None:
        Face.objects.exclude(source_name="fer2013.csv.gz").delete()  # the lab's file goes with its labels
        if not ActiveVersion.objects.filter(kind="emotion", version=baseline).exists():
            version_promote(version=baseline, author=staff, action=Promotion.Action.ROLLBACK, reason="bench")

    def on_worker(*steps) -> float:
        worker = start_worker({**env, "TRAINING_SEED": str(args.seed)}, OUT)
        try:
            t0 = time.monotonic()
            for step in steps:
                command(*step)
            return round(time.monotonic() - t0, 1)
        finally:
            worker.terminate()
            worker.wait(timeout=60)

    def served() -> dict:
        """What users get after the run (the served version), and the run's own version as a candidate: the rule may
        keep it unserved (the reference slice's tolerance), and the check's worth shows in the candidate too."""
        run = TrainingRun.objects.filter(kind="emotion", job="retrain").latest("id")
        version = ActiveVersion.objects.get(kind="emotion").version
        candidate = score(run.version) if run.version else None
        return {
            "promoted": run.promoted,
            "served": version.number,
            "decision": run.decision,
            **score(version),
            "candidate": candidate,
        }

    results = json.loads((OUT / "results.json").read_text()) if args.keep and (OUT / "results.json").is_file() else {}
    results.update(
        faces=len(rows),
        people=len(labelable),
        flipped=int(flipped.sum()),
        classes=[FER_CLASSES[c] for c in classes],
        baseline=score(baseline),
    )
    print(json.dumps(results), flush=True)

    if args.resume:
        first = TrainingRun.objects.filter(kind="emotion", job="retrain").earliest("id")
        results["clean"] = {
            "promoted": first.promoted,
            "served": (first.version if first.promoted else baseline).number,
            "decision": first.decision,
            **score(first.version if first.promoted else baseline),
            "candidate": score(first.version) if first.version else None,
            "seconds": round((first.finished_at - first.started_at).total_seconds(), 1),
        }
        print(json.dumps({"clean": results["clean"]}), flush=True)
    elif not args.skip_clean:
        start_over()
        clean = OUT / "pool-clean.csv.gz"
        write_pool(clean, rows, truth)
        command("import_faces", "--format", "fer2013", str(clean), "-v0")
        seconds = on_worker(("retrain", "--kind", "emotion", "--wait"))
        results["clean"] = {**served(), "seconds": seconds}
        print(json.dumps({"clean": results["clean"]}), flush=True)

    name = f"pool-flipped-{round(args.flip * 100)}.csv.gz"
    if args.resume:
        checked = TrainingRun.objects.filter(kind="emotion", job="label_check").latest("id")
        seconds = round((checked.finished_at - checked.started_at).total_seconds(), 1)
    else:
        start_over()
        write_pool(OUT / name, rows, noisy)
        command("import_faces", "--format", "fer2013", str(OUT / name), "-v0")
        seconds = on_worker(("label_check", "--kind", "emotion", "--wait"))
    k = int(flipped.sum())
    response = client.get(f"/api/faces/?dataset={name}&ordering=-emotion_suspicion&limit={k}")
    assert response.status_code == 200, response.content
    suspects = response.json()["results"]
    # a face's line in the file (line 1 is the header) -> its row
    hits = [bool(flipped[face["source_line"] - 2]) for face in suspects]
    check = {
        "seconds": seconds,
        "k": k,
        "precision_at_k": round(float(np.mean(hits)), 4),
        "suggested_right": round(
            float(
                np.mean(
                    [
                        face["emotion_suggestion"] == FER_CLASSES[truth[face["source_line"] - 2]]
                        for face, hit in zip(suspects, hits, strict=True)
                        if hit
                    ]
                )
            ),
            4,
        ),
        "run": TrainingRun.objects.filter(job="label_check").latest("id").decision,
    }
    print(json.dumps({"check": check}), flush=True)
    for face in suspects:  # a labeler opens each suspect and posts what it shows
        true = FER_CLASSES[truth[face["source_line"] - 2]]
        response = client.post(f"/api/faces/{face['id']}/annotations/", {"emotion": true}, format="json")
        assert response.status_code == 201, response.content
    seconds = on_worker(("retrain", "--kind", "emotion", "--wait"))
    results["flipped_run"] = {"check": check, "corrected": {**served(), "seconds": seconds}}
    if "clean" in results:
        corrected, clean = results["flipped_run"]["corrected"], results["clean"]
        served_gap = corrected["other_people"] - clean["other_people"]
        results["flipped_run"]["served_corrected_minus_clean"] = round(served_gap, 4)
        if corrected.get("candidate") and clean.get("candidate"):
            gap = corrected["candidate"]["other_people"] - clean["candidate"]["other_people"]
            results["flipped_run"]["candidate_corrected_minus_clean"] = round(gap, 4)
    print(json.dumps({"corrected": results["flipped_run"]}), flush=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
