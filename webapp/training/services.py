"""Retraining runs: request (single flight), cancel, execute (the worker's body), reap runs whose worker died."""

from __future__ import annotations

import json
import logging
import shutil
import threading
import traceback
from dataclasses import replace
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from webapp.common.broker import BrokerUnavailable, broker_check
from webapp.registry.models import Promotion
from webapp.training.models import TrainingRun

log = logging.getLogger(__name__)
Status = TrainingRun.Status
LOG_TAIL = 60  # lines of log kept on the row


def _finish(run_id: int, status: str, **fields) -> bool:
    """A running run's final status, written only while it is still running: a status never goes back (a run the
    reaper marked failed while its worker was silent stays failed). Returns whether it was written."""
    return bool(
        TrainingRun.objects.filter(pk=run_id, status=Status.RUNNING).update(
            status=status, finished_at=timezone.now(), **fields
        )
    )


def runs_reap_stale() -> int:
    """Mark runs whose worker stopped beating as failed: a killed worker never reports back itself."""
    limit = timezone.now() - timedelta(seconds=settings.TRAINING_HEARTBEAT_TIMEOUT)
    return TrainingRun.objects.filter(status=Status.RUNNING, heartbeat_at__lt=limit).update(
        status=Status.FAILED,
        finished_at=timezone.now(),
        error="The worker stopped responding (killed or lost) during training; no version was registered.",
    )


def _enqueue(run_id: int) -> None:
    from webapp.training.tasks import retrain

    try:
        retrain.apply_async(args=[run_id], queue="training")
    except Exception as exc:
        TrainingRun.objects.filter(pk=run_id, status=Status.PENDING).update(
            status=Status.FAILED, finished_at=timezone.now(), error=f"could not queue the run: {exc}"
        )


def run_request(
    *, kind: str, user=None, from_scratch: bool = False, trigger: str = "api", job: str = TrainingRun.Job.RETRAIN
) -> tuple[TrainingRun, bool]:
    """Ask for a retrain (or, ``job="label_check"``, a label check). Returns (run, created); a run already pending or
    running for the kind is returned as is."""
    if kind not in ("keypoints", "emotion"):
        raise ValidationError({"kind": [f"must be keypoints or emotion, got {kind!r}"]})
    runs_reap_stale()
    existing = TrainingRun.objects.filter(kind=kind, status__in=TrainingRun.ACTIVE_STATUSES).first()
    if existing:
        return existing, False
    broker_check()
    try:
        with transaction.atomic():
            run = TrainingRun.objects.create(
                kind=kind, from_scratch=from_scratch, requested_by=user, trigger=trigger, job=job
            )
            transaction.on_commit(lambda: _enqueue(run.pk))
    except IntegrityError:  # lost the race to a concurrent request: the database allows one active run per kind
        return TrainingRun.objects.get(kind=kind, status__in=TrainingRun.ACTIVE_STATUSES), False
    return run, True


def run_request_if_due(*, kind: str) -> TrainingRun | None:
    """Automatic trigger: retrain once AUTO_RETRAIN_AFTER_LABELS human labels arrived since the last run."""
    from webapp.faces.models import Annotation

    threshold = settings.AUTO_RETRAIN_AFTER_LABELS
    last = TrainingRun.objects.filter(kind=kind).order_by("-created_at").first()
    field = "points" if kind == "keypoints" else "emotion"
    new = Annotation.objects.filter(origin=Annotation.Origin.HUMAN, **{f"{field}__isnull": False})
    if last:
        new = new.filter(created_at__gt=last.created_at)
    if threshold <= 0 or new.count() < threshold:
        return None
    try:
        return run_request(kind=kind, trigger="auto")[0]
    except BrokerUnavailable:
        log.warning("automatic %s retrain skipped: broker unavailable", kind)
        return None


def run_cancel(*, run: TrainingRun) -> TrainingRun:
    """Pending runs end at once; running ones stop at the end of their current epoch."""
    if not run.is_active:
        raise ValidationError(
            {"status": [f"run {run.pk} is {run.status}; only pending or running runs can be cancelled"]}
        )
    TrainingRun.objects.filter(pk=run.pk, status=Status.PENDING).update(
        status=Status.CANCELLED, finished_at=timezone.now(), cancel_requested=True
    )
    TrainingRun.objects.filter(pk=run.pk, status=Status.RUNNING).update(cancel_requested=True)
    run.refresh_from_db()
    return run


