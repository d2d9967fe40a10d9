"""Recorded video on the server's path: frames per second per worker process, memory, and the points filter.

    .venv/bin/python bench/video.py [--seconds 120] [--fps 10]

Makes its clips from the test helpers (tests/videos.py: the astronaut's portrait, still with camera noise, and
moving at 80 px/s), then prints, for the shipped baseline models on LiteRT (what a worker runs):
- analysis speed: frames per second, and times real time, at the asked rate and for every frame;
- the process's peak memory (ru_maxrss) after a clip of ``--seconds`` (decoded one frame at a time);
- still points: frame-to-frame RMS movement of the raw and the filtered points (training-frame px);
- moving points: the filtered points' median distance from the raw ones (how far the filter trails);
- shares: the long clip cut as the workers cut it (ml.video.segments, ``--segment`` s) and analysed by ``--workers``
  processes at once, joined (ml.video.join): the wall time against one process's, and whether the tracks agree.
Real clips: pass them with --clip FILE (no ground truth; only speed and tracks are printed).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml import video as mlvideo
from ml.pipeline import Analyzer, LoadedModel
from tests import videos

BASELINE = Path(__file__).resolve().parents[1] / "models" / "baseline"


def _scale(points: np.ndarray) -> float:
    return 38 / np.linalg.norm(points[13:15].mean(0) - points[0:2].mean(0))


def _jitter(points: np.ndarray, scale: np.ndarray) -> float:
    """Frame-to-frame RMS movement in training-frame px."""
    return float(np.sqrt(np.mean((np.diff(points, axis=0) * scale[1:]) ** 2)))


def _timed(analyzer, path, fps):
    started = time.perf_counter()
    analysis = mlvideo.analyze(path, analyzer, fps=fps)
    return analysis, time.perf_counter() - started


def baseline_analyzer() -> Analyzer:
    """The shipped baseline pair on LiteRT, as a worker runs it."""
    return Analyzer(
        LoadedModel.from_dir(BASELINE / "keypoints", runtime="litert"),
        LoadedModel.from_dir(BASELINE / "emotion", runtime="litert"),
    )


_ANALYZER = None


def _load() -> None:
    """Each process its own models, as each Celery worker has (loaded before the clock starts)."""
    global _ANALYZER
    _ANALYZER = baseline_analyzer()


def _ready(_) -> bool:
    time.sleep(1.0)  # one such call per process: every process has run _load
    return _ANALYZER is not None


def _share(job):
    path, segment, fps = job
    return segment, mlvideo.analyze_segment(path, _ANALYZER, segment, fps=fps)


def _shares(path, fps, segment_s, workers, one_pass, one_seconds) -> None:
    import multiprocessing

    segments = mlvideo.segments(mlvideo.probe(path).duration_s, fps, segment_s)
    with multiprocessing.get_context("spawn").Pool(workers, initializer=_load) as pool:
        assert all(pool.map(_ready, range(workers), chunksize=1))
        started = time.perf_counter()
        joined = mlvideo.join(pool.map(_share, [(path, s, fps) for s in segments], chunksize=1))
        seconds = time.perf_counter() - started
    same = [(r.frame, r.track) for r in joined.rows] == [(r.frame, r.track) for r in one_pass.rows]
    print(
        f"{path.name} in {len(segments)} shares of {segment_s:g} s on {workers} processes: {seconds:.1f} s against "
        f"{one_seconds:.1f} s for one = {seconds / one_seconds:.2f} of one worker's time; "
        f"{len({r.track for r in joined.rows if r.track})} track(s), the same frames and tracks as one pass: {same}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120.0, help="length of the long clip (memory, speed)")
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--clip", action="append", default=[], help="a real clip to time as well")
    parser.add_argument("--workers", type=int, default=2, help="processes sharing the long clip (0: skip)")
    parser.add_argument("--segment", type=float, default=30.0, help="seconds per share (RECORDING_SEGMENT_SECONDS)")
    args = parser.parse_args()
    analyzer = baseline_analyzer()
    face = videos.face_portrait()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        still = videos.write_clip(tmp / "still.mp4", [face], videos.still(), seconds=5, noise=6)
        moving = videos.write_clip(
            tmp / "moving.mp4", [face], videos.moving(speed=80, side=300), seconds=5, size=(960, 540)
        )
        long = videos.write_clip(
            tmp / "long.mp4", [face], lambda t: [(200 + 60 * np.sin(t / 2), 40, 260)], seconds=args.seconds
        )
        print(f"clips made from the astronaut portrait (tests/videos.py); models: {BASELINE} on LiteRT")
        for path in [long, *map(Path, args.clip)]:
            for fps in (args.fps, None):
                analysis, seconds = _timed(analyzer, path, fps)
                if path == long and fps == args.fps:
                    long_pass = analysis, seconds
                info = mlvideo.probe(path)
                tracks = len({r.track for r in analysis.rows if r.track is not None})
                rate = "every frame" if fps is None else f"{fps:g} frames/s"
                print(
                    f"{path.name} ({info.width}x{info.height}, {info.fps:g} fps, {info.duration_s:.1f} s) at {rate}: "
                    f"{analysis.frames_analysed} frames in {seconds:.1f} s = {analysis.frames_analysed / seconds:.1f} "
                    f"frames/s, {info.duration_s / seconds:.2f}x real time, {tracks} track(s)"
                )
        print(f"peak memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
        if args.workers:
            _shares(long, args.fps, args.segment, args.workers, *long_pass)
        for name, path in (("still", still), ("moving", moving)):
            analysis = mlvideo.analyze(path, analyzer, fps=None)
            rows = [r for r in analysis.rows if r.track == 1]
            raw = np.array([r.raw_points for r in rows])
            filtered = np.array([r.points for r in rows])
            scale = np.array([_scale(p) for p in raw])[:, None, None]
            if name == "still":
                print(
                    f"still face (camera noise 6 grey levels), frame-to-frame RMS: raw {_jitter(raw, scale):.3f} px, "
                    f"filtered {_jitter(filtered, scale):.3f} px (training frame)"
                )
            else:
                trail = np.median(np.linalg.norm((filtered - raw) * scale, axis=2).mean(1))
                print(f"moving face (80 px/s): the filtered points trail the raw ones by {trail:.3f} px (median)")
        _crossing(analyzer, tmp, args.fps)


def _crossing(analyzer, tmp: Path, fps: float) -> None:
    """Two people crossing a 1280x720 frame ever faster: how many tracks each pass makes (2 is right) and how far
    the points' centre lies from where the clip put each face (the face's centre in its square, in video px)."""
    for seconds in (6.0, 4.0, 3.0):
        place = videos.crossing(seconds)
        path = videos.crossing_clip(tmp / f"crossing{seconds:g}.mp4", seconds)
        for rate in (fps, None):
            analysis = mlvideo.analyze(path, analyzer, fps=rate)
            rows = [r for r in analysis.rows if r.track is not None]
            off = [
                abs(r.points[:, 0].mean() - place(r.time_s)[0 if r.points[:, 1].mean() < 360 else 1][0] - 150)
                for r in rows
            ]
            print(
                f"crossing in {seconds:g} s ({(1280 - 300) / seconds:.0f} px/s) at "
                f"{'every frame' if rate is None else f'{rate:g} frames/s'}: "
                f"{len({r.track for r in rows})} track(s), points' centre {np.median(off):.1f} px (median), "
                f"{np.percentile(off, 95):.1f} px (95th) from the face's"
            )


if __name__ == "__main__":
    main()
