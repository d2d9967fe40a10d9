"""Retraining runs: request (single flight), cancel, execute (the worker's body), reap runs whose worker died."""

from __future__ import annotations

import json
import logging
import shutil
import threading
import traceback
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from webapp.registry.models import Promotion
from webapp.training.models import TrainingRun

log = logging.getLogger(__name__)
Status = TrainingRun.Status
LOG_TAIL = 60  # lines of log kept on the row


class BrokerUnavailable(Exception):
    pass


def broker_check() -> None:
    """Raise BrokerUnavailable unless the Celery broker answers now."""
    from webapp.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=0, timeout=2)
    except Exception as exc:  # kombu raises many transport-specific errors
        raise BrokerUnavailable(
            f"the task queue ({app.conf.broker_url.split('://')[0]}) is not reachable: {exc}"
        ) from exc


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


def run_request(*, kind: str, user=None, from_scratch: bool = False, trigger: str = "api") -> tuple[TrainingRun, bool]:
    """Ask for a retrain. Returns (run, created); a run already pending or running for the kind is returned as is."""
    if kind not in ("keypoints", "emotion"):
        raise ValidationError({"kind": [f"must be keypoints or emotion, got {kind!r}"]})
    runs_reap_stale()
    existing = TrainingRun.objects.filter(kind=kind, status__in=TrainingRun.ACTIVE_STATUSES).first()
    if existing:
        return existing, False
    broker_check()
    try:
        with transaction.atomic():
            run = TrainingRun.objects.create(kind=kind, from_scratch=from_scratch, requested_by=user, trigger=trigger)
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


def _decide(kind: str, candidate: np.ndarray, active: np.ndarray | None, labels: np.ndarray | None):
    """Promote automatically only on enough validation faces and a difference beyond noise (ml.stats).

    ``candidate`` / ``active``: per-face scores on the same validation faces (``ml.evaluate.face_scores``).
    Returns (promote, the decision in words, the comparison as a dict or None).
    """
    from ml.schema import EMOTIONS
    from ml.stats import paired_bootstrap

    if active is None:
        return True, f"no active {kind} model: promoted", None
    metric = "rmse_px" if kind == "keypoints" else "accuracy"
    comparison = paired_bootstrap(candidate, active, metric=metric, confidence=settings.PROMOTION_CONFIDENCE)
    margin = settings.PROMOTION_MARGIN_RMSE_PX if kind == "keypoints" else settings.PROMOTION_MARGIN_ACCURACY
    missing = [] if labels is None else [name for i, name in enumerate(EMOTIONS) if not (labels == i).any()]
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


def run_config(kind: str, *, fine_tune: bool):
    """The from-scratch recipe (or the fine-tuning one), with the TRAINING_* settings that are set."""
    from dataclasses import replace

    from ml.train import recipe

    epochs = settings.TRAINING_FINETUNE_EPOCHS if fine_tune else settings.TRAINING_EPOCHS
    rate = settings.TRAINING_FINETUNE_LEARNING_RATE if fine_tune else settings.TRAINING_LEARNING_RATE
    config = recipe(kind, fine_tune=fine_tune, epochs=epochs)
    if settings.TRAINING_SEED is not None:
        config = replace(config, seed=settings.TRAINING_SEED)
    return config if rate is None else replace(config, learning_rate=rate)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def run_plan(*, kind: str, from_scratch: bool, counts: dict | None = None) -> dict:
    """What a retrain would do now, before it is asked for: faces, recipe, epochs and an estimated duration.

    The estimate is every epoch over every training face (early stopping only shortens it), at the speed measured by
    this instance's latest finished run of the kind, or else by the shipped baseline's own training.
    """
    from ml.train import SECONDS_PER_FACE_EPOCH, estimate_seconds
    from webapp.faces.selectors import training_counts
    from webapp.registry.selectors import active_version

    if counts is None:
        counts = training_counts(task=kind)
    fine_tune = not from_scratch and active_version(kind=kind) is not None
    config = run_config(kind, fine_tune=fine_tune)
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
    seconds = estimate_seconds(kind, counts.get("train", 0), config, per_face_epoch)
    return {
        "kind": kind,
        "mode": "fine-tune" if fine_tune else "from scratch",
        "recipe": "fine-tuning" if fine_tune else "from-scratch",
        "faces": {"train": counts.get("train", 0), "val": counts.get("val", 0)},
        "epochs": config.epochs,
        "learning_rate": config.learning_rate,
        "schedule": config.schedule,
        "batch_size": config.batch_size,
        "estimated_seconds": round(seconds, 1),
        "estimate": _duration(seconds),
        "basis": basis,
    }


