"""Recorded video: a file -> frames (streamed) -> the whole-picture path on each -> face tracks -> per-frame rows.

The twin of static/js/video.js (the browser's path): the same tracker (``Tracker``), the same points filter
(``OneEuro``), the same columns (``frames_header`` / ``tracks_header``); tests/ml/test_video.py and the browser tests
check that both write the same files. Nothing here holds more than one decoded frame: a video of any length is
analysed in the memory of one frame plus its rows.
"""

from __future__ import annotations

import csv
import hashlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ml import align
from ml.pipeline import centre, centre_shift, points_box
from ml.schema import KEYPOINT_COLUMNS

# frames are analysed at most this long on their longer side: a 4K file reads as 1280 px (faces stay many pixels high)
MAX_SIDE = 1280
DEFAULT_FPS = 10.0
# a track not seen for this long has ended; a face found after it is a new track
TRACK_GAP_S = 1.0
# association: a face continues the track whose box, moved on by the track's velocity, it overlaps most, when that
# overlap is at least this; failing any overlap, the track whose moved box's centre is within this many of its face
# sizes (a fast face the follower let slip between detector runs: 245-327 px/s at 10 frames/s, tests/ml/test_video.py)
TRACK_MIN_IOU = 0.2
TRACK_MAX_SHIFT = 1.0
# a track's velocity (px/s of its box's centre): each new match's step weighs this much against the velocity so far
TRACK_VELOCITY_WEIGHT = 0.5
# the follower's crop is moved on only when the track is expected to have moved at least this many face sizes: a
# still face's points wobble, and a seed moved by that wobble's velocity wobbles more (raw still-face jitter 0.076 ->
# 0.105 px without this floor, bench/video.py)
TRACK_MIN_MOVE = 0.05
# a track is kept only if the detector was this sure of it at least once: a pattern the detector finds once near its
# threshold (0.5) and the faces then follow is not a person (no_face.mp4's title: 0.589; single_face.mp4's man:
# 0.96-0.98; the astronaut's face 70 px high on a flat scene: 0.73)
TRACK_CONFIRM_SCORE = 0.65
# a recording's detector runs at least this often (seconds of video), whatever the analysis rate: between analysed
# frames a face moves further at a low rate, and following alone lets a fast face slip out of its crop
REDETECT_S = align.REDETECT_EVERY / 30


def tracking_manifest() -> dict:
    """The tracker's settings, as the browser's twin (static/js/video.js) reads them from the served manifest's
    ``pipeline.tracking``: one place for both paths."""
    return {
        "gap_s": TRACK_GAP_S,
        "min_iou": TRACK_MIN_IOU,
        "max_shift": TRACK_MAX_SHIFT,
        "velocity_weight": TRACK_VELOCITY_WEIGHT,
        "min_move": TRACK_MIN_MOVE,
        "confirm_score": TRACK_CONFIRM_SCORE,
        "redetect_s": REDETECT_S,
    }


class VideoError(ValueError):
    """The file cannot be analysed as a video: the message says why, in words a person can act on."""


# --- decoding ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoInfo:
    name: str
    width: int  # as shown (rotation honoured), before MAX_SIDE
    height: int
    fps: float  # the file's average frame rate
    duration_s: float
    codec: str
    rotation: int  # degrees the player turns the picture (phone videos)


def _open(path: str | Path):
    import av

    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path.name}: no such file.")
    if path.stat().st_size == 0:
        raise VideoError(f"{path.name} is empty (0 bytes): nothing to analyse.")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise VideoError(
            f"{path.name} is not a video this server can read ({getattr(exc, 'strerror', None) or exc})."
        ) from exc
    if not container.streams.video:
        container.close()
        kinds = "audio only" if container.streams.audio else "no video stream"
        raise VideoError(f"{path.name} has no picture ({kinds}): open a video file.")
    return container


