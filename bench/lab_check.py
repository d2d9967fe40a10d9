"""The lab's own check of the loop (issue #19), as a lab would run it: two files imported, one worker, one retrain.

    .venv/bin/python bench/lab_check.py [--pool ../shared/data/ckplus/pool.csv.gz]

A fresh instance in bench/out/lab_check/ (SQLite, the local Redis on db 13, the shipped baselines active), FER2013
imported, then the lab's labeled file (`import_faces --format fer2013 pool.csv.gz`), one real Celery worker, and
`manage.py retrain --kind emotion --wait` with no flags, timed from the request to its end. Prints the decision, the
two slices the worker stored (the k-fold by person on the lab's faces, the reference slice on FER2013 validation) and
which version is served. The lab's hidden people are not here: their figure is the checker's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from instance import DATA, ROOT, fresh_instance, instance_env, manage, timed_retrain

OUT = ROOT / "bench" / "out" / "lab_check"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", type=Path, default=DATA / "ckplus" / "pool.csv.gz")
    args = parser.parse_args()
    env = instance_env(OUT, redis_db=13)
    os.environ.update(env)
    command = manage(env)
    fresh_instance(OUT, command, "fer2013", DATA / "fer2013.csv.gz")
    command("import_faces", "--format", "fer2013", str(args.pool), "-v0")
    seconds = timed_retrain(env, OUT, command)

    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from webapp.registry.models import ActiveVersion
    from webapp.training.models import TrainingRun

    run = TrainingRun.objects.filter(kind="emotion").latest("id")
    slices = run.metrics.get("slices", {})
    keep = ("n", "groups", "active", "candidate", "improvement", "ci_low", "ci_high", "method")
    print(
        json.dumps(
            {
                "request_to_end_s": round(seconds, 1),
                "promoted": run.promoted,
                "served": ActiveVersion.objects.get(kind="emotion").version.number,
                "decision": run.decision,
                "slices": {name: {k: v for k, v in part.items() if k in keep} for name, part in slices.items()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
