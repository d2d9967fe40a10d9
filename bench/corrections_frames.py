"""Do corrections pay off where the model is weak? Whole frames of people the keypoint model never saw, through the app.

    .venv/bin/python bench/corrections_frames.py [--seeds 1 2 3] [--frames 0]

1. A throwaway instance in bench/out/corrections-frames/ (SQLite, the local Redis on db 11, a real Celery worker per
   run) imports the Kaggle keypoints file; the shipped baseline is the active model: the parent.
2. ../shared/data/frames/ is split by person (ml.datasets.person_split): the persons of one half are labeled through
   the product, the other half only measures. Every frame of the labeled half is uploaded to POST /api/faces/upload/
   (the server detects and aligns it and stores the 96x96 face), and a labeler posts the frame's ground-truth points,
   mapped into that stored face, to POST /api/faces/{id}/annotations/: the correction a careful labeler would make.
3. Control: before any frame is labeled, the parent is fine-tuned through `manage.py retrain --wait` once per seed
   (TRAINING_SEED). With labels: the same after the labeling, same seeds. The parent is made active before each run.
4. Every model is measured on the other persons' frames through the server's path (BlazeFace -> alignment -> keypoint
   model, ml.pipeline), RMSE in training-frame pixels (error x 38 / the true eye-lip distance), on the frames where
   the face is found; the spread over seeds is the run-to-run noise.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time

import numpy as np
from instance import DATA, ROOT, fresh_instance, labeling_env, manage, start_worker
from pipeline import frame_rmse, match

OUT = ROOT / "bench" / "out" / "corrections-frames"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--frames", type=int, default=0, help="use only this many frames of each half (0: all)")
    args = parser.parse_args()
    env = labeling_env(OUT, redis_db=11)
    os.environ.update(env)
    command = manage(env)

    fresh_instance(OUT, command, "kaggle-keypoints", DATA / "keypoints.csv.gz")

    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from PIL import Image
    from rest_framework.test import APIClient

    from ml import align
    from ml.datasets import checksum, person_split, read_frames
    from ml.pipeline import Analyzer, LoadedModel
    from tests.factories import user as make_user
    from webapp.faces.store.images import decode_upload
    from webapp.registry.models import ActiveVersion, ModelVersion, Promotion
    from webapp.registry.selectors import version_dir
    from webapp.registry.services import version_promote
    from webapp.training.models import TrainingRun

    frames = read_frames(DATA / "frames")
    measure = person_split(frames.persons)
    labeled, held = frames.subset(~measure), frames.subset(measure)
    if args.frames:
        labeled = labeled.subset(np.arange(len(labeled.names)) < args.frames)
        held = held.subset(np.arange(len(held.names)) < args.frames)
    parent = ModelVersion.objects.get(kind="keypoints", number=1)
    staff = get_user_model().objects.create_user("bench-staff", is_staff=True)
    client = APIClient(SERVER_NAME="localhost")
    client.force_authenticate(make_user("labeler", "bench-labeler"))

    # the held-out persons' frames: detect once, then every model aligns from the same detections
    detector_analyzer = Analyzer(LoadedModel.from_dir(version_dir(parent)))
    held_images = [Image.open(held.path(i)).convert("RGB") for i in range(len(held.names))]
    held_seeds = []
    for image in held_images:
        boxes = [d.box for d in detector_analyzer.detector.detect(image)]
        framing = detector_analyzer.keypoints.framing
        held_seeds.append([align.matrix_from_box(b, detector_analyzer.box_prior, framing) for b in boxes])

    def measure_version(version: ModelVersion) -> dict:
        analyzer = Analyzer(LoadedModel.from_dir(version_dir(version)), detector=False)
        errors = []
        for image, seeds, truth in zip(held_images, held_seeds, held.points, strict=True):
            faces = [{"points": p} for p in analyzer.align(image, seeds)] if seeds else []
            face = match(faces, truth)
            if face is not None:
                errors.append(frame_rmse(np.asarray(face["points"]), truth))
        errors = np.asarray(errors)
        return {"rmse_px": round(float(np.sqrt(errors.mean())), 4), "frames": len(errors), "of": len(held.names)}

    def make_parent_active() -> None:
        if not ActiveVersion.objects.filter(kind="keypoints", version=parent).exists():
            version_promote(version=parent, author=staff, action=Promotion.Action.PROMOTE, reason="bench parent")

    def retrain(seed: int) -> dict:
        make_parent_active()
        worker = start_worker({**env, "TRAINING_SEED": str(seed)}, OUT)
        try:
            t0 = time.monotonic()
            command("retrain", "--kind", "keypoints", "--wait")
        finally:
            worker.terminate()
            worker.wait(timeout=60)
        run = TrainingRun.objects.filter(kind="keypoints").latest("id")
        return {
            "seed": seed,
            "version": run.version.number,
            "seconds": round(time.monotonic() - t0, 1),
            "best_epoch": run.metrics.get("best_epoch"),
            "human_labels": run.version.trained_on["human_labels"],
            "kaggle_val_rmse_px": round(run.metrics["rmse_px"], 4),
            "held_out_persons": measure_version(run.version),
        }

    results: dict = {
        "frames": {"labeled": len(labeled.names), "held_out": len(held.names)},
        "persons": {"labeled": len(set(labeled.persons)), "held_out": len(set(held.persons))},
        "parent": measure_version(parent),
    }
    print(json.dumps(results), flush=True)
    results["control"] = [retrain(seed) for seed in args.seeds]
    print(json.dumps(results["control"]), flush=True)

    # label the other persons' frames through the product: upload the whole frame, correct the stored face
    make_parent_active()
    uploaded = corrected = 0
    for i in range(len(labeled.names)):
        data = labeled.path(i).read_bytes()  # the frame's own file, as a person would upload it
        image, _ = decode_upload(data)  # what the server reads from it
        buffer = io.BytesIO(data)
        buffer.name = labeled.names[i]
        response = client.post("/api/faces/upload/", {"image": buffer}, format="multipart")
        if response.status_code not in (200, 201):
            continue
        uploaded += 1
        # which stored face is this person's, and the crop it was cut with (the same analyzer the server runs)
        for analyzed in detector_analyzer.analyze(image):
            if match([{"points": analyzed.points}], labeled.points[i]) is None:
                continue
            matrix = align.matrix_from_points(analyzed.points, align.FACE_FRAMING)
            truth = np.clip(align.apply(matrix, labeled.points[i]), 0, 95.99)
            face = next((f for f in response.json()["faces"] if f["checksum"] == checksum(analyzed.face)), None)
            if face is None:
                continue
            points = [{"x": float(x), "y": float(y), "visible": True} for x, y in truth]
            saved = client.post(f"/api/faces/{face['id']}/annotations/", {"points": points}, format="json")
            corrected += saved.status_code == 201
    results["labeling"] = {"frames_uploaded": uploaded, "faces_corrected": corrected}
    print(json.dumps(results["labeling"]), flush=True)
    results["with_labels"] = [retrain(seed) for seed in args.seeds]

    def spread(runs: list[dict]) -> dict:
        values = [r["held_out_persons"]["rmse_px"] for r in runs]
        return {"mean": round(statistics.mean(values), 4), "sd": round(statistics.pstdev(values), 4), "runs": values}

    results["summary"] = {
        "parent": results["parent"]["rmse_px"],
        "control": spread(results["control"]),
        "with_labels": spread(results["with_labels"]),
    }
    print(json.dumps(results, indent=2))
    (OUT / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
