"""python -m ml train|evaluate|export|bench — the command line over the ml library."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _progress_bar(total: int, desc: str):
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="epoch", dynamic_ncols=True)

    def on_progress(epoch: int, logs: dict) -> None:
        bar.update(epoch - bar.n)
        shown = {k: f"{v:.4g}" for k, v in logs.items() if k in ("loss", "val_loss", "val_accuracy", "lr")}
        shown["eta"] = f"{logs['eta_s'] / 60:.1f}m"
        bar.set_postfix(shown)

    return bar, on_progress


def _labels(text: str | None) -> tuple[str, ...] | None:
    """--labels: a preset's name (ml.schema.PRESETS) or class names separated by commas."""
    from ml.schema import PRESETS, label_key

    if not text:
        return None
    if text in PRESETS:
        return PRESETS[text]
    try:
        return tuple(label_key(name) for name in text.split(","))
    except ValueError as exc:
        sys.exit(f"error: --labels: {exc}; or a preset: {', '.join(PRESETS)}")


def _read(path: str, fmt: str | None, task: str | None, labels: tuple[str, ...] | None = None):
    from ml.datasets import TASK_OF_FORMAT, read_faces, sniff_format

    fmt = fmt or sniff_format(path)
    if task and TASK_OF_FORMAT[fmt] != task:
        sys.exit(f"error: {path} is a {fmt} file ({TASK_OF_FORMAT[fmt]} task), not {task}")
    data = read_faces(path, fmt, labels=labels)
    classes = f" in {', '.join(data.label_names)}" if data.label_names else ""
    print(f"read {len(data)} faces{classes} from {path} ({fmt}); {len(data.errors)} bad rows, {data.excluded} left out")
    for error in data.errors[:20]:
        print(f"  skipped {error}")
    if len(data.errors) > 20:
        print(f"  … and {len(data.errors) - 20} more")
    return data


def cmd_train(args) -> None:
    from ml.datasets import split
    from ml.evaluate import save_plots
    from ml.export import export_tfjs
    from ml.train import RECIPES, train

    data = _read(args.data, args.format, args.task, _labels(args.labels))
    train_data, val_data = split(data)
    initial, initial_labels = None, None
    if args.init:  # fine-tune an export (an emotion model of other classes gets its head regrown)
        from ml.export import load_tfjs, read_manifest

        initial, initial_labels = load_tfjs(args.init), read_manifest(args.init).get("labels")
    overrides = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "patience": args.patience,
        "seed": args.seed,
        "schedule": args.schedule,
        "weight_decay": args.weight_decay,
        "warmup_epochs": args.warmup_epochs,
    }
    # the recipe that made the shipped baseline (ml.train.RECIPES), with what the command line changes
    config = replace(RECIPES[args.task], **{k: v for k, v in overrides.items() if v is not None})
    print(f"training {args.task} on {len(train_data)} faces, validating on {len(val_data)}")
    bar, on_progress = _progress_bar(config.epochs, args.task)
    result = train(
        args.task, train_data, val_data, config, on_progress, initial_model=initial, initial_labels=initial_labels
    )
    bar.close()
    out = Path(args.out)
    report = {
        **result.metrics,
        "split": "PublicTest rows" if args.task == "emotion" else "contiguous block split (15 %)",
        "data": str(args.data),
        "n_train": result.n_train,
        "train_seconds": round(result.seconds, 1),
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "config": result.config,
        "initial": args.init,
    }
    labels = result.labels
    export_tfjs(result.model, out, task=args.task, metrics=report, extra={"history": result.history}, labels=labels)
    save_plots(out / "plots", result.metrics, result.history)
    for quantize in args.quantize:
        export_tfjs(result.model, out / f"quantized-{quantize}", task=args.task, quantize=quantize, labels=labels)
    print(json.dumps({k: v for k, v in report.items() if not isinstance(v, dict | list)}, indent=2))
    print(f"exported to {out}")