def probe(path: str | Path) -> VideoInfo:
    with _open(path) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or 0) or 30.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        else:
            duration = 0.0
        rotation = 0
        try:
            first = next(container.decode(stream))
            rotation = int(getattr(first, "rotation", 0) or 0) % 360
        except (StopIteration, Exception):
            pass
        width, height = stream.codec_context.width, stream.codec_context.height
        if rotation in (90, 270):
            width, height = height, width
        return VideoInfo(Path(path).name, width, height, rate, duration, stream.codec_context.name, rotation)


def _shown(frame, max_side: int):
    """A decoded frame as the player shows it (rotation honoured), at most ``max_side`` px long, as a PIL image."""
    from PIL import Image

    rotation = int(getattr(frame, "rotation", 0) or 0) % 360
    scale = min(1.0, max_side / max(frame.width, frame.height))
    image = frame.to_image(width=max(1, round(frame.width * scale)), height=max(1, round(frame.height * scale)))
    # PyAV's rotation is the display matrix's angle, counter-clockwise: PIL's rotate turns counter-clockwise too
    if rotation:
        image = image.rotate(rotation, expand=True, resample=Image.Resampling.NEAREST)
    return image, scale


def frames(
    path: str | Path,
    *,
    fps: float | None = DEFAULT_FPS,
    start_s: float = 0.0,
    end_s: float | None = None,
    max_side: int = MAX_SIDE,
) -> Iterator[tuple[int, float, object, float]]:
    """(frame number in the file, time in s, PIL image at most ``max_side`` long, scale to the file's pixels) for
    the frames to analyse: every frame (``fps`` None) or the first frame at or after each 1/fps step, between
    ``start_s`` and ``end_s``. Decoded one at a time; variable frame rates are read by each frame's own time."""
    import av

    if fps is not None and not (0 < fps <= 240):
        raise VideoError(f"The analysis rate must be between 0 and 240 frames/s, got {fps}.")
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if start_s > 0:
            container.seek(int(start_s / stream.time_base), stream=stream, backward=True)
        step = None if fps is None else 1.0 / fps
        next_t = start_s
        number = -1
        decoded = 0
        try:
            for frame in container.decode(stream):
                decoded += 1
                t = float(frame.time if frame.time is not None else 0.0)
                number = round(t * float(stream.average_rate or 30)) if frame.time is not None else number + 1
                if t < start_s - 1e-6:
                    continue
                if end_s is not None and t >= end_s - 1e-6:
                    break
                if step is not None:
                    if t < next_t - 1e-6:
                        continue
                    next_t = start_s + (math.floor((t - start_s) / step + 1e-6) + 1) * step
                image, scale = _shown(frame, max_side)
                yield number, t, image, scale
        except av.error.InvalidDataError as exc:
            if not decoded:
                raise VideoError(f"{Path(path).name}: no frame could be decoded ({exc.strerror or exc}).") from exc
            # a truncated file: what was decoded stands; the rest is missing (the caller reports frames analysed)


def checksum(path: str | Path) -> str:
    """sha256 of the file, read in 1 MiB blocks: how a saved recording finds its local file again."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- the points filter ---------------------------------------------------------------------------------------------


class OneEuro:
    """The One Euro filter (Casiez, Roussel & Vogel, CHI 2012), on every coordinate of a face's points at once.

    A still face: the cutoff stays at ``min_cutoff`` Hz and jitter is smoothed away; a moving face: the cutoff rises
    with the speed (``beta``, per training-frame pixel per second), so the points keep up. Defaults chosen on
    bench/video.py's still and moving clips.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.5, d_cutoff: float = 1.0):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.x = self.dx = self.t = None

    @staticmethod
    def _alpha(cutoff, dt: float):
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, t: float, points: np.ndarray) -> np.ndarray:
        points = np.asarray(points, np.float64)
        if self.x is None or t <= self.t:
            self.x, self.dx, self.t = points.copy(), np.zeros_like(points), t
            return points.copy()
        dt = t - self.t
        # speed in training-frame pixels per second (align.frame_scale), so faces of any size are filtered alike
        scale = float(align.frame_scale(points[None])[0]) if points.shape == (15, 2) else 1.0
        dx = (points - self.x) / dt * scale
        a_d = self._alpha(self.d_cutoff, dt)
        self.dx = a_d * dx + (1 - a_d) * self.dx
        cutoff = self.min_cutoff + self.beta * np.abs(self.dx)
        a = self._alpha(cutoff, dt)
        self.x = a * points + (1 - a) * self.x
        self.t = t
        return self.x.copy()