# --- the worker's side -----------------------------------------------------------------------------------------


class _RunLog:
    def __init__(self, run_id: int):
        self.run_id, self.lines = run_id, []

    def __call__(self, message: str, **fields) -> None:
        stamp = timezone.now().strftime("%H:%M:%S")
        self.lines = [*self.lines, f"{stamp} {message}"][-LOG_TAIL:]
        TrainingRun.objects.filter(pk=self.run_id).update(
            log="\n".join(self.lines), heartbeat_at=timezone.now(), **fields
        )


class _Heartbeat(threading.Thread):
    """Beats while a long epoch runs, so only a dead worker goes stale."""

    def __init__(self, run_id: int):
        super().__init__(daemon=True)
        self.run_id, self.stopped = run_id, threading.Event()

    def run(self) -> None:
        from django.db import connection

        try:
            while not self.stopped.wait(settings.TRAINING_HEARTBEAT_SECONDS):
                TrainingRun.objects.filter(pk=self.run_id).update(heartbeat_at=timezone.now())
        finally:
            connection.close()


def _claim(run_id: int) -> TrainingRun | None:
    """pending -> running, once. A redelivered message of a run that was already running means its worker died."""
    now = timezone.now()
    if TrainingRun.objects.filter(pk=run_id, status=Status.PENDING).update(
        status=Status.RUNNING, started_at=now, heartbeat_at=now, attempts=1
    ):
        return TrainingRun.objects.get(pk=run_id)
    TrainingRun.objects.filter(pk=run_id, status=Status.RUNNING).update(
        status=Status.FAILED,
        finished_at=now,
        error="The worker was lost during training and the run was redelivered; no version was registered.",
    )
    return None


def _decide(kind: str, candidate: np.ndarray, active: np.ndarray | None, labels: tuple | None):
    """Promote automatically only on enough validation faces and a difference beyond noise (ml.stats).

    ``candidate`` / ``active``: per-face scores on the same validation faces (``ml.evaluate.face_scores``);
    ``labels``: (the faces' classes, the names they index), for emotion.
    Returns (promote, the decision in words, the comparison as a dict or None).
    """
    from ml.stats import paired_bootstrap

    if active is None:
        return True, f"no active {kind} model: promoted", None
    comparison = paired_bootstrap(candidate, active, metric=METRIC[kind], confidence=settings.PROMOTION_CONFIDENCE)
    margin = _margin(kind)
    missing = [] if labels is None else [name for i, name in enumerate(labels[1]) if not (labels[0] == i).any()]
    if comparison.n < settings.PROMOTION_MIN_FACES:
        reason = (
            f"{comparison.n} validation faces; at least {settings.PROMOTION_MIN_FACES} needed to promote automatically"
        )
    elif missing:
        reason = f"no validation face of {', '.join(missing)}; every class is needed to promote automatically"
    elif comparison.ci_low <= margin:
        reason = "within noise" if comparison.ci_high > margin else "not better"
        reason += f" (margin {margin:g})" if margin else ""
    else:
        return True, f"promoted: {comparison.describe()}", comparison.to_dict()
    return False, f"kept as a candidate: {reason}; {comparison.describe()}", comparison.to_dict()


METRIC = {"keypoints": "rmse_px", "emotion": "accuracy"}


def _margin(kind: str) -> float:
    return settings.PROMOTION_MARGIN_RMSE_PX if kind == "keypoints" else settings.PROMOTION_MARGIN_ACCURACY


def _tolerance(kind: str) -> float:
    return settings.PROMOTION_TOLERANCE_RMSE_PX if kind == "keypoints" else settings.PROMOTION_TOLERANCE_ACCURACY


def _per_dataset(metric: str, datasets, groups, candidate, active) -> dict:
    """Each user dataset's own figures (the k-fold candidate and the active model), for the Models page."""
    from ml.stats import _metric

    out = {}
    for name in sorted(set(datasets)):
        mask = datasets == name
        out[str(name)] = {
            "n": int(mask.sum()),
            "groups": len(set(groups[mask])),
            "candidate": float(_metric(candidate[mask], metric)),
            "active": float(_metric(active[mask], metric)),
        }
    return out


