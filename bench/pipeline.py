"""The path users run, end to end, in real headless Chromium through the app's own ``analyze`` (static/js/inference.js).

    .venv/bin/python bench/pipeline.py [--frames 0] [--fer 600] [--scenes 300] [--models models/baseline]

A throwaway instance (bench/out/pipeline/: SQLite, the models in --models registered as v1) serves the demo page;
the script hands it pictures and reads what ``analyze`` returns. Data, from ../shared/data:

- whole frames: the benchmark half of frames/ by person (ml.datasets.person_split; the other half fitted the
  detector's box prior). Keypoint RMSE in training-frame pixels (image error x 38 / the true eye-lip distance) for
  this app's path and for face-api's own path (the same detector, its 68-point landmark net mapped to the 15 points),
  on every frame each path found and on the frames both found; faces found.
- webcam-like scenes: the same frames scaled so the face is 15-60 % of the height of a 640x480 picture and pasted at
  a random place on a photo without faces (scikit-image's samples): faces found, RMSE, ms per frame, and frames per
  second in video mode (the detector every ``redetect_every`` frames, the face followed in between).
- FER2013 five-class PublicTest faces (without repeats), each 96x96 face in the middle of a grey 192x192 canvas:
  emotion accuracy through the path vs the emotion model straight on the 96x96 face, on the faces the detector found.
- The server's path (ml.pipeline with BlazeFace) on the same frames, for comparison (--server).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from instance import DATA, ROOT, chromium, serve_app

sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out" / "pipeline"
BACKGROUNDS = ("coffee", "rocket", "chelsea", "hubble_deep_field", "immunohistochemistry", "colorwheel")

PAGE_JS = "".join(
    line for line in (Path(__file__).parent / "pipeline.js").read_text().splitlines(True) if not line.startswith("//")
)


def data_url(image, fmt: str = "JPEG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, fmt, quality=95) if fmt == "JPEG" else image.save(buffer, fmt)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buffer.getvalue()).decode()


def frame_rmse(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Per-face squared error in training-frame pixels (38 px between the eye and lip midpoints)."""
    from ml.align import frame_scale

    return (((pred - true) * frame_scale(true)[..., None, None]) ** 2).mean(axis=(-1, -2))


def match(faces: list[dict], truth: np.ndarray) -> dict | None:
    """The face whose anchors lie nearest the true ones, if it is that face at all (within half the eye-lip span)."""
    from ml.align import anchors

    eye, lip = anchors(truth)
    best, best_d = None, np.inf
    for face in faces:
        face_eye, face_lip = anchors(np.asarray(face["points"]))
        d = np.linalg.norm((face_eye + face_lip) / 2 - (eye + lip) / 2)
        if d < best_d:
            best, best_d = face, d
    return best if best is not None and best_d < 0.5 * np.linalg.norm(lip - eye) else None


def scenes(frames, n: int, seed: int = 0):
    """Webcam-like 640x480 pictures: a frame scaled so the face is 15-60 % of the height, pasted on a photo."""
    from PIL import Image
    from skimage import data as skdata

    from ml.align import anchors

    rng = np.random.default_rng(seed)
    backgrounds = [Image.fromarray(getattr(skdata, name)()).convert("RGB").resize((640, 480)) for name in BACKGROUNDS]
    for i in rng.choice(len(frames.names), min(n, len(frames.names)), replace=False):
        frame = Image.open(frames.path(i)).convert("RGB")
        eye, lip = anchors(frames.points[i])
        face_height = 2.6 * np.linalg.norm(lip - eye)  # brow to chin is about 2.6 eye-lip distances
        scale = rng.uniform(0.15, 0.6) * 480 / face_height
        w, h = max(1, round(frame.width * scale)), max(1, round(frame.height * scale))
        if w > 640 or h > 480:
            scale = min(640 / frame.width, 480 / frame.height)
            w, h = round(frame.width * scale), round(frame.height * scale)
        x, y = int(rng.integers(0, 640 - w + 1)), int(rng.integers(0, 480 - h + 1))
        scene = backgrounds[int(rng.integers(len(backgrounds)))].copy()
        scene.paste(frame.resize((w, h), Image.Resampling.LANCZOS), (x, y))
        points = frames.points[i] * [w / frame.width, h / frame.height] + [x, y]
        yield scene, points