def run_execute(run_id: int) -> None:
    """The body of training.tasks.retrain. Safe to run twice: only a pending run is claimed."""
    from ml.align import framing_of
    from ml.datasets import FaceData
    from ml.evaluate import evaluate, face_scores
    from ml.export import export_tfjs, load_tfjs, read_manifest
    from ml.train import train
    from webapp.faces.selectors import training_set
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
        if counts["faces"] < settings.TRAINING_MIN_FACES or not counts["train"] or not counts["val"]:
            raise ValidationError(
                f"Not enough labeled {run.kind} faces to train: {counts['faces']} "
                f"({counts['train']} train / {counts['val']} validation); at least {settings.TRAINING_MIN_FACES} "
                "with some in each split are needed. Import or label more faces."
            )
        as_face_data = lambda mask: FaceData(  # noqa: E731
            format="db",
            images=data.images[mask],
            lines=data.face_ids[mask],
            **{"points" if run.kind == "keypoints" else "labels": data.targets[mask]},
        )
        train_data, val_data = as_face_data(~data.is_val), as_face_data(data.is_val)

        parent = active_version(kind=run.kind)
        initial = None if run.from_scratch or parent is None else load_tfjs(version_dir(parent))
        config = run_config(run.kind, fine_tune=initial is not None)
        epochs = config.epochs
        mode = "from scratch" if initial is None else f"fine-tuning {parent}"
        plan = run_plan(kind=run.kind, from_scratch=initial is None, counts=counts)
        say(
            f"{mode}: the {plan['recipe']} recipe, up to {epochs} epochs at rate {config.learning_rate:g} "
            f"(estimated {plan['estimate']}, {plan['basis']})",
            epochs=epochs,
        )

        def on_progress(epoch: int, logs: dict) -> None:
            say(
                f"epoch {epoch}/{epochs} loss {logs.get('loss', 0):.5f} val_loss {logs.get('val_loss', 0):.5f}",
                epoch=epoch,
                loss=logs.get("loss"),
                val_loss=logs.get("val_loss"),
                eta_seconds=logs.get("eta_s"),
            )

        def should_stop() -> bool:
            """Cancelled, or no longer running: a worker paused past the heartbeat timeout comes back to a run already
            marked failed (and its kind perhaps retraining elsewhere); it must not register a version then."""
            return (
                TrainingRun.objects.filter(pk=run.pk)
                .filter(Q(cancel_requested=True) | ~Q(status=Status.RUNNING))
                .exists()
            )

        result = train(
            run.kind, train_data, val_data, config, on_progress, initial_model=initial, should_stop=should_stop
        )
        if result.stopped:
            if TrainingRun.objects.filter(pk=run.pk, status=Status.RUNNING).update(
                status=Status.CANCELLED, finished_at=timezone.now()
            ):
                say("cancelled: stopped after the current epoch; no version registered")
            else:
                say("stopped: the run was marked failed while this worker did not answer; no version registered")
            return
        # Export in the active version's quantization (a float16 or uint8 baseline stays that size for the browser),
        # then score the exported files, not the Keras model: the decision is about what would be served.
        parent_dir = version_dir(parent) if parent else None
        parent_manifest = read_manifest(parent_dir) if parent else {}
        quantize = parent_manifest.get("quantization")
        quantize = None if quantize in (None, "float32") else quantize
        staging = staging_dir(run.kind)
        shutil.rmtree(staging)
        export_tfjs(result.model, staging, task=run.kind, quantize=quantize, extra={"history": result.history})
        served_metrics, served_scores = evaluate(load_tfjs(staging), val_data, framing_of(read_manifest(staging)))
        # both models scored face by face on this run's validation faces, each in its own framing
        active_scores = None
        if parent:
            active_scores = face_scores(load_tfjs(parent_dir), val_data, framing_of(parent_manifest))
        labels = val_data.labels if run.kind == "emotion" else None
        promote, decision, comparison = _decide(run.kind, served_scores, active_scores, labels)
        report = {
            **served_metrics,
            "quantization": quantize or "float32",
            "train_seconds": round(result.seconds, 1),
            "epochs_run": result.epochs_run,
            "best_epoch": result.best_epoch,
            "n_train": result.n_train,
            "config": result.config,
        }
        if comparison is not None:
            report["comparison"] = {**comparison, "against": str(parent), "decision": decision}
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
        if promote:
            version_promote(version=version, author=run.requested_by, action=Promotion.Action.AUTO, reason=decision)
        TrainingRun.objects.filter(pk=run.pk).update(
            status=Status.SUCCEEDED,
            finished_at=timezone.now(),
            version=version,
            promoted=promote,
            decision=decision,
            metrics=report,
            history=result.history,
        )
        say(f"registered {version}; {decision}")
    except Exception as exc:
        message = "; ".join(exc.messages) if isinstance(exc, ValidationError) else f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, ValidationError):
            log.exception("training run %s failed", run.pk)
        TrainingRun.objects.filter(pk=run.pk).update(
            status=Status.FAILED, finished_at=timezone.now(), error=message[:4000]
        )
        detail = "" if isinstance(exc, ValidationError) else "\n" + traceback.format_exc(limit=3)
        say(f"failed: {message}{detail}")
    finally:
        heartbeat.stopped.set()
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