def decide_slices(kind: str, *, user, reference) -> tuple[bool, str]:
    """The rule where users have faces of their own: promote when their slice improves beyond noise (the people
    bootstrap of the k-fold scores) and the reference slice drops by no more than the tolerance.

    ``user`` / ``reference``: ``ml.stats.Comparison`` of the candidate against the active model on each slice.
    """
    tolerance, margin = _tolerance(kind), _margin(kind)
    unit = " px" if kind == "keypoints" else ""
    figures = f"your faces: {user.describe()}; reference: {reference.describe()}"
    reasons = []  # every check that fails, so the reader knows all that stands between the candidate and users
    if user.groups < settings.PROMOTION_MIN_GROUPS or user.n < settings.PROMOTION_MIN_USER_FACES:
        reasons.append(
            f"your faces come from {user.groups} people ({user.n} faces); at least "
            f"{settings.PROMOTION_MIN_GROUPS} people and {settings.PROMOTION_MIN_USER_FACES} faces are needed to "
            "promote automatically"
        )
    elif user.ci_low <= margin:
        reasons.append("within noise on your faces" if user.ci_high > margin else "not better on your faces")
    if reference.improvement < -tolerance:
        drop = f"{-reference.improvement:.4f}{unit}"
        reasons.append(f"the reference slice drops by {drop}, more than the tolerance {tolerance:g}{unit}")
    if not reasons:
        return True, f"promoted: {figures}"
    return False, f"kept as a candidate: {'; and '.join(reasons)}; {figures}"


def decide_new_classes(kind: str, *, shared: dict, recalls: dict, new: list[str], classes: int) -> tuple[bool, str]:
    """The rule when the label set changed between the served version and the candidate: the classes both have must
    not get worse on any slice (each paired comparison, read through the shared outputs, within the tolerance) and
    every new class's recall must be above chance (1 / the number of classes) over its whole interval (by person).

    ``shared``: slice name -> ``ml.stats.Comparison`` on its faces of the shared classes; ``recalls``:
    ``ml.stats.recall_intervals`` of the candidate."""
    tolerance, chance = _tolerance(kind), 1 / classes
    reasons, figures = [], []
    for name, comparison in shared.items():
        figures.append(f"{name}, shared classes: {comparison.describe()}")
        if comparison.improvement < -tolerance:
            reasons.append(
                f"the shared classes drop by {-comparison.improvement:.4f} on {name} (tolerance {tolerance:g})"
            )
    for name in new:
        recall = recalls.get(name)
        if recall is None:
            reasons.append(f"no face of the new class {name} to measure it on")
            continue
        figures.append(
            f"{name} recall {recall['recall']:.3f} [{recall['ci_low']:.3f}, {recall['ci_high']:.3f}] on "
            f"{recall['n']} faces of {recall['groups']} people"
        )
        if recall["ci_low"] <= chance:
            reasons.append(f"{name}'s recall is not above chance ({chance:.3f}) over its whole interval")
    if not reasons:
        return True, f"promoted (the label set changed): {'; '.join(figures)}"
    return False, f"kept as a candidate: {'; and '.join(reasons)}; {'; '.join(figures)}"


def run_config(kind: str, *, fine_tune: bool):
    """The from-scratch recipe (or the fine-tuning one), with the TRAINING_* settings that are set."""
    from ml.recipes import recipe

    return _overridden(recipe(kind, fine_tune=fine_tune), fine_tune=fine_tune)


def _overridden(config, *, fine_tune: bool):
    epochs = settings.TRAINING_FINETUNE_EPOCHS if fine_tune else settings.TRAINING_EPOCHS
    rate = settings.TRAINING_FINETUNE_LEARNING_RATE if fine_tune else settings.TRAINING_LEARNING_RATE
    if epochs is not None:
        config = replace(config, epochs=epochs, patience=min(config.patience, epochs))
    if settings.TRAINING_SEED is not None:
        config = replace(config, seed=settings.TRAINING_SEED)
    return config if rate is None else replace(config, learning_rate=rate)


