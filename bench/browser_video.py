"""Recorded video in the browser (headless Chromium, wasm): the demo page's *Open a video…* at 10 frames/s and at
every frame, next to face-api's own video path on the same clips and frames.

    .venv/bin/python bench/browser_video.py [--clip FILE ...] [--seconds 10]

A throwaway instance in bench/out/browser_video/ (SQLite, the shipped baselines active, `manage.py runserver` on a
free loopback port) serves the demo page as a user gets it; the page is driven as a user drives it (the rate menu, the
file input) and its own figure is read back: frames analysed and seconds from the file chosen to the timeline shown
(it includes the page's measuring of the file's frame rate). face-api (@vladmandic/face-api from npm, its tiny face
detector, 68 landmarks and expressions, wasm) runs as its README and demo show video: detectAllFaces(video)
.withFaceLandmarks().withFaceExpressions() on each frame, the same frames seeked the same way (runVideo in
bench/browser.html).

Clips: a 640x360, 30 fps clip of the portrait moving at 40 px/s with camera noise (tests/videos.py, ``--seconds``
long) and ../shared/data/videos/single_face.mp4 (640x360, 30 fps, 2.4 s), plus any ``--clip``.
Goals (issue #36): at 10 frames/s at least 2x faster than real time; every frame of a 30 fps clip at >= 15 frames/s.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out" / "browser_video"
REAL = ROOT.parent / "shared" / "data" / "videos" / "single_face.mp4"

from instance import chromium, serve_app, serve_repo  # noqa: E402

from ml import video as mlvideo  # noqa: E402


def ours(browser, url: str, clip: Path, fps: float | None) -> dict:
    """The demo page as a user drives it: the rate, then the file; its own printed figure read back."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(url)
    page.wait_for_function("window.studio && window.studio.ready === true", timeout=120_000)
    page.select_option("#rate", str(int(fps or 0)))
    page.set_input_files("#video-file", str(clip))
    page.wait_for_function(
        "window.studio.recording && document.getElementById('analysing').hidden", timeout=600_000, polling=200
    )
    out = page.evaluate(
        "({seconds: window.studio.analysisSeconds, frames: window.studio.recording.framesAnalysed,"
        " tracks: window.studio.recording.tracks.length, status: document.getElementById('status').textContent})"
    )
    page.close()
    return out


def faceapi(browser, url: str, clip_url: str, frames: list[int], rate: float) -> dict:
    page = browser.new_page()
    page.goto(url)
    page.wait_for_function("window.ready === true")
    out = page.evaluate("([u, f, r]) => window.runVideo(u, f, r)", [clip_url, frames, rate])
    page.close()
    return out


def figures(out: dict, duration: float) -> dict:
    """Frames, seconds, frames per second and times real time of one pass."""
    return {
        "frames": out["frames"],
        "seconds": round(out["seconds"], 2),
        "frames_per_s": round(out["frames"] / out["seconds"], 1),
        "x_real_time": round(duration / out["seconds"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", type=Path, action="append", default=[], help="more clips (any the browser plays)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the made 640x360 clip")
    args = parser.parse_args()

    from tests import videos

    shutil.rmtree(OUT, ignore_errors=True)
    (OUT / "clips").mkdir(parents=True)
    made = videos.write_clip(
        OUT / "clips" / "portrait_640x360.mp4",
        [videos.face_portrait()],
        videos.moving(speed=40, side=260),
        seconds=args.seconds,
        noise=4,
    )
    clips = [made] + ([REAL] if REAL.exists() else []) + args.clip
    for clip in clips[1:]:
        shutil.copy(clip, OUT / "clips" / clip.name)
    web, url = serve_app(OUT / "var")
    files, files_url = serve_repo()

    from playwright.sync_api import sync_playwright

    rows = []
    try:
        with sync_playwright() as p:
            browser = chromium(p)
            for clip in clips:
                info = mlvideo.probe(clip)
                rate, duration = info.fps, info.duration_s
                for fps in (10, None):
                    # the frames the page analyses: the server path's (tests/e2e/test_video.py checks they are one)
                    frames = [number for number, *_ in mlvideo.frames(clip, fps=fps)]
                    mine = ours(browser, url, clip, fps)
                    theirs = faceapi(
                        browser,
                        f"{files_url}/bench/browser.html",
                        f"{files_url}/bench/out/browser_video/clips/{clip.name}",
                        frames,
                        rate,
                    )
                    rows.append(
                        {
                            "clip": clip.name,
                            "duration_s": round(duration, 2),
                            "rate": "every frame" if fps is None else f"{fps} frames/s",
                            "ours": {**figures(mine, duration), "tracks": mine["tracks"]},
                            "face-api": {
                                **figures(theirs, duration),
                                "frames_with_a_face": theirs["found"],
                                "backend": theirs["backend"],
                            },
                        }
                    )
                    print(json.dumps(rows[-1]), flush=True)
            browser.close()
    finally:
        web.terminate()
        web.wait(timeout=30)
        files.shutdown()
    print()
    print(
        "| clip | rate | ours: frames/s | × real time | tracks "
        "| face-api: frames/s | × real time | frames with a face |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        o, f = r["ours"], r["face-api"]
        print(
            f"| {r['clip']} ({r['duration_s']} s) | {r['rate']} | {o['frames_per_s']} | {o['x_real_time']} | "
            f"{o['tracks']} | {f['frames_per_s']} | {f['x_real_time']} | {f['frames_with_a_face']} of {f['frames']} |"
        )


if __name__ == "__main__":
    main()
