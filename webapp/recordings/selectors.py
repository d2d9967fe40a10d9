"""Reads of recordings: the list with its filters, a recording as ml.video's Analysis (what the CSVs are written
from: one writer for the browser's files, the command's and the API's)."""

from __future__ import annotations

import numpy as np
from django.db.models import Count, Q, QuerySet

from ml import video as mlvideo
from webapp.recordings.models import Recording


def recording_list(*, participant: str = "", since=None, until=None, version: int | None = None) -> QuerySet:
    qs = Recording.objects.select_related("keypoints_version", "emotion_version", "created_by").annotate(
        track_count=Count("tracks", distinct=True)
    )
    if participant:
        qs = qs.filter(tracks__name__icontains=participant).distinct()
    if since is not None:
        qs = qs.filter(created_at__date__gte=since)
    if until is not None:
        qs = qs.filter(created_at__date__lte=until)
    if version is not None:
        qs = qs.filter(Q(keypoints_version__number=version) | Q(emotion_version__number=version))
    return qs


def _version(v) -> str:
    return f"v{v.number}" if v is not None else ""


def recording_analysis(recording: Recording) -> tuple[mlvideo.Analysis, dict[int, str]]:
    """The stored results as an ml.video.Analysis (filtered points), and each track's name by number."""
    analysis = mlvideo.Analysis(
        recording.name,
        list(recording.labels),
        recording.fps,
        frames_analysed=recording.frames_analysed,
        width=recording.width,
        height=recording.height,
        duration_s=recording.duration_s,
        keypoints_version=_version(recording.keypoints_version),
        emotion_version=_version(recording.emotion_version),
    )
    names = dict(recording.tracks.values_list("number", "name"))
    rows = recording.frames.select_related("track").order_by("time_s", "track__number").iterator(chunk_size=2000)
    for r in rows:
        analysis.rows.append(
            mlvideo.FaceRow(
                r.frame,
                r.time_s,
                r.track.number,
                r.score,
                tuple(r.box),
                np.asarray(r.points, np.float64),
                np.asarray(r.raw_points, np.float64),
                np.asarray(r.probabilities, np.float64),
            )
        )
    if recording.empty_frames:  # the frames with no face, in their place: a track's frames_missing counts them
        analysis.rows += [mlvideo.FaceRow(int(frame), float(t), None) for frame, t in recording.empty_frames]
        analysis.rows.sort(key=lambda r: (r.time_s, -1 if r.track is None else r.track))
    return analysis, {n: name for n, name in names.items() if name}