def domain_recipe(kind: str):
    """The domain recipe (ml.domain) of a kind, with the fine-tune settings that are set (TRAINING_FINETUNE_*,
    TRAINING_DOMAIN_BLEND)."""
    from ml.recipes import DOMAIN_RECIPES

    recipe = DOMAIN_RECIPES[kind]
    if settings.TRAINING_DOMAIN_BLEND is not None:
        recipe = replace(recipe, blend=settings.TRAINING_DOMAIN_BLEND)
    return replace(recipe, config=_overridden(recipe.config, fine_tune=True))


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def _user_faces(counts: dict) -> int:
    """Labeled faces outside the reference dataset: the users' own slices."""
    return sum(n for name, n in counts.get("datasets", {}).items() if name != counts.get("reference"))


def plan_blocked(kind: str, counts: dict, *, fine_tune: bool) -> str | None:
    """Why a retrain of ``kind`` would fail at once on these faces, or None: the one check the Models page's plan and
    the worker's first step both make. ``fine_tune``: the run starts from the served version (the users' own faces
    then train beside a replay of the reference dataset, which is also what the candidate is checked against)."""
    if counts.get("faces", 0) < settings.TRAINING_MIN_FACES or not counts.get("train") or not counts.get("val"):
        return (
            f"Not enough labeled {kind} faces to train: {counts.get('faces', 0)} ({counts.get('train', 0)} train / "
            f"{counts.get('val', 0)} validation); at least {settings.TRAINING_MIN_FACES} with some in each split are "
            "needed. Import or label more faces."
        )
    train, val = counts.get("reference_train", 0), counts.get("reference_val", 0)
    if fine_tune and _user_faces(counts) and (not train or not val):
        return (
            f"The reference dataset {counts.get('reference')} needs training and validation faces ({train} / {val}) "
            "to replay and to check against. Import rows of it in both splits (FER2013's Usage column: Training, "
            "PublicTest or PrivateTest; the whole file has both), or name a dataset that has both in "
            "TRAINING_REFERENCE_DATASET."
        )
    return None


def run_plan(*, kind: str, from_scratch: bool, counts: dict | None = None) -> dict:
    """What a retrain would do now, before it is asked for: faces, recipe, epochs and an estimated duration.

    The estimate is every epoch over every training face (early stopping only shortens it), at the speed measured by
    this instance's latest finished run of the kind, or else by the shipped baseline's own training.
    """
    from ml.recipes import SECONDS_PER_FACE_EPOCH, estimate_seconds, folds_for
    from webapp.faces.labeling.selectors import training_counts
    from webapp.registry.selectors import active_version

    if counts is None:
        counts = training_counts(task=kind)
    fine_tune = not from_scratch and active_version(kind=kind) is not None
    config = run_config(kind, fine_tune=fine_tune)
    user_faces = _user_faces(counts)
    n_train = counts.get("train", 0)
    if fine_tune and user_faces:
        domain = domain_recipe(kind)
        reference_train = counts.get("train", 0)  # an upper bound: the replay is a sample of it
        repeats, replay = domain.mix_counts(user_faces, reference_train)
        n_train = user_faces * repeats + replay
        config = replace(domain.config, epochs=domain.config.epochs * (folds_for(domain, counts["user_groups"]) + 1))
    per_face_epoch, basis = SECONDS_PER_FACE_EPOCH[kind], "speed of the shipped baseline's training"
    last = (
        TrainingRun.objects.filter(kind=kind, status=Status.SUCCEEDED)
        .exclude(metrics__train_seconds=None)
        .order_by("-finished_at")
        .first()
    )
    if last is not None:
        done = (last.metrics.get("epochs_run") or 0) * (last.metrics.get("n_train") or 0)
        if done > 0:
            per_face_epoch, basis = last.metrics["train_seconds"] / done, f"speed of run {last.pk} on this worker"
    seconds = estimate_seconds(kind, n_train, config, per_face_epoch)
    domain_run = fine_tune and user_faces > 0
    return {
        "blocked": plan_blocked(kind, counts, fine_tune=fine_tune),
        "kind": kind,
        "mode": "fine-tune" if fine_tune else "from scratch",
        "recipe": "domain" if domain_run else "fine-tuning" if fine_tune else "from-scratch",
        "faces": {"train": counts.get("train", 0), "val": counts.get("val", 0)},
        "reference": counts.get("reference"),
        "user_faces": user_faces,
        "epochs": config.epochs,
        "learning_rate": config.learning_rate,
        "schedule": config.schedule,
        "batch_size": config.batch_size,
        "estimated_seconds": round(seconds, 1),
        "estimate": _duration(seconds),
        "basis": basis,
    }