# --- the tracker ---------------------------------------------------------------------------------------------------


def iou(a, b) -> float:
    ax0, ay0, aw, ah = a
    bx0, by0, bw, bh = b
    w = min(ax0 + aw, bx0 + bw) - max(ax0, bx0)
    h = min(ay0 + ah, by0 + bh) - max(ay0, by0)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / (aw * ah + bw * bh - inter)


@dataclass
class _Live:
    track: int
    box: tuple[float, float, float, float]
    last_t: float
    filter: OneEuro
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))  # px/s of the box's centre
    seen: int = 1

    def expected(self, t: float) -> np.ndarray:
        move = self.velocity * (t - self.last_t)
        return move if np.linalg.norm(move) >= TRACK_MIN_MOVE * (self.box[2] + self.box[3]) / 2 else np.zeros(2)

    def box_at(self, t: float) -> tuple[float, float, float, float]:
        dx, dy = self.expected(t)
        return self.box[0] + dx, self.box[1] + dy, self.box[2], self.box[3]


class Tracker:
    """Gives each face of each frame a track number that it keeps while it is followed.

    Each track moves on at its velocity (its box's centre, smoothed over its matches); a face continues the track
    whose moved box it overlaps most (greedy, best overlap first, at least TRACK_MIN_IOU), and failing that the
    track whose moved box lies nearest, within TRACK_MAX_SHIFT face sizes; a track not matched for ``gap_s`` ends; a
    face that matches none starts a new track. Numbers start at 1 and are never reused. ``expected(track, t)`` is
    how far a track's face should have moved since it was last seen: where the follower seeds its next crop.
    """

    def __init__(self, *, gap_s: float = TRACK_GAP_S, min_iou: float = TRACK_MIN_IOU, smooth: bool = True):
        self.gap_s, self.min_iou, self.smooth = gap_s, min_iou, smooth
        self.live: list[_Live] = []
        self.next = 1

    def is_new(self, tracks: list[int]) -> bool:
        """Whether any of these tracks was seen once only: its velocity is not known yet, so the detector should
        find it again on the next frame rather than the follower guess where it went."""
        return any(lv.seen == 1 for lv in self.live if lv.track in tracks)

    def expected(self, track: int, t: float) -> tuple[float, float]:
        lv = next((lv for lv in self.live if lv.track == track), None)
        return (0.0, 0.0) if lv is None else tuple(float(v) for v in lv.expected(t))

    def update(self, t: float, faces_points: list[np.ndarray]) -> list[tuple[int, np.ndarray]]:
        """(track number, filtered points) for each face, in the order given."""
        self.live = [lv for lv in self.live if t - lv.last_t <= self.gap_s + 1e-9]
        boxes = [points_box(p) for p in faces_points]
        moved = [lv.box_at(t) for lv in self.live]
        overlaps = sorted(
            ((iou(m, box), i, j) for i, m in enumerate(moved) for j, box in enumerate(boxes)), reverse=True
        )
        near = sorted((centre_shift(m, box), i, j) for i, m in enumerate(moved) for j, box in enumerate(boxes))
        taken_live, match = set(), {}
        candidates = [(i, j) for o, i, j in overlaps if o >= self.min_iou]
        candidates += [(i, j) for d, i, j in near if d <= TRACK_MAX_SHIFT]
        for i, j in candidates:
            if i in taken_live or j in match:
                continue
            taken_live.add(i)
            match[j] = self.live[i]
        out = []
        for j, points in enumerate(faces_points):
            lv = match.get(j)
            if lv is None:
                lv = _Live(self.next, boxes[j], t, OneEuro())
                self.next += 1
                self.live.append(lv)
            elif t > lv.last_t:
                step = (centre(boxes[j]) - centre(lv.box)) / (t - lv.last_t)
                w = 1.0 if lv.seen == 1 else TRACK_VELOCITY_WEIGHT
                lv.velocity = w * step + (1 - w) * lv.velocity
                lv.seen += 1
            lv.box, lv.last_t = boxes[j], t
            out.append((lv.track, lv.filter(t, points) if self.smooth else np.asarray(points, np.float64)))
        return out