def cmd_evaluate(args) -> None:
    from ml.align import framing_of
    from ml.datasets import split
    from ml.evaluate import evaluate
    from ml.export import load_tfjs, read_manifest

    manifest = read_manifest(args.model)
    task = args.task or manifest["task"]
    model_labels = manifest.get("labels")
    data = _read(args.data, args.format, task, _labels(args.labels) or model_labels)
    if args.usage:
        if data.usage is None or not (data.usage == args.usage).any():
            sys.exit(f"error: no {args.usage} rows in {args.data}")
        data = data.subset(data.usage == args.usage)
    if args.split == "val":
        data = split(data)[1]
    model, framing = load_tfjs(args.model), framing_of(manifest)
    metrics = evaluate(model, data, framing, mirror=True if args.mirror else None, labels=model_labels)[0]
    metrics.update(model=str(args.model), data=str(args.data), usage=args.usage, split=args.split)
    if args.json:
        print(json.dumps(metrics, indent=2))
        return
    if task == "keypoints":
        print(f"n={metrics['n']}  RMSE {metrics['rmse_px']:.3f} px  PCK@0.05 {metrics['pck']:.3f}")
        for name, err in metrics["per_point_error_px"].items():
            print(f"  {name:26s} {err:.2f} px")
    else:
        print(f"n={metrics['n']}  accuracy {metrics['accuracy']:.4f}  macro-F1 {metrics['macro_f1']:.4f}")
        print("classes:", ", ".join(metrics["labels"]))
        print("recall:", ", ".join(f"{k} {v:.3f}" for k, v in metrics["per_class_recall"].items()))
        print("confusion (rows truth, cols predicted):", *metrics["confusion_matrix"], sep="\n  ")


def cmd_compare(args) -> None:
    """Two exports on the same faces: both figures and a paired bootstrap of the difference (ml.stats)."""
    from ml.align import framing_of
    from ml.datasets import split
    from ml.evaluate import evaluate
    from ml.export import load_tfjs, read_manifest
    from ml.stats import paired_bootstrap

    manifests = [read_manifest(m) for m in (args.model, args.against)]
    task = manifests[0]["task"]
    if manifests[1]["task"] != task:
        sys.exit(f"error: {args.model} is a {task} model, {args.against} is not")
    shared = None
    if task == "emotion":  # on the classes both models say
        shared = tuple(n for n in manifests[0]["labels"] if n in manifests[1]["labels"])
    data = _read(args.data, args.format, task, shared)
    if args.split == "val":
        data = split(data)[1]
    results = [
        evaluate(load_tfjs(m), data, framing_of(f), labels=f.get("labels"))
        for m, f in zip((args.model, args.against), manifests, strict=True)
    ]
    metric = "rmse_px" if task == "keypoints" else "accuracy"
    comparison = paired_bootstrap(results[0][1], results[1][1], metric=metric, confidence=args.confidence)
    report = {"model": args.model, "against": args.against, "comparison": comparison.to_dict()}
    if task == "emotion":
        report["macro_f1"] = [round(r[0]["macro_f1"], 4) for r in results]
    print(json.dumps(report, indent=2))
    print(comparison.describe())


def cmd_export(args) -> None:
    """Re-export (optionally quantized), keeping the training history and provenance; with --data, score the new
    files on the standard validation split so metrics.json describes exactly what will be served."""
    from ml.align import framing_of
    from ml.datasets import split
    from ml.evaluate import evaluate_model
    from ml.export import export_tfjs, load_tfjs, read_manifest

    manifest = read_manifest(args.model)
    task = manifest["task"]
    source_metrics = Path(args.model) / "metrics.json"
    metrics = json.loads(source_metrics.read_text()) if source_metrics.is_file() else None
    framing = framing_of(manifest)
    extra = {"history": manifest.get("history", {}), "framing": framing.to_dict()}
    labels = manifest.get("labels")
    model = load_tfjs(args.model)
    if args.prior:
        from ml.models import shift_priors

        shifts = {}
        for item in args.prior:
            name, _, value = item.partition("=")
            shifts[name] = float(value)
        shift_priors(model, labels, shifts)
        extra["prior_shift"] = {**manifest.get("prior_shift", {}), **shifts}
    out = export_tfjs(model, args.out, task=task, quantize=args.quantize, extra=extra, labels=labels)
    if args.data:
        scored = evaluate_model(load_tfjs(out), split(_read(args.data, None, task, labels))[1], framing)
        metrics = {**(metrics or {}), **scored, "quantization": args.quantize or "float32"}
    if metrics is not None:
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"exported {args.model} -> {out} ({args.quantize or 'float32'})")
    if args.data:
        print(json.dumps({k: v for k, v in metrics.items() if not isinstance(v, dict | list)}, indent=2))


def cmd_tflite(args) -> None:
    """Write model.tflite (the server's LiteRT runtime) into exports made before every export had one."""
    from ml.litert import write_tflite

    for model_dir in args.model:
        print(f"wrote {write_tflite(model_dir)}")


