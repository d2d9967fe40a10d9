"""Time from a retrain request to a new version (and whether it became active), on the real data, with a real worker.

    .venv/bin/python bench/retrain.py [--runs keypoints:finetune keypoints:scratch emotion:finetune emotion:scratch]

Sets up a throwaway instance in bench/out/retrain/ (SQLite, the local Redis on db 14), registers the shipped baseline
as v1, imports ../shared/data/keypoints.csv.gz and fer2013.csv.gz, starts one Celery worker, and runs
`manage.py retrain --kind K [--from-scratch] --wait` for each run asked, one after the other, with the recipes the app
uses (ml.train.RECIPES / FINETUNE_RECIPES unless TRAINING_* settings are set in the environment). Each run's line
holds the plan the worker logged (recipe, epochs, estimated time) next to the time it took.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time

from instance import DATA, ROOT, instance_env, start_worker

OUT = ROOT / "bench" / "out" / "retrain"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", default=["keypoints:finetune", "keypoints:scratch", "emotion:finetune"])
    parser.add_argument("--keep", action="store_true", help="reuse the instance of an earlier run (skip the imports)")
    args = parser.parse_args()
    env = instance_env(OUT, redis_db=14)
    manage = [sys.executable, str(ROOT / "manage.py")]
    run = lambda *a, **k: subprocess.run([*manage, *a], env=env, cwd=ROOT, check=True, **k)  # noqa: E731
    setup = {}
    if not args.keep:
        shutil.rmtree(OUT, ignore_errors=True)
        OUT.mkdir(parents=True)
        run("migrate", "-v0")
        run("bootstrap", capture_output=True)
        for fmt, name in (("kaggle-keypoints", "keypoints.csv.gz"), ("fer2013", "fer2013.csv.gz")):
            t0 = time.monotonic()
            run("import_faces", "--format", fmt, str(DATA / name), "-v0")
            setup[f"import_{fmt}_s"] = round(time.monotonic() - t0, 1)
    worker = start_worker(env, OUT)
    results = []
    try:
        for spec in args.runs:
            kind, mode = spec.split(":")
            t0 = time.monotonic()
            flags = ["--from-scratch"] if mode == "scratch" else []
            done = subprocess.run(
                [*manage, "retrain", "--kind", kind, *flags, "--wait"],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
            seconds = time.monotonic() - t0
            lines = done.stdout.strip().splitlines() or [""]
            last = lines[-1]
            planned = next((line.strip() for line in lines if "(estimated " in line), "")
            results.append(
                {
                    "run": spec,
                    "seconds_to_version": round(seconds, 1),
                    "ok": done.returncode == 0,
                    "plan": planned,
                    "result": last if done.returncode == 0 else done.stderr.strip()[-300:],
                }
            )
            print(json.dumps(results[-1]), flush=True)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    print(json.dumps({"setup": setup, "runs": results}, indent=2))


if __name__ == "__main__":
    main()
