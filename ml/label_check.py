"""The label check: which of a user's labels are most likely wrong.

Confident learning, as cleanlab ranks label issues by *self-confidence*: every labeled face is scored by models that
never saw its person (k folds by group, the domain recipe's folds and training mix, so the check costs what the
evidence of a retrain costs without the final model), and a face is as suspicious as those models find its given label
unlikely: ``suspicion = 1 - p(given label)``. Out of fold is what makes it work: a model that trained on a wrong label
learns to repeat it, one that never saw the face (nor its person's other frames) does not.

Keypoints get the same check by the out-of-fold point error (mean distance in pixels of the data's frame).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ml import align
from ml.datasets import FaceData, group_folds
from ml.domain import mixed
from ml.evaluate import model_outputs
from ml.recipes import DomainRecipe, folds_for
from ml.train import ProgressFn, train


@dataclass
class LabelCheck:
    task: str
    outputs: np.ndarray  # per face, from the fold model that did not see its group: probabilities or points (px)
    suspicion: np.ndarray  # emotion: 1 - p(given label); keypoints: mean point error in px
    suggested: np.ndarray | None  # emotion: the class the fold models find likeliest (index into label_names)
    folds: int
    seconds: float
    stopped: bool = False


class CheckImpossible(ValueError):
    pass


def suspicion_of(task: str, outputs: np.ndarray, data: FaceData) -> tuple[np.ndarray, np.ndarray | None]:
    """(suspicion, suggested class) of each face from out-of-fold ``outputs``."""
    if task == "emotion":
        given = outputs[np.arange(len(data)), data.labels]
        return 1.0 - given, outputs.argmax(axis=1)
    return np.linalg.norm(outputs - data.points, axis=2).mean(axis=1), None


def label_check(
    task: str,
    user: FaceData,
    groups: np.ndarray,
    reference_train: FaceData,
    parent,
    recipe: DomainRecipe,
    on_progress: ProgressFn | None = None,
    *,
    should_stop: Callable[[], bool] | None = None,
    parent_labels: tuple[str, ...] | None = None,
) -> LabelCheck:
    """k fold models, each fine-tuned from ``parent`` on the other folds' people (the domain recipe's mix with the
    reference faces replayed) and run on its own fold's faces. Needs two groups at least."""
    config = recipe.config
    k = folds_for(recipe, len(set(groups)))
    if not k:
        raise CheckImpossible(
            f"the label check needs faces of two people (groups) at least, to score each by a model that never saw "
            f"its person; these {len(user)} faces have {len(set(groups))}"
        )
    folds = group_folds(groups, k)
    framing = align.MODEL_FRAMINGS[task]
    total = k * config.epochs
    outputs = None
    seconds = 0.0
    for fold in range(k):
        held = folds == fold

        def report(epoch: int, logs: dict, fold: int = fold) -> None:
            if on_progress is not None:
                done = fold * config.epochs + epoch
                per_epoch = logs.get("elapsed_s", 0.0) / max(1, epoch)
                on_progress(done, {**logs, "epochs": total, "eta_s": per_epoch * (total - done)})

        result = train(
            task,
            mixed(user.subset(~held), reference_train, recipe, config.seed + fold),
            user.subset(held),
            replace(config, seed=config.seed + fold),
            report,
            initial_model=parent,
            initial_labels=parent_labels,
            should_stop=should_stop,
        )
        seconds += result.seconds
        if result.stopped:
            empty = np.full(len(user), math.nan)
            return LabelCheck(task, np.empty(0), empty, None, k, seconds, stopped=True)
        predicted = model_outputs(result.model, user.subset(held), framing)
        if outputs is None:
            outputs = np.full((len(user), *predicted.shape[1:]), math.nan)
        outputs[held] = predicted
    suspicion, suggested = suspicion_of(task, outputs, user)
    return LabelCheck(task, outputs, suspicion, suggested, k, seconds)


def precision_at_k(suspicion: np.ndarray, wrong: np.ndarray, k: int | None = None) -> float:
    """Of the ``k`` most suspicious faces (default: as many as are wrong), the share that are wrong."""
    k = int(wrong.sum()) if k is None else k
    if k == 0:
        return math.nan
    top = np.argsort(-suspicion, kind="stable")[:k]
    return float(wrong[top].mean())