def cmd_framing(args) -> None:
    """Where the anchors sit in a data set's faces: from its points (keypoint files), or by running the aligned
    keypoint path of --model on its faces (files without points, e.g. FER2013)."""
    import numpy as np
    from PIL import Image

    from ml import align

    data = _read(args.data, args.format, None)
    rng = np.random.default_rng(0)
    data = data.subset(np.sort(rng.choice(len(data), min(args.faces, len(data)), replace=False)))
    if data.points is not None and not args.model:
        points, how = data.points, "the file's points"
    else:
        if not args.model:
            sys.exit("error: this file has no points; give --model (a keypoint export) to find them")
        from ml.pipeline import Analyzer, LoadedModel

        analyzer = Analyzer(LoadedModel.from_dir(args.model), detector=False)
        seed = align.reframe_matrix(align.FACE_FRAMING, analyzer.keypoints.framing)
        points = np.stack([analyzer.align(Image.fromarray(image), [seed])[0] for image in data.images])
        how = f"the aligned keypoint path of {args.model}"
    eye, lip = align.anchors(points)
    mid, distance = (eye + lip) / 2, np.linalg.norm(lip - eye, axis=1)
    tilt = np.degrees(np.arctan2(points[:, 0, 1] - points[:, 1, 1], points[:, 0, 0] - points[:, 1, 0]))
    report = {
        "data": str(args.data),
        "faces": len(points),
        "points_from": how,
        "center_median": np.median(mid, 0).round(2).tolist(),
        "center_iqr": (np.percentile(mid, 75, 0) - np.percentile(mid, 25, 0)).round(2).tolist(),
        "distance_median": round(float(np.median(distance)), 2),
        "distance_iqr": round(float(np.percentile(distance, 75) - np.percentile(distance, 25)), 2),
        "eye_line_tilt_deg_mean_sd": [round(float(tilt.mean()), 2), round(float(tilt.std()), 2)],
    }
    print(json.dumps(report, indent=2))


def cmd_calibrate(args) -> None:
    """Fit the server/browser detector's box prior on the calibration half of the whole frames (by person)."""
    import numpy as np
    from PIL import Image

    from ml.align import DETECTORS, anchors, fit_box_prior
    from ml.datasets import person_split, read_frames
    from ml.detect import FaceDetector

    frames = read_frames(args.frames)
    frames = frames.subset(~person_split(frames.persons))
    detector, boxes, points = FaceDetector(), [], []
    for i in range(len(frames.names)):
        eye, lip = anchors(frames.points[i])
        for found in detector.detect(Image.open(frames.path(i))):
            x, y, w, h = found.box
            if x <= eye[0] <= x + w and y <= lip[1] <= y + h:  # the detection of this frame's annotated face
                boxes.append(found.box)
                points.append(frames.points[i])
                break
    fitted = fit_box_prior(np.array(boxes), np.array(points))
    print(
        json.dumps(
            {
                "frames": len(frames.names),
                "matched": len(boxes),
                "fitted": fitted.to_dict(),
                "shipped": DETECTORS["blazeface"].box_prior.to_dict(),
            },
            indent=2,
        )
    )


def cmd_detector(args) -> None:
    """Write the browser's face detector (BlazeFace from the npm package, rebuilt for TF.js)."""
    from ml.detect import export_tfjs

    print(f"wrote {export_tfjs(args.out)}")


def cmd_bench(args) -> None:
    """Keras inference time per face at batch 1, model size, and (given data) accuracy of the float vs quantized."""
    import numpy as np
    import tensorflow as tf

    from ml.export import load_tfjs, read_manifest

    results = []
    for model_dir in args.model:
        manifest = read_manifest(model_dir)
        model = load_tfjs(model_dir)
        x = tf.constant(np.random.default_rng(0).random((1, 96, 96, 1), np.float32))
        fn = tf.function(lambda t, m=model: m(t, training=False))
        for _ in range(10):
            fn(x)
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            fn(x).numpy()
            times.append((time.perf_counter() - t0) * 1000)
        # what the browser downloads: model.json and its weight shards (not the manifest or the metrics)
        size = sum(p.stat().st_size for p in Path(model_dir).iterdir() if p.suffix == ".bin" or p.name == "model.json")
        results.append(
            {
                "model": str(model_dir),
                "task": manifest["task"],
                "quantization": manifest.get("quantization"),
                "download_kb": round(size / 1024, 1),
                "keras_ms_per_face_batch1_p50": round(float(np.median(times)), 3),
                "keras_ms_per_face_batch1_p90": round(float(np.percentile(times, 90)), 3),
            }
        )
    for r in results:
        print(json.dumps(r))


def cmd_distill(args) -> None:
    """pack: FER2013 -> the npz ml/distill_gpu.py reads; import: its student.npz -> a Keras export like ml train's."""
    from ml import distill

    if args.action == "pack":
        print(json.dumps(distill.pack(_read(args.data, None, "emotion", _labels(args.labels)), args.out)))
        return
    from ml.export import export_tfjs

    model, labels = distill.load_student(args.weights)
    report = Path(args.weights).with_name("report.json")
    metrics = json.loads(report.read_text()) if report.is_file() else {}
    export_tfjs(model, Path(args.out), task="emotion", metrics={"distillation": metrics}, labels=labels)
    print(f"Keras reproduces the PyTorch student on its probe faces; exported to {args.out}")


