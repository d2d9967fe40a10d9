"""What N fresh human labels change in the validation metric, measured through the product's own loop.

    .venv/bin/python bench/corrections.py --kind keypoints [--n 200]

1. A throwaway instance in bench/out/corrections-<kind>/ (SQLite, the local Redis on db 13, one real Celery worker)
   imports the real file for the kind from ../shared/data.
2. N training faces, one contiguous run of rows from the middle of the file (so mostly people the rest of the training
   set does not show), are set aside: a labeler marks them skipped, which leaves them without a label, like faces
   nobody has labeled yet.
3. A model is trained from scratch without them (`manage.py retrain --from-scratch --wait`) and staff make it active:
   the parent. The shipped baseline saw every face, so it cannot be the parent.
4. Control: fine-tune the parent on the same labels -> metric A.
5. Staff make the parent active again; the labeler labels the N faces (a human annotation each, with the file's
   label: the correction a careful labeler would make) -> fine-tune the parent -> metric B.

A and B come from the same worker, settings and fixed validation faces (the N faces are training faces), so B - A is
what the N labels changed. The parent's error on the N faces before they were labeled is printed too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

from instance import DATA, ROOT, instance_env, start_worker

FILES = {"keypoints": ("kaggle-keypoints", "keypoints.csv.gz"), "emotion": ("fer2013", "fer2013.csv.gz")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=sorted(FILES), default="keypoints")
    parser.add_argument("--n", type=int, default=200, help="how many faces get fresh labels")
    args = parser.parse_args()
    out = ROOT / "bench" / "out" / f"corrections-{args.kind}"
    env = instance_env(out, redis_db=13)
    os.environ.update(env)  # this process reads the same instance through Django
    manage = [sys.executable, str(ROOT / "manage.py")]

    def command(*a: str) -> subprocess.CompletedProcess:
        return subprocess.run([*manage, *a], env=env, cwd=ROOT, check=True, capture_output=True, text=True)

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    command("migrate", "-v0")
    fmt, name = FILES[args.kind]
    command("import_faces", "--format", fmt, str(DATA / name), "-v0")

    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from ml.datasets import FaceData
    from ml.evaluate import evaluate_model
    from ml.export import load_tfjs
    from webapp.faces.labeling.selectors import current_labels, training_set
    from webapp.faces.labeling.services import annotation_submit
    from webapp.faces.models import Face
    from webapp.registry.models import ActiveVersion, ModelVersion, Promotion
    from webapp.registry.selectors import version_dir
    from webapp.registry.services import version_promote
    from webapp.training.models import TrainingRun

    labeler, _ = get_user_model().objects.get_or_create(username="bench-labeler")
    staff, _ = get_user_model().objects.get_or_create(username="bench-staff", defaults={"is_staff": True})
    labels = current_labels(task=args.kind)
    train_faces = list(Face.objects.filter(split=Face.Split.TRAIN, pk__in=labels).order_by("source_line"))
    middle = len(train_faces) // 2 - args.n // 2
    chosen = train_faces[middle : middle + args.n]
    held_labels = {face.pk: labels[face.pk] for face in chosen}
    for face in chosen:
        annotation_submit(face=face, author=labeler, skip=True)

    worker = start_worker(env, out)

    def retrain(*flags: str) -> dict:
        t0 = time.monotonic()
        command("retrain", "--kind", args.kind, *flags, "--wait")
        run = TrainingRun.objects.filter(kind=args.kind).latest("id")
        counts = run.version.trained_on
        report = {
            "version": run.version.number,
            "seconds": round(time.monotonic() - t0, 1),
            "train_faces": counts["train"],
            "val_faces": counts["val"],
            "human_labels": counts["human_labels"],
            **{k: run.metrics[k] for k in ("rmse_px", "pck_0.05", "accuracy", "macro_f1") if k in run.metrics},
        }
        print(json.dumps(report), flush=True)
        return report

    def on_chosen(version: ModelVersion) -> dict:
        import numpy as np

        data = training_set(task=args.kind)
        mask = np.isin(data.face_ids, [face.pk for face in chosen])
        target = "points" if args.kind == "keypoints" else "labels"
        picked = {"images": data.images[mask], "lines": data.face_ids[mask], target: data.targets[mask]}
        subset = FaceData(format="db", **picked)
        metrics = evaluate_model(load_tfjs(version_dir(version)), subset)
        return {k: metrics[k] for k in ("rmse_px", "accuracy", "macro_f1", "n") if k in metrics}

    def make_active(version: ModelVersion) -> None:
        if not ActiveVersion.objects.filter(kind=args.kind, version=version).exists():
            version_promote(version=version, author=staff, action=Promotion.Action.PROMOTE, reason="bench parent")

    results: dict = {"kind": args.kind, "n": args.n}
    try:
        results["parent"] = retrain("--from-scratch")
        parent = ModelVersion.objects.get(kind=args.kind, number=results["parent"]["version"])
        make_active(parent)
        results["control"] = retrain()
        make_active(parent)
        field = "points" if args.kind == "keypoints" else "emotion"
        for face in chosen:
            annotation_submit(face=face, author=labeler, **{field: held_labels[face.pk]})
        results["parent_on_new_faces"] = on_chosen(parent)
        results["with_new_labels"] = retrain()
        key = "rmse_px" if args.kind == "keypoints" else "accuracy"
        results["change"] = {key: round(results["with_new_labels"][key] - results["control"][key], 4)}
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
