"""Which domain recipe moves the emotion model on a lab's faces? The choice behind ml.recipes.DOMAIN_RECIPES, kept.

    .venv/bin/python bench/domain_recipes.py --faces 100 --recipes kept before [--folds] [--seed 1] [--train-seed 2]

The same person split of ../shared/data/ckplus/pool.csv.gz as bench/domain.py (a stable hash of the person: a third
of the people only measure) and the same seeded order of the labelable people; the first people whose faces reach
``--faces`` are the user's faces. Each recipe fine-tunes the shipped emotion baseline (ml.domain.domain_fine_tune
without the Django app) and prints, per recipe, the final model's accuracy on the other people and on FER2013's
validation rows; with ``--folds`` also the k-fold evidence the promotion rule would read (the people bootstrap of the
fold models' gain over the baseline on the labeled faces), i.e. whether the worker would serve it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"


def variants():
    """The recipes compared: the one kept (ml.recipes) and the one before it, with one change at a time from there."""
    from ml.recipes import DOMAIN_RECIPES

    kept = DOMAIN_RECIPES["emotion"]
    before = replace(kept, share=None, blend=1.0, config=replace(kept.config, learning_rate=5e-4))  # x4, 5e-4
    return {
        "kept": kept,
        "before": before,
        "share33": replace(before, share=1 / 3),
        "share50": replace(before, share=1 / 2),
        "share67": replace(before, share=2 / 3),
        "share50-16ep": replace(before, share=1 / 2, config=replace(before.config, epochs=16, patience=16)),
        "share50-lr1e-3": replace(before, share=1 / 2, config=replace(before.config, learning_rate=1e-3)),
        # the recipe before the blend: the fine-tuned weights as they are, and one change at a time from there
        "unblended": replace(kept, blend=1.0),
        "unblended-share33": replace(kept, blend=1.0, share=1 / 3),
        "unblended-replay8000": replace(kept, blend=1.0, replay=8000),
        "unblended-lr5e-4": replace(kept, blend=1.0, config=replace(kept.config, learning_rate=5e-4)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", default="100", help="labeled faces (whole people), or 'all'")
    parser.add_argument("--recipes", nargs="+", default=["kept"])
    parser.add_argument("--seed", type=int, default=1, help="the order of the labelable people (bench/domain.py's)")
    parser.add_argument("--train-seed", type=int, default=None, help="the fine-tune's seed (default: the recipe's)")
    parser.add_argument("--folds", action="store_true", help="also the k-fold evidence (k + 1 models per recipe)")
    parser.add_argument(
        "--blend", type=float, nargs="*", default=[], help="also score parent + a x (the final model - parent)"
    )
    args = parser.parse_args()

    from domain import lab_split  # bench/domain.py: the same split of the people

    from ml.align import MODEL_FRAMINGS, framing_of
    from ml.datasets import read_faces, split
    from ml.domain import blended, domain_fine_tune
    from ml.evaluate import evaluate
    from ml.export import load_tfjs, read_manifest
    from ml.models import shift_priors
    from ml.stats import paired_bootstrap

    pool, other, labelable = lab_split()
    order = np.random.default_rng(args.seed).permutation(labelable)
    target = sum(np.isin(pool.groups, labelable)) if args.faces == "all" else int(args.faces)
    chosen: list[str] = []
    while np.isin(pool.groups, chosen).sum() < target and len(chosen) < len(order):
        chosen.append(order[len(chosen)])
    user = pool.subset(np.isin(pool.groups, chosen))
    fer_train, fer_val = split(read_faces(DATA / "fer2013.csv.gz"))
    baseline_dir = ROOT / "models" / "baseline" / "emotion"
    parent = load_tfjs(baseline_dir)
    manifest = read_manifest(baseline_dir)
    framing = framing_of(manifest)
    assert framing == MODEL_FRAMINGS["emotion"]
    # as the worker does (webapp/training/services.py): the served version's export-time class prior is left out while
    # training and given back to the candidate
    priors = manifest.get("prior_shift", {})
    trained_from = load_tfjs(baseline_dir)
    if priors:
        shift_priors(trained_from, manifest["labels"], {k: -v for k, v in priors.items()})

    def score(model) -> dict:
        return {
            "other_people": round(evaluate(model, other, framing)[0]["accuracy"], 4),
            "fer_val": round(evaluate(model, fer_val, framing)[0]["accuracy"], 4),
        }

    head = {"faces": len(user), "people": len(chosen), "other_faces": len(other), "baseline": score(parent)}
    print(json.dumps(head), flush=True)
    active_user = evaluate(parent, user, framing)[1]
    recipes = variants()
    for name in args.recipes:
        recipe = recipes[name]
        if not args.folds:
            recipe = replace(recipe, folds=0)
        if args.train_seed is not None:
            recipe = replace(recipe, config=replace(recipe.config, seed=args.train_seed))
        t0 = time.monotonic()
        result = domain_fine_tune("emotion", user, user.groups, fer_train, fer_val, trained_from, recipe)
        if priors:
            shift_priors(result.final.model, manifest["labels"], priors)
        row = {"recipe": name, "seconds": round(time.monotonic() - t0), **score(result.final.model)}
        if args.folds and result.folds:
            c = paired_bootstrap(result.user_scores, active_user, metric="accuracy", groups=user.groups)
            row["k_fold"] = {
                "active": round(c.active, 4),
                "candidate": round(c.candidate, 4),
                "ci": [round(c.ci_low, 4), round(c.ci_high, 4)],
            }
        print(json.dumps(row), flush=True)
        tuned = result.final.model.get_weights()
        for a in args.blend:
            result.final.model.set_weights(tuned)
            blended(result.final.model, parent, a)
            print(json.dumps({"recipe": name, "blend": a, **score(result.final.model)}), flush=True)


if __name__ == "__main__":
    main()