def main(argv: list[str] | None = None) -> None:
    from ml.schema import TASKS

    parser = argparse.ArgumentParser(prog="python -m ml", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    formats = ["kaggle-keypoints", "fer2013", "icml"]

    p = sub.add_parser("train", help="train a model on a CSV and export it to TF.js")
    p.add_argument("--task", choices=TASKS, required=True)
    p.add_argument("--data", required=True, help="CSV (plain or .gz) in a supported format")
    p.add_argument("--format", choices=formats, help="default: told from the header")
    p.add_argument("--out", required=True, help="export directory (must not exist)")
    p.add_argument("--epochs", type=int, help="default for this and the next four: the task's baseline recipe")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--patience", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--schedule", choices=["plateau", "cosine"], help="learning-rate schedule")
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--warmup-epochs", type=int)
    p.add_argument("--labels", help="emotion: the label set, a preset (fer-seven, seed-five) or names a,b,c")
    p.add_argument("--init", help="start from this export's weights (an emotion head is regrown to --labels)")
    p.add_argument("--quantize", nargs="*", default=["uint8", "float16"], choices=["uint8", "float16"])
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="score an exported TF.js model on a CSV")
    p.add_argument("--task", choices=TASKS, help="default: from the model's manifest")
    p.add_argument("--model", required=True, help="a TF.js export directory (with model.json)")
    p.add_argument("--data", required=True)
    p.add_argument("--format", choices=formats)
    p.add_argument("--usage", choices=["Training", "PublicTest", "PrivateTest"], help="keep only these rows")
    p.add_argument(
        "--labels",
        help="emotion: read the file in this set (default: the model's); other classes are "
        "scored through the outputs both have",
    )
    p.add_argument("--split", choices=["all", "val"], default="all", help="val: the standard validation split")
    p.add_argument("--json", action="store_true")
    p.add_argument("--mirror", action="store_true", help="keypoints: average in the mirrored view (not what is served)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("compare", help="two exports on the same faces, with a paired bootstrap of the difference")
    p.add_argument("--model", required=True, help="the candidate export")
    p.add_argument("--against", required=True, help="the export to compare with (e.g. models/baseline/emotion)")
    p.add_argument("--data", required=True)
    p.add_argument("--format", choices=formats)
    p.add_argument("--split", choices=["all", "val"], default="val")
    p.add_argument("--confidence", type=float, default=0.95)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("export", help="re-export a TF.js model, optionally quantized")
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--quantize", choices=["uint8", "float16"])
    p.add_argument("--data", help="score the export on this CSV's standard validation split")
    p.add_argument(
        "--prior",
        nargs="+",
        metavar="CLASS=SHIFT",
        help="emotion: add SHIFT to a class's logit (e.g. neutral=0.4: an unsure face reads as neutral more often)",
    )
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("tflite", help="add model.tflite (the server's runtime) to TF.js exports that have none")
    p.add_argument("--model", nargs="+", required=True, help="export directories (with model.json)")
    p.set_defaults(func=cmd_tflite)

    p = sub.add_parser("framing", help="measure where the eyes and lips sit in a data set's faces")
    p.add_argument("--data", required=True)
    p.add_argument("--format", choices=formats)
    p.add_argument("--model", help="a keypoint export, to find the points of faces that have none (FER2013)")
    p.add_argument("--faces", type=int, default=3000, help="how many faces, drawn with a fixed seed")
    p.set_defaults(func=cmd_framing)

    p = sub.add_parser("calibrate", help="fit the face detector's box prior on the calibration half of whole frames")
    p.add_argument("--frames", required=True, help="a frames/ folder: frames.csv.gz and images/")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("detector", help="export the browser's BlazeFace detector to TF.js (make deps runs it)")
    p.add_argument("--out", default="build/detector")
    p.set_defaults(func=cmd_detector)

    p = sub.add_parser("bench", help="inference time and size of exported models")
    p.add_argument("--model", nargs="+", required=True)
    p.add_argument("--repeat", type=int, default=200)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("distill", help="pack FER2013 for ml/distill_gpu.py, or import the student it trained")
    p.add_argument("action", choices=["pack", "import"])
    p.add_argument("--data", help="pack: the FER2013 CSV")
    p.add_argument("--weights", help="import: the student.npz written by ml/distill_gpu.py")
    p.add_argument("--labels", help="pack: the label set (a preset or names a,b,c; default fer-seven)")
    p.add_argument("--out", required=True, help="pack: the npz to write; import: the export directory")
    p.set_defaults(func=cmd_distill)

    args = parser.parse_args(argv)
    from ml.datasets import DatasetError

    try:
        args.func(args)
    except (DatasetError, FileNotFoundError, FileExistsError) as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