def _epoch_reporter(say, epochs: int):
    """on_progress of a run's training: the epoch line in its log and its progress fields."""

    def on_progress(epoch: int, logs: dict) -> None:
        say(
            f"epoch {epoch}/{epochs} loss {logs.get('loss', 0):.5f} val_loss {logs.get('val_loss', 0):.5f}",
            epoch=epoch,
            loss=logs.get("loss"),
            val_loss=logs.get("val_loss"),
            eta_seconds=logs.get("eta_s"),
        )

    return on_progress


def _stop_asked(run_id: int) -> bool:
    """Cancelled, or no longer running: a worker paused past the heartbeat timeout comes back to a run already marked
    failed (and its kind perhaps retraining elsewhere); it must not register a version then."""
    return TrainingRun.objects.filter(pk=run_id).filter(Q(cancel_requested=True) | ~Q(status=Status.RUNNING)).exists()


KEYPOINT_SUSPECT_PX = 3.0  # a labeled face's points this far (mean, px of the 96 frame) from the fold models' are named


def _label_check(run, say, data, user, as_face_data, reference_train, initial, parent, parent_labels) -> None:
    """The label check's body (a run with job=label_check): the users' labeled faces scored by fold models that never
    saw their people (ml.label_check), each face's suspicion stored on its summary for the Faces page. No version."""
    from ml.label_check import label_check
    from ml.recipes import folds_for
    from webapp.faces.labeling.services import suspicions_record

    if initial is None:
        raise ValidationError(f"No {run.kind} model is served: the label check fine-tunes its fold models from it.")
    if not user.any():
        raise ValidationError(
            "No labeled faces beside the reference dataset to check: import your file (it becomes a slice of its own) "
            "or label some faces first."
        )
    user_data, groups = as_face_data(user), data.groups[user]
    recipe = domain_recipe(run.kind)
    people = len(set(groups))
    k = folds_for(recipe, people)
    epochs = k * recipe.config.epochs
    slices = ", ".join(sorted(set(data.datasets[user])))
    say(
        f"label check: {len(user_data)} labeled faces of {people} people in {slices}; {k} fold models from "
        f"{parent}, each trained without one fold's people and run on them",
        epochs=epochs,
    )

    on_progress = _epoch_reporter(say, epochs)
    result = label_check(
        run.kind,
        user_data,
        groups,
        reference_train,
        initial,
        recipe,
        on_progress,
        should_stop=lambda: _stop_asked(run.pk),
        parent_labels=parent_labels,
    )
    if result.stopped:
        _finish(run.pk, Status.CANCELLED)
        say("stopped: no label was scored")
        return
    if run.kind == "emotion":
        names = list(data.label_names)
        suspicious = int((result.suspicion > 0.5).sum())
        suspicions_record(
            face_ids=data.face_ids[user],
            suspicion=result.suspicion,
            suggested=[names[i] for i in result.suggested],
            checked=[names[i] for i in user_data.labels],
            run_id=run.pk,
        )
        decision = (
            f"checked {len(user_data)} labels of {people} people: {suspicious} are more likely wrong than right to "
            "models that never saw their person (suspicion > 0.5); the Faces page orders them by suspicion"
        )
    else:
        suspicious = int((result.suspicion > KEYPOINT_SUSPECT_PX).sum())
        suspicions_record(
            face_ids=data.face_ids[user],
            suspicion=result.suspicion,
            suggested=None,
            checked=None,
            run_id=run.pk,
            task=run.kind,
        )
        decision = (
            f"checked the points of {len(user_data)} faces of {people} people: {suspicious} lie more than "
            f"{KEYPOINT_SUSPECT_PX:g} px on average from where models that never saw their person put them; the Faces "
            "page orders them by that distance"
        )
    _finish(
        run.pk,
        Status.SUCCEEDED,
        decision=decision,
        metrics={
            "label_check": {
                "faces": len(user_data),
                "people": people,
                "folds": result.folds,
                "suspicious": suspicious,
                "seconds": round(result.seconds, 1),
            }
        },
    )
    say(decision)


