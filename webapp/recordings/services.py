"""Writes of recordings: save an analysis (the browser's or a worker's), rename, merge and delete tracks, the
server's analysis of an uploaded video."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from ml import video as mlvideo
from webapp.recordings.models import FrameResult, Recording, Track
from webapp.registry.models import ModelVersion


class RecordingError(ValueError):
    """A recording that cannot be stored or changed as asked; the message says why."""


@dataclass
class FrameIn:
    frame: int
    time_s: float
    score: float
    box: list[float]
    points: list[list[float]]
    raw_points: list[list[float]]
    probabilities: list[float]


def _finite(values, what: str, n: int | None = None) -> list[float]:
    flat = [float(v) for v in values]
    if n is not None and len(flat) != n:
        raise RecordingError(f"{what} needs {n} numbers, got {len(flat)}")
    if not all(math.isfinite(v) for v in flat):
        raise RecordingError(f"{what} holds a value that is not a finite number")
    return flat


def _check_frame(f: FrameIn, labels: list[str], width: int, height: int, where: str) -> None:
    _finite([f.time_s, f.score], f"{where}: time_s and score")
    if f.time_s < 0:
        raise RecordingError(f"{where}: time_s is negative")
    _finite(f.box, f"{where}: box", 4)
    # a face at the picture's edge may have points a little outside it; far outside is not a face of this picture
    margin = max(width, height)
    for name, points in (("points", f.points), ("raw_points", f.raw_points)):
        flat = _finite([v for p in points for v in p], f"{where}: {name}", 30)
        xs, ys = flat[0::2], flat[1::2]
        if (
            width
            and height
            and (min(xs) < -margin or max(xs) > width + margin or min(ys) < -margin or max(ys) > height + margin)
        ):
            raise RecordingError(f"{where}: {name} lie outside the {width}x{height} picture")
    probs = _finite(f.probabilities, f"{where}: probabilities", len(labels))
    if any(p < 0 or p > 1 for p in probs) or abs(sum(probs) - 1) > 0.02:
        raise RecordingError(f"{where}: probabilities must be in [0, 1] and sum to 1")


@transaction.atomic
def recording_save(
    *,
    author,
    name: str,
    source: str,
    tracks: list[dict],
    labels: list[str],
    checksum: str = "",
    duration_s: float = 0.0,
    fps: float | None = None,
    width: int = 0,
    height: int = 0,
    frames_analysed: int = 0,
    frames_without_face: int = 0,
    empty_frames: list | None = None,
    keypoints_version: ModelVersion | None = None,
    emotion_version: ModelVersion | None = None,
    reanalysis_of: Recording | None = None,
    recording: Recording | None = None,
) -> Recording:
    """Stores one analysis: ``tracks`` = [{"number", "name", "frames": [FrameIn]}]. Everything is checked before
    anything is written; ``recording``: fill that (a worker's) row instead of a new one."""
    rows = sum(len(t["frames"]) for t in tracks)
    if rows > settings.RECORDING_MAX_ROWS:
        raise RecordingError(
            f"{rows} per-frame results are more than one recording keeps ({settings.RECORDING_MAX_ROWS}): "
            "analyse fewer frames per second or a shorter part"
        )
    numbers = [int(t["number"]) for t in tracks]
    if len(set(numbers)) != len(numbers) or any(n < 1 for n in numbers):
        raise RecordingError("track numbers must be distinct and start at 1")
    for t in tracks:
        seen = set()
        for i, f in enumerate(t["frames"]):
            _check_frame(f, labels, width, height, f"track {t['number']}, frame {i}")
            if f.time_s in seen:
                raise RecordingError(f"track {t['number']} has two results at {f.time_s} s: one face, one place")
            seen.add(f.time_s)
    empty = _empty_frames(empty_frames, frames_without_face, {f.time_s for t in tracks for f in t["frames"]})
    for version, kind in ((keypoints_version, "keypoints"), (emotion_version, "emotion")):
        if version is not None and version.kind != kind:
            raise RecordingError(f"{kind}_version {version.pk} is a {version.kind} model")
    fields = dict(
        name=name[:255],
        checksum=checksum,
        source=source,
        duration_s=duration_s,
        fps=fps,
        width=width,
        height=height,
        frames_analysed=frames_analysed,
        frames_without_face=frames_without_face,
        empty_frames=empty,
        labels=list(labels),
        keypoints_version=keypoints_version,
        emotion_version=emotion_version,
        reanalysis_of=reanalysis_of,
        status=Recording.Status.SUCCEEDED,
        progress=1.0,
        error="",
    )
    if recording is None:
        recording = Recording.objects.create(created_by=author, **fields)
    else:
        Recording.objects.filter(pk=recording.pk).update(**fields)
        recording.refresh_from_db()
    for t in tracks:
        track = Track.objects.create(recording=recording, number=int(t["number"]), name=str(t.get("name") or "")[:100])
        FrameResult.objects.bulk_create(
            (
                FrameResult(
                    recording=recording,
                    track=track,
                    frame=f.frame,
                    time_s=f.time_s,
                    score=f.score,
                    box=[round(v, 2) for v in f.box],
                    points=_rounded(f.points),
                    raw_points=_rounded(f.raw_points),
                    probabilities=[round(float(p), 5) for p in f.probabilities],
                )
                for f in t["frames"]
            ),
            batch_size=1000,
        )
    return recording


def _empty_frames(given, count: int, faces_at: set[float]) -> list[list]:
    """The analysed frames where no face was found, as [frame, time_s], checked: as many as ``frames_without_face``
    says, each a real time where no face row lies (a frame with a face is not empty)."""
    if given is None:
        return []
    if not isinstance(given, list) or len(given) != count:
        raise RecordingError(f"empty_frames must list the {count} frames without a face as [frame, time_s]")
    out = []
    for i, item in enumerate(given):
        try:
            frame, time_s = int(item[0]), float(item[1])
        except (TypeError, ValueError, IndexError, KeyError):
            raise RecordingError(f"empty_frames {i}: must be [frame, time_s]") from None
        if frame < 0 or not math.isfinite(time_s) or time_s < 0:
            raise RecordingError(f"empty_frames {i}: a frame number and a time at or after 0")
        if time_s in faces_at:
            raise RecordingError(f"empty_frames {i}: a face was found at {time_s} s")
        out.append([frame, round(time_s, 4)])
    return sorted(out, key=lambda x: x[1])


def _rounded(points) -> list[list[float]]:
    return [[round(float(x), 2), round(float(y), 2)] for x, y in points]


def analysis_tracks(analysis: mlvideo.Analysis) -> list[dict]:
    """An ml.video.Analysis as recording_save's ``tracks``."""
    tracks: dict[int, dict] = {}
    for r in analysis.rows:
        if r.track is None:
            continue
        tracks.setdefault(r.track, {"number": r.track, "name": "", "frames": []})["frames"].append(
            FrameIn(
                r.frame,
                r.time_s,
                r.score,
                list(r.box),
                r.points.tolist(),
                r.raw_points.tolist(),
                [float(p) for p in r.probabilities],
            )
        )
    return list(tracks.values())


def recording_from_analysis(
    analysis: mlvideo.Analysis, *, author, source: str, checksum: str, versions, recording: Recording | None = None
) -> Recording:
    empty = [[r.frame, r.time_s] for r in analysis.rows if r.track is None]
    return recording_save(
        author=author,
        name=analysis.video,
        source=source,
        checksum=checksum,
        tracks=analysis_tracks(analysis),
        labels=analysis.labels,
        duration_s=analysis.duration_s,
        fps=analysis.fps,
        width=analysis.width,
        height=analysis.height,
        frames_analysed=analysis.frames_analysed,
        frames_without_face=len(empty),
        empty_frames=empty,
        keypoints_version=versions[0],
        emotion_version=versions[1],
        recording=recording,
    )


def track_rename(*, recording: Recording, number: int, name: str) -> Track:
    track = _track(recording, number)
    track.name = name.strip()[:100]
    track.save(update_fields=["name"])
    return track


@transaction.atomic
def track_merge(*, recording: Recording, number: int, into: int) -> Track:
    """Track ``number`` is the same person as ``into``: its results join ``into`` and it is gone. Refused where both
    have a face at the same moment (one person is one face per frame)."""
    if number == into:
        raise RecordingError("a track cannot be merged into itself")
    source, target = _track(recording, number), _track(recording, into)
    both = set(source.frames.values_list("time_s", flat=True)) & set(target.frames.values_list("time_s", flat=True))
    if both:
        raise RecordingError(
            f"{source.label} and {target.label} are both in the picture at {min(both):.2f} s: two people, not one"
        )
    source.frames.update(track=target)
    if not target.name and source.name:
        target.name = source.name
        target.save(update_fields=["name"])
    source.delete()
    return target


def track_delete(*, recording: Recording, number: int) -> None:
    """A false track (not a face) and its results."""
    _track(recording, number).delete()


def _track(recording: Recording, number: int) -> Track:
    track = recording.tracks.filter(number=number).first()
    if track is None:
        raise RecordingError(f"{recording.name} has no track {number}")
    return track


# --- the server's analysis -------------------------------------------------------------------------------------------


def recording_request(*, author, upload, fps: float | None, keep_video: bool = True) -> Recording:
    """A staff upload: the file is stored, a row says pending, and workers analyse it: one task for a short file
    (tasks.analyze), one per share of a long one (tasks.analyze_segment, RECORDING_SEGMENT_SECONDS), which any
    number of workers take at once."""
    from webapp.recordings.tasks import analyze, analyze_segment

    recording = Recording.objects.create(
        name=upload.name[:255],
        source=Recording.Source.SERVER,
        status=Recording.Status.PENDING,
        progress=0.0,
        fps=fps,
        created_by=author,
        video=upload,
    )
    try:
        info = mlvideo.probe(recording.video.path)
        if info.duration_s > settings.RECORDING_MAX_SECONDS:
            raise mlvideo.VideoError(
                f"{upload.name} lasts {info.duration_s / 3600:.1f} h; a recording is at most "
                f"{settings.RECORDING_MAX_SECONDS / 3600:.1f} h (RECORDING_MAX_SECONDS): cut it into parts"
            )
    except mlvideo.VideoError:
        recording.video.delete(save=False)
        recording.delete()
        raise
    recording.checksum = mlvideo.checksum(recording.video.path)
    recording.duration_s = info.duration_s
    shares = mlvideo.segments(info.duration_s, fps, settings.RECORDING_SEGMENT_SECONDS)
    recording.segment_s = settings.RECORDING_SEGMENT_SECONDS if len(shares) > 1 else None
    recording.save(update_fields=["checksum", "duration_s", "segment_s"])
    if len(shares) == 1:
        transaction.on_commit(lambda: analyze.delay(recording.pk))
    else:
        transaction.on_commit(lambda: [analyze_segment.delay(recording.pk, s.index) for s in shares])
    return recording


def recording_analyze(recording_id: int) -> None:
    """The worker's part: the served models over the stored file, progress written about once a second. Safe to run
    twice: a recording that already has results is left as it is."""
    from webapp.faces.store.detection import InferenceUnavailable, served_analyzer

    claimed = Recording.objects.filter(
        pk=recording_id, status__in=[Recording.Status.PENDING, Recording.Status.RUNNING]
    ).update(status=Recording.Status.RUNNING)
    recording = Recording.objects.filter(pk=recording_id).first()
    if not claimed or recording is None or recording.tracks.exists():
        return
    last = [0.0]

    def on_frame(t: float, duration_s: float) -> None:
        if time.monotonic() - last[0] > 1.0:
            last[0] = time.monotonic()
            Recording.objects.filter(pk=recording_id).update(progress=min(0.99, t / max(1e-6, duration_s)))

    try:
        with served_analyzer() as (analyzer, versions):
            analysis = mlvideo.analyze(
                recording.video.path,
                analyzer,
                fps=recording.fps,
                on_frame=on_frame,
                versions=tuple(f"v{v.number}" for v in versions),
            )
        _store(recording, analysis, versions)
    except (mlvideo.VideoError, InferenceUnavailable, RecordingError) as exc:
        _failed(recording_id, str(exc))


def _store(recording: Recording, analysis: mlvideo.Analysis, versions) -> None:
    """A worker's analysis (one pass or joined shares) into the recording's own row."""
    analysis.video = recording.name
    recording_from_analysis(
        analysis,
        author=recording.created_by,
        source=Recording.Source.SERVER,
        checksum=recording.checksum,
        versions=versions,
        recording=recording,
    )


def _parts_dir(recording: Recording):
    return settings.MEDIA_ROOT / "recordings" / "parts" / str(recording.pk)


def _shares(recording: Recording) -> list[mlvideo.Segment]:
    return mlvideo.segments(recording.duration_s, recording.fps, recording.segment_s or 0)


def _failed(recording_id: int, error: str) -> None:
    Recording.objects.filter(
        pk=recording_id, status__in=[Recording.Status.PENDING, Recording.Status.RUNNING, Recording.Status.JOINING]
    ).update(status=Recording.Status.FAILED, error=error, progress=0.0)


def recording_analyze_segment(recording_id: int, index: int) -> None:
    """The worker's part for one share of a long file: the served models over that share (and the warm-up before
    it), written as a part file on the storage every worker shares; the worker whose part is the last one joins
    them into the recording's tracks (ml.video.join). A recording that failed meanwhile stops every share."""
    from webapp.faces.store.detection import InferenceUnavailable, served_analyzer

    Recording.objects.filter(pk=recording_id, status=Recording.Status.PENDING).update(status=Recording.Status.RUNNING)
    recording = Recording.objects.filter(pk=recording_id, status=Recording.Status.RUNNING).first()
    if recording is None:
        return
    shares = _shares(recording)
    if not 0 <= index < len(shares):
        return
    folder = _parts_dir(recording)
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / f"{index}.npz"
    last = [time.monotonic(), False]

    def on_frame(t: float, duration_s: float) -> None:
        if time.monotonic() - last[0] > 1.0:
            last[0] = time.monotonic()
            done = len(_written(folder))
            share = shares[index]
            own = ((share.end_s or duration_s) - share.analyse_from) or 1.0
            fraction = min(1.0, max(0.0, (t - share.analyse_from) / own))
            # no row left running (the recording failed meanwhile): this share stops too
            last[1] = not Recording.objects.filter(pk=recording_id, status=Recording.Status.RUNNING).update(
                progress=min(0.99, (done + fraction) / len(shares))
            )

    if not part.exists():  # a redelivered share that was written is not analysed again
        try:
            with served_analyzer() as (analyzer, versions):
                analysis = mlvideo.analyze_segment(
                    recording.video.path,
                    analyzer,
                    shares[index],
                    fps=recording.fps,
                    on_frame=on_frame,
                    should_stop=lambda: last[1],
                    versions=tuple(f"v{v.number}" for v in versions),
                )
        except (mlvideo.VideoError, InferenceUnavailable) as exc:
            _failed(recording_id, str(exc))
            return
        if last[1]:
            return
        scratch = folder / f"{index}.partial.npz"
        mlvideo.save_part(analysis, scratch)
        scratch.replace(part)
    if len(_written(folder)) < len(shares):
        return
    # Every share is written: join. Two last shares finishing at once both get here, and a join whose worker died
    # is redelivered as its share: the row lock in recording_join lets one join and the other find the tracks.
    if Recording.objects.filter(
        pk=recording_id, status__in=[Recording.Status.RUNNING, Recording.Status.JOINING]
    ).update(status=Recording.Status.JOINING):
        recording_join(recording_id)


def _written(folder) -> list:
    return [p for p in folder.glob("*.npz") if p.stem.isdigit()]


@transaction.atomic
def recording_join(recording_id: int) -> None:
    import shutil

    recording = Recording.objects.select_for_update().get(pk=recording_id)
    if recording.status != Recording.Status.JOINING or recording.tracks.exists():
        return
    folder = _parts_dir(recording)
    shares = _shares(recording)
    parts = [(share, mlvideo.load_part(folder / f"{share.index}.npz")) for share in shares]
    made_by = {(a.keypoints_version, a.emotion_version) for _, a in parts}
    if len(made_by) > 1:
        _failed(
            recording_id,
            "the served models changed while the file was analysed (its shares ran on "
            + " and ".join(f"keypoints {k}, emotion {e}" for k, e in sorted(made_by))
            + "): upload it again",
        )
        shutil.rmtree(folder, ignore_errors=True)
        return
    analysis = mlvideo.join(parts)
    numbers = analysis.keypoints_version, analysis.emotion_version
    versions = [
        ModelVersion.objects.filter(kind=kind, number=int(number.lstrip("v"))).first() if number else None
        for kind, number in zip(("keypoints", "emotion"), numbers, strict=True)
    ]
    try:
        _store(recording, analysis, versions)
    except RecordingError as exc:
        _failed(recording_id, str(exc))
    shutil.rmtree(folder, ignore_errors=True)