def fer_pictures(n: int, labels: list[str]):
    """PublicTest faces of the emotion model's classes without repeats, each in the middle of a grey 192x192 canvas."""
    from PIL import Image

    from ml.datasets import read_faces, split

    val = split(read_faces(DATA / "fer2013.csv.gz", labels=labels))[1]
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(len(val), min(n, len(val)), replace=False))
    for i in idx:
        face = Image.fromarray(val.images[i])
        canvas = Image.new("L", (192, 192), 128)
        canvas.paste(face, (48, 48))
        yield canvas, face, int(val.labels[i])


def run_pages(page, pictures: list[dict], mode: str = "app", chunk: int = 40) -> list:
    out = []
    for start in range(0, len(pictures), chunk):
        out += page.evaluate(PAGE_JS, [pictures[start : start + chunk], mode])
    return out


def summarise(name: str, truths: list[np.ndarray], results: list) -> dict:
    """Per picture: the squared error of the matching face (None when no face matched), and the figures."""
    found = [match(r["faces"] if isinstance(r, dict) else r, t) for r, t in zip(results, truths, strict=True)]
    errors = [
        None if f is None else float(frame_rmse(np.asarray(f["points"]), t)) for f, t in zip(found, truths, strict=True)
    ]
    seen = [e for e in errors if e is not None]
    return {
        "errors": errors,
        "summary": {
            "path": name,
            "pictures": len(truths),
            "faces_found": round(len(seen) / len(truths), 4),
            "keypoint_rmse_px": round(float(np.sqrt(np.mean(seen))), 3) if seen else None,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=0, help="how many benchmark frames (0: all)")
    parser.add_argument("--fer", type=int, default=600)
    parser.add_argument("--scenes", type=int, default=300)
    parser.add_argument("--models", type=Path, default=ROOT / "models" / "baseline")
    parser.add_argument("--server", action="store_true", help="also the server's path (BlazeFace + ml.pipeline)")
    parser.add_argument("--no-frames", action="store_true", help="skip the browser on whole frames")
    parser.add_argument(
        "--server-steps",
        type=int,
        nargs="+",
        default=[None],
        help="with --server: re-crop steps to compare (default: the detector's own)",
    )
    parser.add_argument(
        "--server-mirror", action="store_true", help="with --server: test-time mirroring vs none, paired (ml.align)"
    )
    args = parser.parse_args()

    from PIL import Image
    from playwright.sync_api import sync_playwright

    from ml.datasets import person_split, read_frames

    frames = read_frames(DATA / "frames")
    frames = frames.subset(person_split(frames.persons))
    if args.frames:
        frames = frames.subset(np.arange(len(frames.names)) < args.frames)
    report = {"models": str(args.models), "frames": {"n": len(frames.names), "persons": len(set(frames.persons))}}
    server, url = serve_app(OUT, args.models)
    try:
        with sync_playwright() as p:
            browser = chromium(p)
            page = browser.new_page()
            page.goto(url)
            page.wait_for_function("window.studio && window.studio.ready === true", timeout=120_000)
            report["backend"] = page.evaluate("window.studio.analyzer.backend")
            run_pages(page, [{"src": data_url(Image.open(frames.path(0)).convert("RGB"))}])  # warm-up

            if not args.no_frames:
                pictures = [
                    {"src": data_url(Image.open(frames.path(i)).convert("RGB"))} for i in range(len(frames.names))
                ]
                truths = list(frames.points)
                app = summarise(
                    "this app (BlazeFace -> alignment -> keypoint model)", truths, run_pages(page, pictures)
                )
                faceapi = summarise(
                    "face-api's own (tiny detector -> landmark68 -> 15)", truths, run_pages(page, pictures, "faceapi")
                )
                both = [
                    i
                    for i, (a, b) in enumerate(zip(app["errors"], faceapi["errors"], strict=True))
                    if a is not None and b is not None
                ]
                rmse = lambda r: round(float(np.sqrt(np.mean([r["errors"][i] for i in both]))), 3)  # noqa: E731
                report["whole_frames"] = [app["summary"], faceapi["summary"]]
                per_frame = {"names": frames.names, "app": app["errors"], "faceapi": faceapi["errors"]}
                (OUT / "per_frame.json").write_text(json.dumps(per_frame))
                report["whole_frames_both_found"] = {
                    "frames": len(both),
                    "app_rmse_px": rmse(app),
                    "faceapi_rmse_px": rmse(faceapi),
                }

            if args.scenes:
                report["scenes"] = scene_report(page, frames, args.scenes)
            if args.fer:
                from ml.export import read_manifest

                labels = read_manifest(args.models / "emotion")["labels"]
                report["emotion_fer_in_192_canvas"] = fer_report(page, args.fer, labels)
            browser.close()
    finally:
        server.terminate()
    if args.server:
        report["server_path"] = [server_path(frames, args.models, steps) for steps in args.server_steps]
        if args.server_mirror:
            report["server_mirror_vs_none"] = server_mirror(frames, args.models)
    print(json.dumps(report, indent=2))
    (OUT / "report.json").write_text(json.dumps(report, indent=2))


def scene_report(page, frames, n: int) -> dict:
    scene_list = list(scenes(frames, n))
    scene_pictures = [{"src": data_url(s)} for s, _ in scene_list]
    scene_results = run_pages(page, scene_pictures)
    scene = summarise(
        "webcam-like 640x480 scenes, face 15-60 % of the height", [t for _, t in scene_list], scene_results
    )
    ms = {k: [r["ms"][k] for r in scene_results if r["faces"]] for k in ("detect", "keypoints", "emotion", "frame")}
    scene["summary"]["median_ms"] = {k: round(float(np.median(v)), 2) for k, v in ms.items() if v}
    video = run_pages(page, scene_pictures[:20], "video")
    per_frame = np.concatenate([np.asarray(v["times"][1:]) for v in video if v["faces"]])
    scene["summary"]["video_mode"] = {
        "median_ms_per_frame": round(float(np.median(per_frame)), 2),
        "frames_per_second": round(1000 / float(np.mean(per_frame)), 1),
    }
    return scene["summary"]


def fer_report(page, n: int, labels: list[str]) -> dict:
    from PIL import Image

    fer = list(fer_pictures(n, labels))
    fer_results = run_pages(
        page,
        [
            {"src": data_url(c, "PNG"), "face96": data_url(f.resize((96, 96), Image.Resampling.NEAREST), "PNG")}
            for c, f, _ in fer
        ],
    )
    labels = np.array([y for _, _, y in fer])
    straight = np.array([np.argmax(r["straight"]) for r in fer_results])
    found = np.array([bool(r["faces"]) for r in fer_results])
    path = np.array([np.argmax(r["faces"][0]["probabilities"]) if r["faces"] else -1 for r in fer_results])
    return {
        "faces": len(fer),
        "found": round(float(found.mean()), 4),
        "accuracy_straight_all": round(float((straight == labels).mean()), 4),
        "accuracy_straight_on_found": round(float((straight == labels)[found].mean()), 4),
        "accuracy_through_path_on_found": round(float((path == labels)[found].mean()), 4),
    }


def server_mirror(frames, models: Path) -> dict:
    """The server's path with and without test-time mirroring of the keypoint model, on the same detections, paired."""
    from PIL import Image

    from ml import align
    from ml.pipeline import Analyzer, LoadedModel
    from ml.stats import paired_bootstrap

    analyzer = Analyzer(LoadedModel.from_dir(models / "keypoints"))
    errors = {True: [], False: []}
    for i in range(len(frames.names)):
        image = Image.open(frames.path(i)).convert("RGB")
        boxes = [d.box for d in analyzer.detector.detect(image)]
        seeds = [align.matrix_from_box(b, analyzer.box_prior, analyzer.keypoints.framing) for b in boxes]
        for mirror in (True, False):
            face = match(
                [{"points": p} for p in analyzer.align(image, seeds, mirror)] if seeds else [], frames.points[i]
            )
            errors[mirror].append(np.nan if face is None else frame_rmse(np.asarray(face["points"]), frames.points[i]))
    with_mirror, plain = np.asarray(errors[True]), np.asarray(errors[False])
    both = ~np.isnan(with_mirror) & ~np.isnan(plain)
    return paired_bootstrap(with_mirror[both], plain[both], metric="rmse_px").to_dict()


def server_path(frames, models: Path, align_steps: int | None = None) -> dict:
    """ml.pipeline with BlazeFace: the path POST /api/faces/upload/ takes."""
    from PIL import Image

    from ml.pipeline import Analyzer, LoadedModel

    analyzer = Analyzer(LoadedModel.from_dir(models / "keypoints"), align_steps=align_steps)
    results, started = [], time.perf_counter()
    for i in range(len(frames.names)):
        faces = analyzer.analyze(Image.open(frames.path(i)))
        results.append({"faces": [{"points": f.points} for f in faces]})
    summary = summarise("server (BlazeFace -> alignment -> keypoint model)", list(frames.points), results)["summary"]
    summary["ms_per_frame"] = round((time.perf_counter() - started) * 1000 / len(frames.names), 1)
    summary["align_steps"] = analyzer.align_steps
    return summary


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
