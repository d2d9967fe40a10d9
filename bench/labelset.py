"""The label set's goals (issue #27), measured: what the served emotion model says of calm faces, and whether the loop
learns a class no data set in the app has.

    .venv/bin/python bench/labelset.py served [--model models/baseline/emotion]
    .venv/bin/python bench/labelset.py contempt [--pool ../shared/data/ckplus/pool_named.csv.gz]

``served``: an emotion export (default: the shipped baseline the app serves) on FER2013's validation faces
(PublicTest, without the faces that repeat a training face; FER2013's held-out test faces are not here): accuracy in
the model's own classes, the seed's five classes read through their five outputs, each class's recall, and how often
a calm (neutral) or a fear face is shown as a sure wrong emotion (top class >= 50 % and not its own class; the demo
shows such a face without "low confidence"). Also the download size of both shipped baselines.

``contempt``: a fresh instance (bench/instance.py) with FER2013 imported; then, as a lab would,
``labelset emotion --add contempt``, ``import_faces --format fer2013 pool_named.csv.gz`` with a third of the lab's
people held out (bench/domain.py's stable person split: they only measure), one worker and
``retrain --kind emotion --wait`` timed. Prints the decision and the served model's recall per class on the held-out
people, before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench" / "out" / "labelset"
SURE = 0.5  # the demo's LOW_CONFIDENCE: at or above it a face's top class is shown as the answer
HELD_OUT_FRACTION = 1 / 3  # bench/domain.py's TEST_FRACTION: the same people measure


def shown_as_sure_wrong(probabilities: np.ndarray, truth: int) -> float:
    top = probabilities.argmax(1)
    return float(np.mean((probabilities.max(1) >= SURE) & (top != truth)))


def sweep(probabilities: np.ndarray, labels: np.ndarray, names: list[str], name: str) -> list[dict]:
    """What adding a shift to one class's logit would do (ml.models.shift_priors, here on the probabilities): accuracy,
    that class's recall, and how often its faces are shown as a sure wrong class."""
    c, rows = names.index(name), []
    for shift in (-0.4, -0.2, -0.1, 0.0, 0.1, 0.2, 0.4):
        logits = np.log(probabilities + 1e-9)
        logits[:, c] += shift
        q = np.exp(logits - logits.max(1, keepdims=True))
        q /= q.sum(1, keepdims=True)
        own = labels == c
        rows.append(
            {
                "shift": shift,
                "accuracy": round(float(np.mean(q.argmax(1) == labels)), 4),
                f"{name}_recall": round(float(np.mean(q[own].argmax(1) == c)), 4),
                f"{name}_shown_as_sure_wrong": round(shown_as_sure_wrong(q[own], c), 4),
            }
        )
    return rows


def served(model_dir: Path, data: Path, sweep_class: str | None = None) -> dict:
    from ml.align import framing_of
    from ml.datasets import read_faces, split
    from ml.evaluate import evaluate, model_outputs
    from ml.export import load_tfjs, read_manifest
    from ml.schema import PRESETS

    manifest = read_manifest(model_dir)
    labels, framing = manifest["labels"], framing_of(manifest)
    model = load_tfjs(model_dir)
    val = split(read_faces(data, labels=labels))[1]
    metrics = evaluate(model, val, framing)[0]
    probabilities = model_outputs(model, val, framing)
    report = {
        "model": str(model_dir),
        "labels": labels,
        "faces": "FER2013 PublicTest without repeats of training faces",
        "n": metrics["n"],
        "accuracy": round(metrics["accuracy"], 4),
        "macro_f1": round(metrics["macro_f1"], 4),
        "recall": {k: round(v, 4) for k, v in metrics["per_class_recall"].items()},
    }
    for name in ("neutral", "fear"):
        if name in labels:
            mask = val.labels == labels.index(name)
            report[f"{name}_shown_as_sure_wrong"] = round(
                shown_as_sure_wrong(probabilities[mask], labels.index(name)), 4
            )
    if sweep_class:
        report["prior_sweep"] = {
            "relative_to": manifest.get("prior_shift", {}),
            "rows": sweep(probabilities, val.labels, labels, sweep_class),
        }
    five = split(read_faces(data, labels=PRESETS["seed-five"]))[1]
    five_metrics = evaluate(model, five, framing, labels=labels)[0]
    report["seed_five_through_their_outputs"] = {"n": five_metrics["n"], "accuracy": round(five_metrics["accuracy"], 4)}
    if not {"neutral", "fear"} <= set(labels):  # a model without them: how it reads FER's neutral and fear faces
        seven = split(read_faces(data))[1]
        seven_probs = model_outputs(model, seven, framing)
        for name in ("neutral", "fear"):
            if name not in labels:
                mask = seven.labels == seven.label_names.index(name)
                report[f"{name}_shown_as_a_sure_emotion"] = round(float(np.mean(seven_probs[mask].max(1) >= SURE)), 4)
    sizes = {}
    for kind_dir in sorted((ROOT / "models" / "baseline").iterdir()):
        if (kind_dir / "model.json").is_file():
            files = [p for p in kind_dir.iterdir() if p.name == "model.json" or p.suffix == ".bin"]
            sizes[kind_dir.name] = sum(p.stat().st_size for p in files)
    report["download_bytes"] = {**sizes, "served_pair": sizes.get("keypoints", 0) + sizes.get("emotion", 0)}
    return report