# --- one analysis --------------------------------------------------------------------------------------------------


@dataclass
class FaceRow:
    frame: int
    time_s: float
    track: int | None  # None: an analysed frame where no face was found
    score: float = 0.0
    box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    points: np.ndarray | None = None  # (15, 2) filtered, in the file's pixels
    raw_points: np.ndarray | None = None  # (15, 2) as the model placed them
    probabilities: np.ndarray | None = None


@dataclass
class Analysis:
    video: str
    labels: list[str]
    fps: float | None  # the analysis rate (None: every frame)
    rows: list[FaceRow] = field(default_factory=list)  # faces, and one row per frame with none (track None)
    frames_analysed: int = 0
    width: int = 0
    height: int = 0
    duration_s: float = 0.0
    keypoints_version: str = ""
    emotion_version: str = ""


def analyze(
    path: str | Path,
    analyzer,
    *,
    fps: float | None = DEFAULT_FPS,
    start_s: float = 0.0,
    end_s: float | None = None,
    smooth: bool = True,
    on_frame: Callable[[float, float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    versions: tuple[str, str] = ("", ""),
    confirm: bool = True,
) -> Analysis:
    """The whole-picture path (ml.pipeline.Analyzer.analyze_frame: the detector every REDETECT_S seconds of video,
    faces followed between) over the frames of ``path``, each face given its track. ``on_frame(time_s,
    duration_s)`` after each frame (the video's length, probed once here, for a progress figure). Memory: one frame
    at a time. ``confirm=False``: every track as the tracker numbered it (a segment's, before ``join``)."""
    info = probe(path)
    labels = list(analyzer.emotion.manifest["labels"]) if analyzer.emotion is not None else []
    result = Analysis(info.name, labels, fps, width=info.width, height=info.height, duration_s=info.duration_s)
    result.keypoints_version, result.emotion_version = versions
    tracker = Tracker(smooth=smooth)
    followed: list = []
    tracks: list[int] = []  # followed's track numbers
    detected_t = -math.inf
    for number, t, image, scale in frames(path, fps=fps, start_s=start_s, end_s=end_s):
        if should_stop is not None and should_stop():
            break
        detect = not followed or t - detected_t >= REDETECT_S - 1e-6 or tracker.is_new(tracks)
        moves = [tracker.expected(track, t) for track in tracks]
        followed = analyzer.analyze_frame(image, followed, detect=detect, moves=moves)
        if detect:
            detected_t = t
        result.frames_analysed += 1
        if not followed:
            result.rows.append(FaceRow(number, t, None))
        tracked = tracker.update(t, [f.points for f in followed])
        tracks = [track for track, _ in tracked]
        for face, (track, points) in zip(followed, tracked, strict=True):
            result.rows.append(
                FaceRow(
                    number,
                    t,
                    track,
                    float(face.score),
                    tuple(v / scale for v in face.box),
                    points / scale,
                    np.asarray(face.points) / scale,
                    None if face.probabilities is None else np.asarray(face.probabilities),
                )
            )
        if on_frame is not None:
            on_frame(t, info.duration_s)
    return confirmed(result) if confirm else result


def confirmed(analysis: Analysis) -> Analysis:
    """Only the tracks the detector was sure of once (TRACK_CONFIRM_SCORE), renumbered 1, 2, ... in order of first
    appearance; a frame left without a face gets its empty row."""
    best: dict[int, float] = {}
    for r in analysis.rows:
        if r.track is not None:
            best[r.track] = max(best.get(r.track, 0.0), r.score)
    kept = {t: n for n, t in enumerate(sorted(t for t, s in best.items() if s >= TRACK_CONFIRM_SCORE), start=1)}
    rows, seen = [], set()
    for r in analysis.rows:
        if r.track is None or r.track in kept:
            if r.track is not None:
                r.track = kept[r.track]
            rows.append(r)
            seen.add(r.time_s)
    for r in analysis.rows:
        if r.time_s not in seen:
            rows.append(FaceRow(r.frame, r.time_s, None))
            seen.add(r.time_s)
    rows.sort(key=lambda r: (r.time_s, r.track or 0))
    analysis.rows = rows
    return analysis


# --- a long video in segments (several workers share one file) -------------------------------------------------------

# A segment starts this long before its share of the video: its tracker and points filter warm up on frames the
# segment before it also analysed, and the tracks of the two are matched on those frames (``join``).
SEGMENT_OVERLAP_S = 2.0


@dataclass(frozen=True)
class Segment:
    index: int
    start_s: float  # its share of the video begins here (rows from here on are its own)
    end_s: float | None  # and ends here (None: the end of the file)

    @property
    def analyse_from(self) -> float:
        return max(0.0, self.start_s - SEGMENT_OVERLAP_S) if self.index else 0.0


def segments(duration_s: float, fps: float | None, length_s: float) -> list[Segment]:
    """The video cut into shares of about ``length_s`` seconds; every boundary on the analysis rate's grid (so a
    segment samples the very frames one pass would) and a last share no shorter than half a segment."""
    if length_s <= 0 or duration_s <= length_s * 1.5:
        return [Segment(0, 0.0, None)]
    step = 1.0 / fps if fps else 1.0 / 30
    length = max(step, round(length_s / step) * step)
    count = max(1, math.floor(duration_s / length + 0.5))
    bounds = [round(k * length, 6) for k in range(count)]
    return [Segment(k, b, bounds[k + 1] if k + 1 < count else None) for k, b in enumerate(bounds)]


def analyze_segment(path: str | Path, analyzer, segment: Segment, **options) -> Analysis:
    """One segment's analysis, unconfirmed, including its warm-up frames (``join`` keeps what is its own)."""
    return analyze(path, analyzer, start_s=segment.analyse_from, end_s=segment.end_s, confirm=False, **options)


def join(parts: list[tuple[Segment, Analysis]]) -> Analysis:
    """The segments' analyses as one, as if one pass had read the file: each segment keeps its own share's rows;
    a track of a segment continues the track of the segment before it that it overlaps most (mean overlap of their
    boxes on the warm-up frames both analysed, at least TRACK_MIN_IOU, greedy); then ``confirmed``."""
    parts = sorted(parts, key=lambda p: p[0].index)
    if not parts:
        raise ValueError("no segment to join")
    out = replace(parts[0][1], rows=[], frames_analysed=0)
    next_id = 1
    previous: dict[float, list[FaceRow]] = {}  # the segment before's faces by time (renumbered, warm-up included)
    for segment, analysis in parts:
        mapping: dict[int, int] = {}
        overlaps: dict[tuple[int, int], list[float]] = {}
        for r in analysis.rows:
            if r.track is not None and r.time_s < segment.start_s - 1e-6:  # a warm-up frame
                for other in previous.get(round(r.time_s, 4), []):
                    overlaps.setdefault((other.track, r.track), []).append(iou(other.box, r.box))
        ranked = sorted(((float(np.mean(v)), a, b) for (a, b), v in overlaps.items()), reverse=True)
        taken = set()
        for score, a, b in ranked:
            if score < TRACK_MIN_IOU:
                break
            if a in taken or b in mapping:
                continue
            taken.add(a)
            mapping[b] = a
        previous = {}
        for r in analysis.rows:
            if r.track is not None:
                if r.track not in mapping:
                    mapping[r.track] = next_id
                    next_id += 1
                r.track = mapping[r.track]
                previous.setdefault(round(r.time_s, 4), []).append(r)
            if r.time_s >= segment.start_s - 1e-6:
                out.rows.append(r)
        out.frames_analysed += len({r.time_s for r in analysis.rows if r.time_s >= segment.start_s - 1e-6})
    return confirmed(out)


def save_part(analysis: Analysis, path: str | Path) -> None:
    """A segment's analysis as one .npz (arrays only, no pickles), for the worker that joins the segments."""
    rows = analysis.rows
    k = len(analysis.labels)

    def stack(get, shape):
        return np.array([get(r) if r.track is not None else np.zeros(shape) for r in rows], np.float64).reshape(
            (len(rows), *shape)
        )

    np.savez_compressed(
        path,
        meta=np.array(
            [
                analysis.video,
                "\x1f".join(analysis.labels),
                "" if analysis.fps is None else repr(analysis.fps),
                str(analysis.width),
                str(analysis.height),
                repr(analysis.duration_s),
                analysis.keypoints_version,
                analysis.emotion_version,
                str(analysis.frames_analysed),
            ]
        ),
        frame=np.array([r.frame for r in rows], np.int64),
        time=np.array([r.time_s for r in rows], np.float64),
        track=np.array([-1 if r.track is None else r.track for r in rows], np.int64),
        score=np.array([r.score for r in rows], np.float64),
        box=stack(lambda r: r.box, (4,)),
        points=stack(lambda r: r.points, (len(KEYPOINT_COLUMNS) // 2, 2)),
        raw=stack(lambda r: r.raw_points, (len(KEYPOINT_COLUMNS) // 2, 2)),
        probabilities=stack(lambda r: r.probabilities if r.probabilities is not None else np.zeros(k), (k,)),
    )


def load_part(path: str | Path) -> Analysis:
    with np.load(path, allow_pickle=False) as data:
        video, labels, fps, width, height, duration, kv, ev, analysed = (str(v) for v in data["meta"])
        out = Analysis(
            video,
            labels.split("\x1f") if labels else [],
            float(fps) if fps else None,
            frames_analysed=int(analysed),
            width=int(width),
            height=int(height),
            duration_s=float(duration),
            keypoints_version=kv,
            emotion_version=ev,
        )
        for i, track in enumerate(data["track"]):
            frame, t = int(data["frame"][i]), float(data["time"][i])
            if track < 0:
                out.rows.append(FaceRow(frame, t, None))
                continue
            out.rows.append(
                FaceRow(
                    frame,
                    t,
                    int(track),
                    float(data["score"][i]),
                    tuple(float(v) for v in data["box"][i]),
                    data["points"][i].copy(),
                    data["raw"][i].copy(),
                    data["probabilities"][i].copy(),
                )
            )
    return out


# --- the two files -------------------------------------------------------------------------------------------------

FRAME_COLUMNS = ["video", "frame", "time_s", "track", "detector_score", "box_x", "box_y", "box_w", "box_h"]


def frames_header(labels: list[str]) -> list[str]:
    return [*FRAME_COLUMNS, *KEYPOINT_COLUMNS, *labels, "emotion", "keypoints_version", "emotion_version"]


def tracks_header(labels: list[str]) -> list[str]:
    return [
        "video",
        "track",
        "name",
        "first_s",
        "last_s",
        "frames",
        "frames_missing",
        *(f"share_{c}" for c in labels),
        *(f"mean_{c}" for c in labels),
    ]


def _num(v: float, digits: int = 2) -> str:
    return f"{v:.{digits}f}"


def frame_rows(analysis: Analysis, *, empty_frames: bool = False, raw: bool = False) -> Iterator[list]:
    """The frames file's rows (header first). ``raw``: the model's points instead of the filtered ones."""
    labels = analysis.labels
    yield frames_header(labels)
    for r in analysis.rows:
        head = [analysis.video, r.frame, _num(r.time_s, 3)]
        if r.track is None:
            if empty_frames:
                yield [
                    *head,
                    *[""] * (len(FRAME_COLUMNS) - 3 + len(KEYPOINT_COLUMNS) + len(labels) + 1),
                    analysis.keypoints_version,
                    analysis.emotion_version,
                ]
            continue
        points = r.raw_points if raw else r.points
        probs = r.probabilities
        yield [
            *head,
            r.track,
            _num(r.score, 3),
            *(_num(v) for v in r.box),
            *(_num(v) for v in points.reshape(-1)),
            *((_num(float(p), 4) for p in probs) if probs is not None else [""] * len(labels)),
            labels[int(np.argmax(probs))] if probs is not None and labels else "",
            analysis.keypoints_version,
            analysis.emotion_version,
        ]


@dataclass
class TrackSummary:
    track: int
    name: str
    first_s: float
    last_s: float
    frames: int
    frames_missing: int  # analysed frames between its first and last where it was not found
    share: list[float]  # of its frames, the fraction whose top class is each class
    mean: list[float]  # mean probability of each class


def summaries(analysis: Analysis, names: dict[int, str] | None = None) -> list[TrackSummary]:
    names = names or {}
    times = sorted({r.time_s for r in analysis.rows})
    by_track: dict[int, list[FaceRow]] = {}
    for r in analysis.rows:
        if r.track is not None:
            by_track.setdefault(r.track, []).append(r)
    out = []
    k = len(analysis.labels)
    for track, rows in sorted(by_track.items()):
        first, last = rows[0].time_s, rows[-1].time_s
        span = sum(1 for t in times if first <= t <= last)
        probs = np.array([r.probabilities for r in rows if r.probabilities is not None]).reshape(-1, k) if k else None
        if probs is not None and len(probs):
            share = np.bincount(probs.argmax(axis=1), minlength=k) / len(probs)
            mean = probs.mean(axis=0)
        else:
            share = mean = np.zeros(k)
        out.append(
            TrackSummary(
                track,
                names.get(track, f"Face {track}"),
                first,
                last,
                len(rows),
                span - len(rows),
                [float(v) for v in share],
                [float(v) for v in mean],
            )
        )
    return out


def track_rows(analysis: Analysis, names: dict[int, str] | None = None) -> Iterator[list]:
    yield tracks_header(analysis.labels)
    for s in summaries(analysis, names):
        yield [
            analysis.video,
            s.track,
            s.name,
            _num(s.first_s, 3),
            _num(s.last_s, 3),
            s.frames,
            s.frames_missing,
            *(_num(v, 4) for v in s.share),
            *(_num(v, 4) for v in s.mean),
        ]


def write_csvs(
    analysis: Analysis, out_dir: str | Path, *, empty_frames: bool = False, names: dict[int, str] | None = None
) -> tuple[Path, Path]:
    """``<video>.frames.csv`` and ``<video>.tracks.csv`` in ``out_dir`` (docs/video.md)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = Path(analysis.video).stem
    paths = out_dir / f"{stem}.frames.csv", out_dir / f"{stem}.tracks.csv"
    for p, rows in zip(
        paths, (frame_rows(analysis, empty_frames=empty_frames), track_rows(analysis, names)), strict=True
    ):
        with open(p, "w", newline="") as f:
            csv.writer(f).writerows(rows)
    return paths
