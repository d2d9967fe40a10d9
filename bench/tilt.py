"""Faces as people hold them (issue #30): the benchmark frames tilted in the picture's plane, ours vs face-api's own
path on the same pictures, in real Chromium (and the server's path).

    .venv/bin/python bench/tilt.py [--frames 100] [--tilts 0 15 30 45] [--server] [--no-browser] [--emotion 600]

The benchmark half of ../shared/data/frames/ by person (ml.datasets.person_split, as bench/pipeline.py); each frame is
turned by +tilt or -tilt (alternately) about its centre on a canvas grown to hold it all, the 15 true points turned
with it. For each tilt: faces found and keypoint RMSE in training-frame pixels (image error x 38 / the true eye-lip
distance) for this app's path (static/js/inference.js: BlazeFace -> first crop from the box and the detector's
landmarks -> the keypoint model, levelled -> re-crops) and face-api's own path (its tiny detector -> landmark68 ->
the 15 points), on every frame each found and on the frames both found. ``--server``: ml.pipeline (the upload path).

``--emotion N``: the emotion path read upright vs levelled (issue #30 item 1: choose per model by measurement). N
FER2013 PublicTest faces of the served model's classes (without repeats), each 96 px in a grey 192x192 picture as in
bench/pipeline.py, turned like the frames; the server's path finds and aligns each face once, then the emotion model
reads its crop in the framing it was trained in (the head's tilt kept) and levelled (the eye-lip axis upright):
accuracy of each on the faces found, next to the model straight on the untouched face.
Prints JSON; writes bench/out/tilt/report.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
from instance import DATA, ROOT
from pipeline import data_url, run_pages, serve, summarise

sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out" / "tilt"


def tilt(image, points: np.ndarray, degrees: float):
    """The picture turned ``degrees`` counter-clockwise on screen about its centre (canvas grown, black corners) and
    the points turned with it."""
    from PIL import Image

    w, h = image.size
    turned = image.rotate(degrees, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=(0, 0, 0))
    t = np.deg2rad(degrees)
    rotation = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])  # y points down
    centre, new_centre = np.array([w / 2, h / 2]), np.array([turned.width / 2, turned.height / 2])
    return turned, (np.asarray(points) - centre) @ rotation.T + new_centre


def tilted(frames, degrees: float):
    from PIL import Image

    for i in range(len(frames.names)):
        yield tilt(Image.open(frames.path(i)).convert("RGB"), frames.points[i], degrees * (1 if i % 2 else -1))


def compare(app: dict, faceapi: dict) -> dict:
    pairs = enumerate(zip(app["errors"], faceapi["errors"], strict=True))
    both = [i for i, (a, b) in pairs if a is not None and b is not None]
    rmse = lambda r: round(float(np.sqrt(np.mean([r["errors"][i] for i in both]))), 3) if both else None  # noqa: E731
    worst = sorted(((e, i) for i, e in enumerate(app["errors"]) if e is not None), reverse=True)[:3]
    return {
        "ours_worst_frames": [{"frame": i, "rmse_px": round(float(np.sqrt(e)), 2)} for e, i in worst],
        "ours": app["summary"],
        "faceapi": faceapi["summary"],
        "both_found": {"frames": len(both), "ours_rmse_px": rmse(app), "faceapi_rmse_px": rmse(faceapi)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=100, help="how many benchmark frames (0: all)")
    parser.add_argument("--tilts", type=float, nargs="+", default=[0, 15, 30, 45])
    parser.add_argument("--models", type=Path, default=ROOT / "models" / "baseline")
    parser.add_argument("--server", action="store_true", help="also the server's path (ml.pipeline)")
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--emotion", type=int, default=0, help="FER faces for the emotion path, upright vs levelled")
    parser.add_argument(
        "--server-before",
        action="store_true",
        help="also the server's path as it was before levelling: the crop keeps the tilt, one re-crop",
    )
    args = parser.parse_args()
    from ml.datasets import person_split, read_frames

    frames = read_frames(DATA / "frames")
    frames = frames.subset(person_split(frames.persons))
    if args.frames:
        frames = frames.subset(np.arange(len(frames.names)) < args.frames)
    OUT.mkdir(parents=True, exist_ok=True)
    report: dict = {"frames": len(frames.names), "persons": len(set(frames.persons)), "tilts": {}}
    if not args.no_browser:
        from playwright.sync_api import sync_playwright

        server, url = serve(args.models)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox", "--no-first-run"]
                )
                page = browser.new_page()
                page.goto(url)
                page.wait_for_function("window.studio && window.studio.ready === true", timeout=120_000)
                for degrees in args.tilts:
                    pictures, truths = [], []
                    for image, points in tilted(frames, degrees):
                        pictures.append({"src": data_url(image)})
                        truths.append(points)
                    app = summarise("ours", truths, run_pages(page, pictures))
                    faceapi = summarise("face-api", truths, run_pages(page, pictures, "faceapi"))
                    report["tilts"][f"{degrees:g}"] = compare(app, faceapi)
                    print(json.dumps({f"tilt {degrees:g}": report["tilts"][f"{degrees:g}"]}), flush=True)
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    from dataclasses import replace

    from ml.pipeline import Analyzer, LoadedModel

    model = LoadedModel.from_dir(os.path.join(args.models, "keypoints"))
    variants = {}
    if args.server:
        variants["server"] = Analyzer(model)
    if args.server_before:  # the framing that keeps the tilt ignores the landmarks' angle: the first crop from the box
        kept = replace(model, framing=replace(model.framing, rotate=False))
        variants["server_before"] = Analyzer(kept, align_steps=1)
    for name, analyzer in variants.items():
        report[name] = {}
        for degrees in args.tilts:
            results, truths = [], []
            for image, points in tilted(frames, degrees):
                results.append({"faces": [{"points": f.points} for f in analyzer.analyze(image)]})
                truths.append(points)
            report[name][f"{degrees:g}"] = summarise(name, truths, results)["summary"]
            print(json.dumps({f"{name} tilt {degrees:g}": report[name][f"{degrees:g}"]}), flush=True)
    if args.emotion:
        report["emotion"] = emotion_levelled(args.models, args.emotion, args.tilts)
    print(json.dumps(report, indent=2))
    (OUT / "report.json").write_text(json.dumps(report, indent=2))


def emotion_levelled(models, n: int, tilts: list[float]) -> dict:
    """Emotion accuracy through the server's path with the crop upright (the training framing) vs levelled."""
    from dataclasses import replace

    from PIL import Image
    from pipeline import fer_pictures

    from ml import align
    from ml.pipeline import Analyzer, LoadedModel

    keypoints = LoadedModel.from_dir(os.path.join(models, "keypoints"))
    emotion = LoadedModel.from_dir(os.path.join(models, "emotion"))
    labels = emotion.manifest["labels"]
    framings = {"kept": replace(emotion.framing, rotate=False), "levelled": replace(emotion.framing, rotate=True)}
    analyzer = Analyzer(keypoints)
    fer = list(fer_pictures(n, labels))
    truth = np.array([y for _, _, y in fer])
    straight = emotion([np.asarray(f.resize((96, 96), Image.Resampling.BILINEAR)) for _, f, _ in fer]).argmax(-1)
    out = {"faces": len(fer), "classes": labels, "accuracy_straight": round(float((straight == truth).mean()), 4)}
    for degrees in tilts:
        said = {name: np.full(len(fer), -1) for name in framings}
        for i, (canvas, _, _) in enumerate(fer):
            turned = canvas.convert("RGB").rotate(
                degrees * (1 if i % 2 else -1), resample=Image.Resampling.BILINEAR, expand=True, fillcolor=(128,) * 3
            )
            faces = analyzer.analyze(turned)
            if not faces:
                continue
            points = faces[0].points
            for name, framing in framings.items():
                crop = align.warp(turned, align.matrix_from_points(points, framing))
                said[name][i] = int(emotion([crop])[0].argmax())
        found = said["kept"] >= 0
        row = {"found": round(float(found.mean()), 4)}
        row["straight_on_found"] = round(float((straight == truth)[found].mean()), 4)
        for name in framings:
            row[f"accuracy_{name}"] = round(float((said[name] == truth)[found].mean()), 4)
        out[f"{degrees:g}"] = row
        print(json.dumps({f"emotion tilt {degrees:g}": row}), flush=True)
    return out


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
