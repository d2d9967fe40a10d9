"""Recordings: the browser's save, the API's reads and CSVs, tracks renamed / merged / deleted, the command, and a
staff upload analysed by a real Celery worker on Redis."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from ml import video as mlvideo
from ml.schema import KEYPOINT_COLUMNS
from tests import factories, videos
from tests.conftest import REPO_ROOT
from tests.training.conftest import process_env

pytestmark = pytest.mark.django_db


@pytest.fixture
def served(media, settings):
    """The shipped baseline models registered and active (a real detector needs real models to find a face)."""
    from webapp.registry.services import baseline_register

    settings.BASELINE_MODELS_DIR = settings.BASE_DIR / "models" / "baseline"
    return {v.kind: v for v in baseline_register() if v.number == 1}


def _frame(t: float, x: float = 100.0, classes: int = 7, top: int = 3) -> dict:
    points = [[x + 3 * i, 80.0 + 2 * i] for i in range(15)]
    return {
        "frame": round(t * 30),
        "time_s": t,
        "score": 0.9,
        "box": [x - 10, 60.0, 80.0, 80.0],
        "points": points,
        "raw_points": [[px + 0.3, py] for px, py in points],
        "probabilities": factories.probabilities(top, classes),
    }


def _save(client, served, tracks, **fields):
    body = {
        "name": "session 1.mp4",
        "source": "browser",
        "duration_s": "2.0",
        "width": 640,
        "height": 360,
        "frames_analysed": 20,
        "frames_without_face": 0,
        "keypoints_version": served["keypoints"].pk,
        "emotion_version": served["emotion"].pk,
        "checksum": "a" * 64,
        "fps": 10,
        "results": SimpleUploadedFile("results.json", json.dumps(tracks).encode(), "application/json"),
        **fields,
    }
    return client.post("/api/recordings/", body, format="multipart")


def _two_tracks():
    return [
        {"number": 1, "name": "P01", "frames": [_frame(i / 10) for i in range(10)]},
        {"number": 2, "name": "", "frames": [_frame(1 + i / 10, x=400, top=6) for i in range(10)]},
    ]


def test_a_saved_session_reads_back_as_tracks_frames_and_two_csvs(client_for, served):
    labeler = client_for("labeler")
    response = _save(labeler, served, _two_tracks())
    assert response.status_code == 201, response.content
    rec = response.json()
    assert [t["label"] for t in rec["tracks"]] == ["P01", "Face 2"] and [t["frames"] for t in rec["tracks"]] == [10, 10]
    assert rec["keypoints_version"] == 1 and rec["labels"][3] == "happiness"
    frames = labeler.get(f"/api/recordings/{rec['id']}/frames/").json()
    assert len(frames) == 20 and frames[0]["track"] == 1 and len(frames[0]["points"]) == 15
    csv_frames = pd.read_csv(
        io.BytesIO(b"".join(labeler.get(f"/api/recordings/{rec['id']}/frames.csv").streaming_content))
    )
    assert list(csv_frames.columns) == mlvideo.frames_header(rec["labels"]) and len(csv_frames) == 20
    assert set(csv_frames.emotion) == {"happiness", "neutral"} and set(csv_frames.emotion_version) == {"v1"}
    assert csv_frames.left_eye_center_x.iloc[0] == pytest.approx(100.0)
    assert set(KEYPOINT_COLUMNS) <= set(csv_frames.columns)
    response = labeler.get(f"/api/recordings/{rec['id']}/tracks.csv")
    assert 'filename="session_1.tracks.csv"' in response["Content-Disposition"]
    tracks = pd.read_csv(io.BytesIO(b"".join(response.streaming_content)))
    assert list(tracks["name"]) == ["P01", "Face 2"] and list(tracks.share_happiness) == [1.0, 0.0]
    assert labeler.get(f"/api/recordings/{rec['id']}/audio.csv").status_code == 404
    # the list's filters: a participant, a date, a version
    assert [r["id"] for r in labeler.get("/api/recordings/?participant=p01").json()["results"]] == [rec["id"]]
    assert labeler.get("/api/recordings/?participant=P99").json()["results"] == []
    assert labeler.get("/api/recordings/?since=2000-01-01&version=1").json()["count"] == 1
    assert labeler.get("/api/recordings/?since=yesterday").status_code == 400


def _json(name, value):
    return SimpleUploadedFile(name, json.dumps(value).encode(), "application/json")


def test_frames_without_a_face_are_kept_in_their_place(client_for, served):
    """A face found at 0.0-0.4 s and 0.8-0.9 s, none at 0.5-0.7 s: the three empty frames are stored, so the track's
    frames_missing is 3 (not 0), frames.csv?empty_frames=1 and frames/?empty_frames=1 have their rows; a list that
    does not match frames_without_face, or says a frame with a face had none, is a 400 that stores nothing."""
    from webapp.recordings.models import Recording

    labeler = client_for("labeler")
    track = [{"number": 1, "name": "P01", "frames": [_frame(t) for t in (0.0, 0.1, 0.2, 0.3, 0.4, 0.8, 0.9)]}]
    empty = [[15, 0.5], [18, 0.6], [21, 0.7]]
    for wrong, says in ((empty[:2], "must list the 3 frames"), ([*empty[:2], [24, 0.8]], "a face was found at 0.8")):
        response = _save(labeler, served, track, frames_without_face=3, empty_frames=_json("e.json", wrong))
        assert response.status_code == 400 and says in str(response.json()), response.content
    assert Recording.objects.count() == 0
    response = _save(
        labeler, served, track, frames_analysed=10, frames_without_face=3, empty_frames=_json("e.json", empty)
    )
    assert response.status_code == 201, response.content
    rid = response.json()["id"]
    tracks = pd.read_csv(io.BytesIO(b"".join(labeler.get(f"/api/recordings/{rid}/tracks.csv").streaming_content)))
    assert tracks.frames.tolist() == [7] and tracks.frames_missing.tolist() == [3]
    body = b"".join(labeler.get(f"/api/recordings/{rid}/frames.csv?empty_frames=1").streaming_content)
    frames = pd.read_csv(io.BytesIO(body))
    assert len(frames) == 10 and frames.track.isna().sum() == 3 and frames.time_s.is_monotonic_increasing
    assert (
        len(pd.read_csv(io.BytesIO(b"".join(labeler.get(f"/api/recordings/{rid}/frames.csv").streaming_content)))) == 7
    )
    rows = labeler.get(f"/api/recordings/{rid}/frames/?empty_frames=1").json()
    assert [(r["frame"], r["track"]) for r in rows if r["track"] is None] == [(15, None), (18, None), (21, None)]
    assert len(labeler.get(f"/api/recordings/{rid}/frames/").json()) == 7


@pytest.mark.parametrize("role, status", [("anonymous", 403), ("outsider", 403), ("labeler", 201), ("staff", 201)])
def test_who_may_save_a_session(client_for, served, role, status):
    assert _save(client_for(role), served, _two_tracks()).status_code == status


@pytest.mark.parametrize(
    "tracks, says",
    [
        ("not json at all", "not JSON"),
        ([{"number": 1, "frames": [{**_frame(0), "probabilities": [1.0]}]}], "probabilities needs 7"),
        ([{"number": 1, "frames": [{**_frame(0), "points": [[float("nan"), 1]] * 15}]}], "not a finite number"),
        ([{"number": 1, "frames": [{**_frame(0), "points": [[9000.0, 1]] * 15}]}], "outside the 640x360 picture"),
        ([{"number": 1, "frames": [_frame(0), _frame(0)]}], "two results at 0.0 s"),
        ([{"number": 1, "frames": [{"frame": 1}]}], "track 0, frame 0"),
    ],
)
def test_a_broken_session_is_a_400_that_says_where_and_stores_nothing(client_for, served, tracks, says):
    from webapp.recordings.models import Recording

    body = tracks if isinstance(tracks, list) else None
    labeler = client_for("labeler")
    if body is None:
        response = _save(labeler, served, [], results=SimpleUploadedFile("r.json", tracks.encode()))
    else:
        response = _save(labeler, served, body)
    assert response.status_code == 400 and says in response.json()["detail"], response.json()
    assert not Recording.objects.exists()


def test_tracks_are_renamed_merged_and_deleted_and_one_moment_is_never_two_people(client_for, served):
    labeler = client_for("labeler")
    tracks = _two_tracks()
    tracks.append({"number": 3, "name": "", "frames": [_frame(0.5, x=300)]})  # at the same time as track 1
    rec = _save(labeler, served, tracks).json()
    base = f"/api/recordings/{rec['id']}/tracks"
    assert labeler.patch(f"{base}/2/", {"name": "P02"}, format="json").json()["label"] == "P02"
    refused = labeler.post(f"{base}/3/merge/", {"into": 1}, format="json")
    assert refused.status_code == 400 and "two people" in refused.json()["detail"]
    merged = labeler.post(f"{base}/2/merge/", {"into": 1}, format="json")
    assert merged.status_code == 200 and merged.json()["frames"] == 20
    assert labeler.delete(f"{base}/3/").status_code == 204
    assert labeler.delete(f"{base}/9/").status_code == 400
    after = labeler.get(f"/api/recordings/{rec['id']}/").json()
    assert [(t["number"], t["name"], t["frames"]) for t in after["tracks"]] == [(1, "P01", 20)]


def test_analyze_video_writes_both_files_says_what_it_cannot_read_and_saves(served, media, tmp_path, transactional_db):
    clip = videos.write_clip(tmp_path / "clip.mp4", [videos.face_portrait()], videos.still(), seconds=1.0)
    (tmp_path / "notes.mp4").write_text("not a video")
    out = tmp_path / "out"
    factories.user("staff")
    done = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "analyze_video",
            str(clip),
            str(tmp_path / "notes.mp4"),
            "--out",
            str(out),
            "--fps",
            "5",
            "--save",
        ],
        cwd=REPO_ROOT,
        env=process_env("memory://", media),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stdout + done.stderr  # one of two failed, and said so
    assert "notes.mp4 is not a video" in done.stderr and "1 track(s)" in done.stdout
    frames = pd.read_csv(out / "clip.frames.csv")
    assert len(frames) == 5 and set(frames.track) == {1}
    assert pd.read_csv(out / "clip.tracks.csv").frames.tolist() == [5]
    from webapp.recordings.models import Recording

    (saved,) = Recording.objects.all()
    assert saved.source == "server" and saved.checksum == mlvideo.checksum(clip) and saved.tracks.count() == 1


@pytest.mark.worker
def test_a_staff_upload_is_analysed_by_a_worker(served, tmp_path, start_worker, redis_broker, transactional_db):
    from rest_framework.test import APIClient

    from webapp.recordings.models import Recording

    staff = APIClient()
    staff.force_authenticate(factories.user("staff"))
    assert (
        staff.post("/api/recordings/upload/", {"video": SimpleUploadedFile("x.mp4", b"junk" * 100)}).status_code == 400
    )
    assert not Recording.objects.exists()  # the refused file is not kept
    labeler = APIClient()
    labeler.force_authenticate(factories.user("labeler"))
    clip = videos.write_clip(tmp_path / "upload.mp4", [videos.face_portrait()], videos.moving(), seconds=1.5)
    assert labeler.post("/api/recordings/upload/", {"video": clip.open("rb")}).status_code == 403
    start_worker()
    response = staff.post("/api/recordings/upload/", {"video": clip.open("rb"), "fps": 10}, format="multipart")
    assert response.status_code == 202 and response.json()["status"] == "pending", response.content
    deadline = time.monotonic() + 120
    while (rec := Recording.objects.get()).status in ("pending", "running") and time.monotonic() < deadline:
        time.sleep(0.3)
    assert rec.status == "succeeded", rec.error
    assert rec.frames_analysed == 15 and rec.tracks.count() == 1 and rec.frames.count() == 15
    points = np.array(rec.frames.order_by("time_s").values_list("points", flat=True)[0])
    assert points.shape == (15, 2) and rec.keypoints_version_id == served["keypoints"].pk


def test_a_long_upload_is_cut_into_shares_that_two_workers_analyse_and_join(
    served, settings, tmp_path, start_worker, redis_broker, transactional_db
):
    """RECORDING_SEGMENT_SECONDS 1.5: a 6-s clip of two people crossing is four shares; two workers take them at once,
    the last to finish joins them: the same tracks and frames one pass over the file gives, no part file left."""
    from rest_framework.test import APIClient

    from ml.pipeline import Analyzer, LoadedModel
    from webapp.recordings.models import Recording

    settings.RECORDING_SEGMENT_SECONDS = 1.5
    faces = [videos.face_portrait(), videos.face_portrait().transpose(0)]
    clip = videos.write_clip(tmp_path / "long.mp4", faces, videos.crossing(6.0), seconds=6.0, size=(1280, 720))
    staff = APIClient()
    staff.force_authenticate(factories.user("staff"))
    workers = [start_worker(), start_worker()]
    response = staff.post("/api/recordings/upload/", {"video": clip.open("rb"), "fps": 10}, format="multipart")
    assert response.status_code == 202, response.content
    deadline = time.monotonic() + 180
    while (rec := Recording.objects.get()).status not in ("succeeded", "failed") and time.monotonic() < deadline:
        time.sleep(0.3)
    assert rec.status == "succeeded", rec.error
    assert rec.segment_s == 1.5
    took = [w.log.read_text().count("analyze_segment") for w in workers]
    assert all(took), took  # both workers analysed shares

    baseline = settings.BASE_DIR / "models" / "baseline"
    analyzer = Analyzer(
        LoadedModel.from_dir(baseline / "keypoints", runtime="litert"),
        LoadedModel.from_dir(baseline / "emotion", runtime="litert"),
    )
    one_pass = mlvideo.analyze(clip, analyzer, fps=10)
    stored = list(rec.frames.order_by("time_s", "track__number").values_list("frame", "track__number"))
    assert stored == [(r.frame, r.track) for r in one_pass.rows if r.track is not None]
    assert rec.frames_analysed == one_pass.frames_analysed == 60 and rec.tracks.count() == 2
    assert not (settings.MEDIA_ROOT / "recordings" / "parts" / str(rec.pk)).exists()