def contempt(pool: Path, keep: bool = False) -> dict:
    from instance import fresh_instance, instance_env, manage, timed_retrain

    from ml.datasets import group_held_out, read_faces

    env = instance_env(OUT, redis_db=11)
    os.environ.update(env)
    command = manage(env)
    if not keep:
        fresh_instance(OUT, command, "fer2013", DATA / "fer2013.csv.gz")
        command("labelset", "emotion", "--add", "contempt")
    import django

    django.setup()  # this process reads the instance's database too, once it is made
    faces = read_faces(pool, labels=None, add_classes=True)
    people = np.array(sorted(set(faces.groups)))
    held = set(people[group_held_out(people, HELD_OUT_FRACTION)])
    labeled_rows = ~np.isin(faces.groups, list(held))
    # the labelable people's rows, as the lab's file (the held-out people only measure)
    import gzip

    with gzip.open(pool, "rt") as f:
        lines = f.read().splitlines()
    labeled_lines = {int(line) for line in faces.lines[labeled_rows]}
    part = OUT / "pool_labeled.csv"
    part.write_text("\n".join([lines[0], *(lines[i - 1] for i in sorted(labeled_lines))]) + "\n")
    test = faces.subset(~labeled_rows)

    def served_recalls(version=None) -> dict:
        """The served version's (or ``version``'s) figures on the held-out people, through the classes it has."""
        from ml.align import framing_of
        from ml.evaluate import evaluate
        from ml.export import load_tfjs, read_manifest
        from webapp.registry.selectors import active_version, version_dir

        directory = version_dir(version or active_version(kind="emotion"))
        manifest = read_manifest(directory)
        metrics = evaluate(load_tfjs(directory), test, framing_of(manifest), labels=manifest["labels"])[0]
        return {
            "labels": manifest["labels"],
            "n": metrics["n"],
            "accuracy": round(metrics["accuracy"], 4),
            "recall": {k: round(v, 4) for k, v in metrics["per_class_recall"].items()},
        }

    if keep:  # the instance of an earlier run: its parent (v1) and its last run, scored again
        from webapp.registry.models import ModelVersion

        before, seconds = served_recalls(ModelVersion.objects.get(kind="emotion", number=1)), None
    else:
        before = served_recalls()
        command("import_faces", "--format", "fer2013", str(part), "-v0")
        seconds = timed_retrain(env, OUT, command)
    from webapp.training.models import TrainingRun

    run = TrainingRun.objects.filter(kind="emotion").latest("id")
    after = served_recalls()
    candidate = served_recalls(run.version) if run.version and not run.promoted else None
    return {
        "held_out_people": len(held),
        "held_out_faces": {k: int((test.labels == i).sum()) for i, k in enumerate(test.label_names)},
        "labeled_people": len(people) - len(held),
        "request_to_end_s": round(seconds, 1) if seconds else None,
        "promoted": run.promoted,
        "decision": run.decision,
        "candidate_recall_ci": run.metrics.get("per_class_recall_ci"),
        "served_before": before,
        "served_after": after,
        "candidate_if_promoted_by_hand": candidate,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("served")
    p.add_argument("--model", type=Path, default=ROOT / "models" / "baseline" / "emotion")
    p.add_argument("--data", type=Path, default=DATA / "fer2013.csv.gz")
    p.add_argument("--sweep", metavar="CLASS", help="also: what shifting this class's logit would do (e.g. neutral)")
    p = sub.add_parser("contempt")
    p.add_argument("--pool", type=Path, default=DATA / "ckplus" / "pool_named.csv.gz")
    p.add_argument("--keep", action="store_true", help="score the instance of the last run again (no new retrain)")
    args = parser.parse_args()
    report = served(args.model, args.data, args.sweep) if args.what == "served" else contempt(args.pool, args.keep)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
