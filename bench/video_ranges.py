"""The timeline against a person's labels: on clips with time ranges a person labeled, how often the top class of an
analysed frame is the person's label (issue #36's goal: >= 90 % of the frames in those ranges).

    .venv/bin/python bench/video_ranges.py [--ranges bench/data/video_ranges.csv] [--videos ../shared/data/videos]

The ranges file: ``video,start_s,end_s,emotion,labeled_by,note``, one row per range (a frame at time t is in a range
when start_s <= t <= end_s; the moments between expressions are left out, as a person cannot say them either).
Each clip goes through the workers' path (ml.video.analyze: detector, tracker, the shipped baseline on LiteRT) at
10 frames/s and at every frame. Prints, per range and in all, the frames with a face, the share whose top class is
the label, and what the model said instead.
"""

from __future__ import annotations

import argparse
import collections
import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from video import BASELINE, baseline_analyzer  # noqa: E402  (bench/video.py: the workers' pair on LiteRT)

from ml import video as mlvideo  # noqa: E402


def read_ranges(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["start_s"], r["end_s"] = float(r["start_s"]), float(r["end_s"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranges", type=Path, default=ROOT / "bench" / "data" / "video_ranges.csv")
    parser.add_argument("--videos", type=Path, default=ROOT.parent / "shared" / "data" / "videos")
    args = parser.parse_args()
    ranges = read_ranges(args.ranges)
    analyzer = baseline_analyzer()
    print(f"models: {BASELINE} on LiteRT; ranges: {args.ranges} ({len(ranges)})")
    for fps in (10.0, None):
        rate = "every frame" if fps is None else f"{fps:g} frames/s"
        total = agreed = 0
        for video in dict.fromkeys(r["video"] for r in ranges):
            analysis = mlvideo.analyze(args.videos / video, analyzer, fps=fps)
            labels = analysis.labels
            faces = [row for row in analysis.rows if row.track is not None]
            for r in (r for r in ranges if r["video"] == video):
                inside = [row for row in faces if r["start_s"] - 1e-6 <= row.time_s <= r["end_s"] + 1e-6]
                said = collections.Counter(labels[int(row.probabilities.argmax())] for row in inside)
                hits = said[r["emotion"]]
                total, agreed = total + len(inside), agreed + hits
                others = ", ".join(f"{k} {v}" for k, v in said.most_common() if k != r["emotion"]) or "none"
                share = hits / len(inside) if inside else float("nan")
                print(
                    f"{rate}: {video} {r['start_s']:.2f}-{r['end_s']:.2f} s labeled {r['emotion']}: "
                    f"{hits} of {len(inside)} frames with a face agree ({share:.0%}); the others: {others}"
                )
        print(f"{rate}: in all {agreed} of {total} frames agree = {agreed / max(total, 1):.1%} (goal >= 90 %)")


if __name__ == "__main__":
    main()
