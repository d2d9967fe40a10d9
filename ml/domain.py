"""Fine-tuning on a user's own faces, and the evidence that it helped them: the product's loop on a new domain.

*Moving the model.* A user's few hundred labeled faces beside the reference set's twenty thousand are 2 % of an epoch:
a plain fine-tune over everything hardly moves the model. The domain recipe fine-tunes the active model on a mix
instead: every user face repeated until the user's faces are their ``share`` of it (at least ``repeats`` times) plus a
seeded sample of ``replay`` reference faces (the replay keeps what the model knows of the reference set), for a
short fixed schedule that ends on its last epoch (the user's faces are
all trained on, so there is no validation loss of theirs to stop on). The fine-tuned weights are then blended back
toward the parent's (``DomainRecipe.blend``, WiSE-FT): most of the gain on the user's faces stays, most of what the
fine-tune forgot of the reference set comes back.

*Evidence.* The user's faces are few and come in groups (people): a held-out part would be a handful of people, and
frames of one person are near-identical. So the recipe is judged by k-fold cross-validation by group: each fold's
model is trained without that fold's people and scores them; every user face is then scored by a model that never saw
its person, and the paired bootstrap resamples people, not faces (``ml.stats``). The served candidate is the model
trained on all of them, as cross-validation of a training procedure intends.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ml import align
from ml.datasets import FaceData, group_folds
from ml.evaluate import evaluate, face_scores
from ml.models import regrow_emotion_head
from ml.recipes import DOMAIN_RECIPES, DomainRecipe, folds_for  # noqa: F401 - re-exported
from ml.train import ProgressFn, TrainResult, train


def _concat(parts: list[FaceData]) -> FaceData:
    join = lambda name: (  # noqa: E731
        None if getattr(parts[0], name) is None else np.concatenate([getattr(p, name) for p in parts])
    )
    return FaceData(
        format="mix",
        images=join("images"),
        lines=join("lines"),
        points=join("points"),
        labels=join("labels"),
        label_names=parts[0].label_names,
    )


def mixed(user: FaceData, reference: FaceData, recipe: DomainRecipe, seed: int) -> FaceData:
    """The training faces of one domain fine-tune: each user face repeated (``DomainRecipe.mix_counts``) and a seeded
    replay sample of the reference faces."""
    repeats, replay = recipe.mix_counts(len(user), len(reference))
    take = np.random.default_rng(seed).choice(len(reference), size=replay, replace=False)
    return _concat([user.subset(np.tile(np.arange(len(user)), repeats)), reference.subset(np.sort(take))])


def blended(tuned, parent, blend: float):
    """``tuned`` (a fine-tune of ``parent``, same layers) moved back toward its parent: parent + blend x (tuned -
    parent), weight by weight, batch-norm statistics included (the recipe's ``blend``)."""
    if parent is not None and blend != 1.0:
        tuned.set_weights([p + blend * (t - p) for p, t in zip(parent.get_weights(), tuned.get_weights(), strict=True)])
    return tuned


@dataclass
class DomainResult:
    final: TrainResult  # trained on all the user's faces: the candidate
    user_scores: np.ndarray  # per user face, by the fold model that did not see its group (ml.evaluate.face_scores)
    folds: int
    seconds: float  # all the runs, fold models and final
    stopped: bool = False


def domain_fine_tune(
    task: str,
    user: FaceData,
    groups: np.ndarray,
    reference_train: FaceData,
    reference_val: FaceData,
    parent,
    recipe: DomainRecipe,
    on_progress: ProgressFn | None = None,
    *,
    should_stop: Callable[[], bool] | None = None,
    parent_labels: tuple[str, ...] | None = None,
) -> DomainResult:
    """k fold models (each without one fold of groups), then the final one; ``on_progress`` counts the epochs of all
    of them, (k + 1) x epochs in total. A parent of other classes (``parent_labels``) gets its head regrown to the
    data's label set in each of them (ml.train)."""
    config = recipe.config
    k = folds_for(recipe, len(set(groups)))
    folds = group_folds(groups, k) if k else np.zeros(len(user), np.int64)
    total = (k + 1) * config.epochs
    framing = align.MODEL_FRAMINGS[task]
    # a parent of other classes is regrown to the data's once, here: the same starting weights for every run, and
    # the ones the fine-tunes are blended back toward
    start, start_labels = parent, parent_labels
    if parent is not None and parent_labels and tuple(parent_labels) != tuple(user.label_names):
        start, start_labels = regrow_emotion_head(parent, parent_labels, user.label_names, seed=config.seed), None

    def shifted(run: int) -> ProgressFn | None:
        if on_progress is None:
            return None

        def report(epoch: int, logs: dict) -> None:
            done = run * config.epochs + epoch
            per_epoch = logs.get("elapsed_s", 0.0) / max(1, epoch)
            on_progress(done, {**logs, "epochs": total, "eta_s": per_epoch * (total - done)})

        return report

    scores = np.full(len(user), math.nan)
    seconds = 0.0
    if k:
        for fold in range(k):
            held = folds == fold
            mix = mixed(user.subset(~held), reference_train, recipe, config.seed + fold)
            fold_config = replace(config, seed=config.seed + fold)
            result = train(
                task,
                mix,
                user.subset(held),
                fold_config,
                shifted(fold),
                initial_model=start,
                initial_labels=start_labels,
                should_stop=should_stop,
            )
            seconds += result.seconds
            if result.stopped:
                return DomainResult(final=result, user_scores=scores, folds=k, seconds=seconds, stopped=True)
            scores[held] = face_scores(blended(result.model, start, recipe.blend), user.subset(held), framing)
    final = train(
        task,
        mixed(user, reference_train, recipe, config.seed),
        reference_val,
        config,
        shifted(k),
        initial_model=start,
        initial_labels=start_labels,
        should_stop=should_stop,
    )
    seconds += final.seconds
    if recipe.blend != 1.0 and start is not None and not final.stopped:
        # the candidate is the blended model: its validation figures are its own
        blended(final.model, start, recipe.blend)
        final.metrics, final.val_scores = evaluate(final.model, reference_val, framing)
    if not k:  # one group: nothing to hold out; its own in-sample scores (the rule refuses so few people anyway)
        scores = face_scores(final.model, user, framing)
    return DomainResult(final=final, user_scores=scores, folds=k, seconds=seconds, stopped=final.stopped)