def run_execute(run_id: int) -> None:
    """The body of training.tasks.retrain. Safe to run twice: only a pending run is claimed."""
    from ml.align import framing_of
    from ml.datasets import FaceData, relabel
    from ml.domain import domain_fine_tune
    from ml.evaluate import evaluate
    from ml.export import export_tfjs, load_tfjs, read_manifest
    from ml.recipes import folds_for
    from ml.stats import paired_bootstrap, recall_intervals
    from ml.train import train
    from webapp.faces.labeling.selectors import training_set
    from webapp.registry.selectors import active_version, version_dir
    from webapp.registry.services import staging_dir, version_promote, version_register

    run = _claim(run_id)
    if run is None:
        return
    say = _RunLog(run.pk)
    heartbeat = _Heartbeat(run.pk)
    heartbeat.start()
    staging = None
    try:
        data = training_set(task=run.kind)
        counts = data.counts()
        say(f"training set: {counts['train']} train, {counts['val']} validation faces, {counts['human_labels']} human")
        as_face_data = lambda mask: FaceData(  # noqa: E731
            format="db",
            images=data.images[mask],
            lines=data.face_ids[mask],
            **{"points" if run.kind == "keypoints" else "labels": data.targets[mask]},
            label_names=data.label_names,
        )
        parent = active_version(kind=run.kind)
        if blocked := plan_blocked(run.kind, counts, fine_tune=parent is not None and not run.from_scratch):
            raise ValidationError(blocked)
        parent_dir = version_dir(parent) if parent else None
        parent_manifest = read_manifest(parent_dir) if parent else {}
        # the served version's classes, where they are not the label set's: its head is regrown to the set
        parent_labels = tuple(parent_manifest.get("labels") or ()) or None
        changed = [] if parent_labels is None else [k for k in data.label_names if k not in parent_labels]
        if parent_labels is not None and tuple(data.label_names) != parent_labels:
            say(f"the label set is {', '.join(data.label_names)}; {parent} says {', '.join(parent_labels)}")
        initial = None if run.from_scratch or parent is None else load_tfjs(parent_dir)
        # A class prior the served version was given at export (a product choice, e.g. neutral +0.4: its manifest's
        # prior_shift) is not something to learn: the fine-tune starts without it and the candidate gets it back at
        # export. Without this, a lab's file with no calm faces wore the neutral prior away in every retrain.
        priors = {k: v for k, v in parent_manifest.get("prior_shift", {}).items() if k in (data.label_names or ())}
        if initial is not None and priors:
            from ml.models import shift_priors

            shift_priors(initial, parent_labels, {k: -v for k, v in priors.items()})
            say(
                f"the served version's class priors ({', '.join(f'{k} {v:+g}' for k, v in priors.items())}) are "
                "left out while training and given to the candidate at export"
            )
        # The users' own faces (datasets beside the reference one) get the domain recipe when there is a model to
        # fine-tune; the reference slice keeps its fixed validation faces.
        user = (data.datasets != counts["reference"]) if initial is not None else np.zeros(len(data.face_ids), bool)
        reference = ~user
        train_data, val_data = as_face_data(reference & ~data.is_val), as_face_data(reference & data.is_val)
        if run.job == TrainingRun.Job.LABEL_CHECK:
            _label_check(run, say, data, user, as_face_data, train_data, initial, parent, parent_labels)
            return
        config = run_config(run.kind, fine_tune=initial is not None)
        mode = "from scratch" if initial is None else f"fine-tuning {parent}"
        plan = run_plan(kind=run.kind, from_scratch=initial is None, counts=counts)
        epochs = plan["epochs"]
        say(
            f"{mode}: the {plan['recipe']} recipe, {epochs} epochs in all at rate {plan['learning_rate']:g} "
            f"(estimated {plan['estimate']}, {plan['basis']})",
            epochs=epochs,
        )

        on_progress = _epoch_reporter(say, epochs)

        def should_stop() -> bool:
            return _stop_asked(run.pk)

        domain = None
        if user.any():
            user_data, user_groups = as_face_data(user), data.groups[user]
            recipe = domain_recipe(run.kind)
            people = len(set(user_groups))
            repeats, replay = recipe.mix_counts(len(user_data), len(train_data))
            say(
                f"your faces: {len(user_data)} of {people} people in "
                f"{', '.join(sorted(set(data.datasets[user])))}; {folds_for(recipe, people)} folds by person, then "
                f"the model on all of them, each with your faces x{repeats} and "
                f"{replay} faces of {counts['reference']} replayed"
                + (
                    f"; each model then sits {recipe.blend:g} of the way from {parent}'s weights to its fine-tuned "
                    "ones (a blend: the reference set keeps most of what the fine-tune forgot)"
                    if recipe.blend != 1.0
                    else ""
                )
            )
            domain = domain_fine_tune(
                run.kind,
                user_data,
                user_groups,
                train_data,
                val_data,
                initial,
                recipe,
                on_progress,
                should_stop=should_stop,
                parent_labels=parent_labels,
            )
            result, stopped = domain.final, domain.stopped
        else:
            result = train(
                run.kind,
                train_data,
                val_data,
                config,
                on_progress,
                initial_model=initial,
                initial_labels=parent_labels,
                should_stop=should_stop,
            )
            stopped = result.stopped
        if not stopped and domain is None and initial is not None and result.best_epoch == 0:
            # no epoch beat the parent on validation loss, so the run ends on the parent's own weights: a version
            # would be the parent again under a new number
            decision = (
                f"nothing registered: no epoch beat {parent} on validation loss, so the fine-tune kept its weights"
            )
            _finish(run.pk, Status.SUCCEEDED, decision=decision, history=result.history)
            say(decision)
            return
        if stopped:
            if _finish(run.pk, Status.CANCELLED):
                say("cancelled: stopped after the current epoch; no version registered")
            else:
                say("stopped: the run was marked failed while this worker did not answer; no version registered")
            return
        # Export in the active version's quantization (a float16 or uint8 baseline stays that size for the browser),
        # then score the exported files, not the Keras model: the decision is about what would be served.
        quantize = parent_manifest.get("quantization")
        quantize = None if quantize in (None, "float32") else quantize
        staging = staging_dir(run.kind)
        shutil.rmtree(staging)
        history = result.history
        extra = {"history": history}
        if priors:
            from ml.models import shift_priors

            shift_priors(result.model, result.labels, priors)
            extra["prior_shift"] = priors
        export_tfjs(result.model, staging, task=run.kind, quantize=quantize, extra=extra, labels=result.labels)
        served_model, served_framing = load_tfjs(staging), framing_of(read_manifest(staging))
        served_metrics, served_own = evaluate(served_model, val_data, served_framing)
        # Both models scored face by face on the same faces, each in its own framing; where the label set changed,
        # on the faces of the classes both have, each read through its outputs of those classes.
        shared = tuple(k for k in data.label_names if k in parent_labels) if parent_labels else data.label_names
        on_shared = (lambda d: relabel(d, shared)) if shared != data.label_names else (lambda d: d)
        compare_val = on_shared(val_data)
        served_scores, active_scores = served_own, None
        if parent:
            active_model, active_framing = load_tfjs(parent_dir), framing_of(parent_manifest)
            served_scores = evaluate(served_model, compare_val, served_framing, labels=result.labels)[1]
            active_scores = evaluate(active_model, compare_val, active_framing, labels=parent_labels)[1]
        train_seconds, epochs_run, n_train = result.seconds, result.epochs_run, result.n_train
        metric, confidence = METRIC[run.kind], settings.PROMOTION_CONFIDENCE
        # per class: the candidate's recall on faces it never trained on (the reference's validation faces, the
        # user's faces by the fold models that never saw their person), with an interval by person
        recalls = None
        if run.kind == "emotion":
            evidence = [(served_own, val_data.labels, data.groups[reference & data.is_val])]
            if domain is not None:
                evidence.append((domain.user_scores, user_data.labels, user_groups))
            correct, truth, people = (np.concatenate([e[i] for e in evidence]) for i in range(3))
            recalls = recall_intervals(correct, truth, data.label_names, people, confidence=confidence)
        if domain is None:
            if changed and active_scores is not None:
                on_reference = paired_bootstrap(served_scores, active_scores, metric=metric, confidence=confidence)
                promote, decision = decide_new_classes(
                    run.kind,
                    shared={counts["reference"]: on_reference},
                    recalls=recalls,
                    new=changed,
                    classes=len(data.label_names),
                )
                comparison = on_reference.to_dict()
            else:
                labels = (val_data.labels, data.label_names) if run.kind == "emotion" else None
                promote, decision, comparison = _decide(run.kind, served_scores, active_scores, labels)
            slices = {"reference": {**comparison, "dataset": counts["reference"]}} if comparison else {}
        else:
            # the user's faces of the shared classes, scored by the fold models and by the served version
            kept = np.isin(np.asarray(data.label_names)[user_data.labels], shared)
            active_user = evaluate(active_model, on_shared(user_data), active_framing, labels=parent_labels)[1]
            on_user = paired_bootstrap(
                domain.user_scores[kept], active_user, metric=metric, confidence=confidence, groups=user_groups[kept]
            )
            on_reference = paired_bootstrap(served_scores, active_scores, metric=metric, confidence=confidence)
            if changed:
                promote, decision = decide_new_classes(
                    run.kind,
                    shared={"your faces": on_user, counts["reference"]: on_reference},
                    recalls=recalls,
                    new=changed,
                    classes=len(data.label_names),
                )
            else:
                promote, decision = decide_slices(run.kind, user=on_user, reference=on_reference)
            comparison = on_reference.to_dict()
            slices = {
                "reference": {**comparison, "dataset": counts["reference"]},
                "user": {
                    **on_user.to_dict(),
                    "method": f"{domain.folds}-fold by person" if domain.folds else "in-sample (one person: no folds)",
                    "datasets": _per_dataset(
                        metric,
                        data.datasets[user][kept],
                        user_groups[kept],
                        domain.user_scores[kept],
                        active_user,
                    ),
                },
            }
            epochs_run, train_seconds = (
                epochs,
                domain.seconds,
            )  # every fold model and the final one: the next plan's speed
        report = {
            **served_metrics,
            "quantization": quantize or "float32",
            "train_seconds": round(train_seconds, 1),
            "epochs_run": epochs_run,
            "best_epoch": result.best_epoch,
            "n_train": n_train,
            "config": result.config,
            "recipe": plan["recipe"],
        }
        if comparison is not None:
            report["comparison"] = {**comparison, "against": str(parent), "decision": decision}
        if slices:
            report["slices"] = slices
        if recalls is not None:
            report["per_class_recall_ci"] = recalls
        if changed:
            report["classes_added"] = changed
        (staging / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
        version = version_register(
            kind=run.kind,
            export_dir=staging,
            metrics=report,
            trained_on={**counts, "mode": mode},
            parent=parent,
            created_by=run.requested_by,
            note=f"training run {run.pk}",
        )
        staging = None
        # the run's status first, then the promotion: a run marked failed meanwhile promotes nothing
        if not _finish(
            run.pk,
            Status.SUCCEEDED,
            version=version,
            promoted=promote,
            decision=decision,
            metrics=report,
            history=history,
        ):
            say(f"registered {version}, not promoted: the run was marked failed while this worker did not answer")
            return
        if promote:
            version_promote(version=version, author=run.requested_by, action=Promotion.Action.AUTO, reason=decision)
        say(f"registered {version}; {decision}")
    except Exception as exc:
        message = "; ".join(exc.messages) if isinstance(exc, ValidationError) else f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, ValidationError):
            log.exception("training run %s failed", run.pk)
        _finish(run.pk, Status.FAILED, error=message[:4000])
        detail = "" if isinstance(exc, ValidationError) else "\n" + traceback.format_exc(limit=3)
        say(f"failed: {message}{detail}")
    finally:
        heartbeat.stopped.set()
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
