"""Browser benchmark in headless Chromium (Debian's /usr/bin/chromium): our two TF.js models vs face-api's own
68-point landmark and expression nets, on the same real faces, plus speed per face and per 640x480 frame.

    .venv/bin/python bench/browser.py [--keypoint-faces 300] [--emotion-faces 500] [--backends wasm cpu]

Faces: the keypoint validation block (the same contiguous-block split as training) and the PublicTest rows of FER2013
from ../shared/data in the shipped emotion model's classes (face-api's expressions of those classes compete).
Models: the shipped baseline in models/baseline/. The 640x480 frame is the public-domain
astronaut photo from scikit-image.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from instance import chromium, serve_repo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out" / "browser"
DATA = ROOT.parent / "shared" / "data"


def prepare(n_kp: int, n_em: int) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image
    from skimage import data as skdata

    from ml.align import FACE_FRAMING, framing_of, reframe
    from ml.datasets import read_faces, split
    from ml.export import read_manifest

    OUT.mkdir(parents=True, exist_ok=True)
    kp_val = split(read_faces(DATA / "keypoints.csv.gz"))[1]
    labels = read_manifest(ROOT / "models" / "baseline" / "emotion")["labels"]
    em_val = split(read_faces(DATA / "fer2013.csv.gz", labels=labels))[1]
    rng = np.random.default_rng(0)
    kp_idx = np.sort(rng.choice(len(kp_val), min(n_kp, len(kp_val)), replace=False))
    em_idx = np.sort(rng.choice(len(em_val), min(n_em, len(em_val)), replace=False))
    (OUT / "keypoints.bin").write_bytes(kp_val.images[kp_idx].tobytes())
    # our keypoint model reads its own framing (its manifest): the same faces, re-cut for it
    framing = framing_of(read_manifest(ROOT / "models" / "baseline" / "keypoints"))
    reframed, _ = reframe(kp_val.images[kp_idx], None, FACE_FRAMING, framing)
    (OUT / "keypoints_model.bin").write_bytes(reframed.tobytes())
    (OUT / "emotion.bin").write_bytes(em_val.images[em_idx].tobytes())
    (OUT / "faces.json").write_text(json.dumps({"keypoints": {"n": len(kp_idx)}, "emotion": {"n": len(em_idx)}}))
    frame = Image.new("RGB", (640, 480))
    frame.paste(Image.fromarray(skdata.astronaut()).resize((480, 480)), (80, 0))
    frame.save(OUT / "frame.png")
    return kp_val.points[kp_idx], em_val.labels[em_idx]


def to_face_frame(points) -> np.ndarray:
    """Points our model gave in its own framing -> the 96x96 face frame the truth is in."""
    from ml.align import FACE_FRAMING, apply, framing_of, invert, reframe_matrix
    from ml.export import read_manifest

    framing = framing_of(read_manifest(ROOT / "models" / "baseline" / "keypoints"))
    return apply(invert(reframe_matrix(FACE_FRAMING, framing)), np.asarray(points).reshape(-1, 15, 2))


def rmse(pred, true) -> float:
    return round(float(np.sqrt(np.mean((np.asarray(pred).reshape(-1, 15, 2) - true) ** 2))), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keypoint-faces", type=int, default=300)
    parser.add_argument("--emotion-faces", type=int, default=500)
    parser.add_argument("--backends", nargs="+", default=["wasm", "cpu"])
    args = parser.parse_args()
    points, labels = prepare(args.keypoint_faces, args.emotion_faces)

    server, files_url = serve_repo()
    url = f"{files_url}/bench/browser.html"

    from playwright.sync_api import sync_playwright

    def download_kb(kind: str) -> float:
        files = (ROOT / "models" / "baseline" / kind).glob("*")
        return round(sum(f.stat().st_size for f in files if f.name == "model.json" or f.suffix == ".bin") / 1024, 1)

    size_kb = {kind: download_kb(kind) for kind in ("keypoints", "emotion")}
    report = {"faces": {"keypoints": len(points), "emotion": len(labels)}, "download_kb": size_kb, "backends": {}}
    with sync_playwright() as p:
        browser = chromium(p)
        for backend in args.backends:
            page = browser.new_page()
            page.goto(url)
            page.wait_for_function("window.ready === true")
            out = page.evaluate(f"window.run('{backend}')")
            page.close()
            entry = {"median_ms": out["median_ms"], "faces_found_in_frame": out.get("faces_found")}
            if backend == args.backends[0]:
                kp, em = out["keypoints"], out["emotion"]
                accuracy = lambda predicted: round(float(np.mean(np.array(predicted) == labels)), 4)  # noqa: E731
                report["accuracy"] = {
                    "keypoints_rmse_px": {
                        "ours": rmse(to_face_frame(kp["ours"]), points),
                        "face-api 68->15": rmse(kp["faceapi"], points),
                    },
                    "emotion_accuracy": {
                        "ours": accuracy(em["ours"]),
                        "face-api (its classes in ours)": accuracy(em["faceapi"]),
                    },
                }
            report["backends"][out["backend"]] = entry
        browser.close()
    server.shutdown()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
