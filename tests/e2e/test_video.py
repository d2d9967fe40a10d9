"""A video opened on the demo page, analysed in Chromium: tracks, the timeline, the frames file the page offers (the
same as the server's path writes for the same clip), a saved session, and the files a browser cannot read."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from django.conf import settings

from ml import video as mlvideo
from ml.schema import KEYPOINT_COLUMNS
from tests import factories, videos

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _wait_ready(page):
    page.wait_for_function("window.studio && window.studio.ready === true", timeout=60_000)


def _open(page, path):
    page.set_input_files("#video-file", str(path))
    page.wait_for_function("window.studio.recording && document.getElementById('analysing').hidden", timeout=120_000)


def _server_analysis(path):
    from ml.pipeline import Analyzer, LoadedModel
    from webapp.registry.selectors import active_version, version_dir

    analyzer = Analyzer(
        *(LoadedModel.from_dir(version_dir(active_version(kind=k)), runtime="litert") for k in ("keypoints", "emotion"))
    )
    return mlvideo.analyze(path, analyzer, fps=10)


def test_a_video_is_analysed_in_the_browser_as_the_server_analyses_it(open_page, tmp_path):
    clip = videos.write_clip(
        tmp_path / "participant.mp4", [videos.face_portrait()], videos.moving(speed=40, side=260), seconds=3.0, noise=4
    )
    user = factories.user("labeler")
    page = open_page("/", user=user)
    _wait_ready(page)
    _open(page, clip)
    assert "1 face track(s)" in page.locator("#status").inner_text()
    assert page.locator("#tracks .track canvas").count() == 1
    with page.expect_download() as download:
        page.click("#download-frames")
    assert download.value.suggested_filename == "participant.frames.csv"
    browser = pd.read_csv(download.value.path())
    labels = page.evaluate("window.studio.models.manifest.emotion.labels")
    assert list(browser.columns) == mlvideo.frames_header(labels)
    assert len(browser) == 30 and set(browser.track) == {1} and browser.frame.tolist() == list(range(0, 90, 3))
    # the server's path on the same file: the same frames, tracks, points and classes
    server = pd.read_csv(mlvideo.write_csvs(_server_analysis(clip), tmp_path / "server")[0])
    assert server.frame.tolist() == browser.frame.tolist() and set(server.track) == {1}
    b = browser[list(KEYPOINT_COLUMNS)].to_numpy().reshape(-1, 15, 2)
    s = server[list(KEYPOINT_COLUMNS)].to_numpy().reshape(-1, 15, 2)
    scale = 38 / np.linalg.norm(s[:, 13:15].mean(1) - s[:, 0:2].mean(1), axis=1)
    assert np.median(np.linalg.norm(b - s, axis=2).mean(1) * scale) < 1.0  # Kaggle-frame px
    assert np.median(np.abs(browser[labels].to_numpy() - server[labels].to_numpy())) < 0.05
    with page.expect_download() as download:
        page.click("#download-tracks")
    tracks = pd.read_csv(download.value.path())
    assert list(tracks.columns) == mlvideo.tracks_header(labels) and tracks.frames.tolist() == [30]
    # a click on the timeline moves the video there; the name given is the participant's
    timeline = page.locator("#tracks canvas")
    timeline.click(position={"x": timeline.bounding_box()["width"] * 0.5, "y": 60})
    page.wait_for_function("Math.abs(document.getElementById('video').currentTime - 1.5) < 0.1")
    page.fill("#tracks input.name", "P07")
    page.press("#tracks input.name", "Enter")
    page.wait_for_function("document.querySelector('#tracks h3').textContent.startsWith('P07')")
    page.screenshot(path=str(settings.BASE_DIR / "docs" / "screenshots" / "video.png"), full_page=True)
    page.click("#save-session")
    page.wait_for_function("window.studio.saved && window.studio.saved.id")
    from webapp.recordings.models import Recording

    (saved,) = Recording.objects.all()
    assert saved.source == "browser" and saved.created_by == user and saved.frames.count() == 30
    assert [t.name for t in saved.tracks.all()] == ["P07"] and saved.checksum == mlvideo.checksum(clip)


def test_fast_crossing_faces_keep_their_tracks_in_the_browser_as_on_the_server(open_page, tmp_path):
    """Two people crossing a 1280-px frame in 3 s (327 px/s): both paths move each track on at its velocity, so the
    follower keeps each face between detector runs; one track each, the same frames on both sides."""
    clip = videos.crossing_clip(tmp_path / "hall.mp4", 3.0)
    page = open_page("/")
    _wait_ready(page)
    served = page.evaluate("window.studio.models.manifest.pipeline.tracking")
    assert served == mlvideo.tracking_manifest()
    _open(page, clip)
    assert "2 face track(s)" in page.locator("#status").inner_text()
    with page.expect_download() as download:
        page.click("#download-frames")
    browser = pd.read_csv(download.value.path())
    server = pd.read_csv(mlvideo.write_csvs(_server_analysis(clip), tmp_path / "server")[0])
    assert len(browser) == len(server) == 60 and set(browser.track) == set(server.track) == {1, 2}
    above = lambda frame: (frame[["left_eye_center_y", "right_eye_center_y"]].mean(axis=1) < 360).tolist()  # noqa: E731
    # each track is one person on both paths: the face above keeps the number it started with
    assert (browser.track == browser.track.iloc[0]).tolist() == above(browser) == above(server)


def test_on_a_phone_the_timeline_sits_under_the_video(open_page, tmp_path):
    clip = videos.write_clip(tmp_path / "phone.webm", [videos.face_portrait()], videos.still(), seconds=1.5)
    page = open_page("/", width=390)
    _wait_ready(page)
    _open(page, clip)
    canvas = page.locator("#tracks canvas").bounding_box()
    assert canvas["width"] <= 390 and canvas["width"] > 250
    page.screenshot(path=str(settings.BASE_DIR / "docs" / "screenshots" / "video-phone.png"), full_page=True)


def test_files_a_browser_cannot_analyse_are_told_plainly(open_page, tmp_path):
    page = open_page("/")
    _wait_ready(page)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    page.set_input_files("#video-file", str(empty))
    page.wait_for_function("document.getElementById('status').textContent.includes('empty (0 bytes)')")
    junk = tmp_path / "notes.mp4"
    junk.write_bytes(b"not a video\n" * 100)
    page.set_input_files("#video-file", str(junk))
    page.wait_for_function("document.getElementById('status').textContent.includes('cannot decode notes.mp4')")
    hevc = videos.write_clip(
        tmp_path / "phone.mov", [videos.face_portrait()], videos.still(), seconds=0.5, codec="hevc"
    )
    page.set_input_files("#video-file", str(hevc))
    page.wait_for_function(
        "document.getElementById('status').textContent.includes('phone.mov') && "
        "document.getElementById('status').className === 'error'"
    )
    assert "HEVC" in page.locator("#status").inner_text() or "no picture" in page.locator("#status").inner_text()
    assert page.evaluate("window.studio.recording") is None


def test_no_face_in_the_video_says_so(open_page, tmp_path):
    clip = videos.write_clip(tmp_path / "sky.webm", [], lambda t: [], seconds=1.0)
    page = open_page("/")
    _wait_ready(page)
    _open(page, clip)
    assert "no face found in this video" in page.locator("#status").inner_text()
    assert "No face was found" in page.locator("#tracks").inner_text()


def test_the_recordings_page_lists_sessions_with_their_files_and_refuses_a_non_video(open_page, tmp_path):
    from webapp.recordings.models import Recording
    from webapp.recordings.services import recording_from_analysis
    from webapp.registry.selectors import active_version

    clip = videos.write_clip(tmp_path / "p03.mp4", [videos.face_portrait()], videos.still(), seconds=1.0)
    staff = factories.user("staff")
    versions = (active_version(kind="keypoints"), active_version(kind="emotion"))
    saved = recording_from_analysis(
        _server_analysis(clip), author=staff, source=Recording.Source.SERVER, checksum="", versions=versions
    )
    page = open_page("/recordings/", user=staff)
    page.wait_for_selector(f"tr[data-recording='{saved.pk}']")
    assert "Face 1 (10)" in page.locator(f"tr[data-recording='{saved.pk}']").inner_text()
    with page.expect_download() as download:
        page.click(f"tr[data-recording='{saved.pk}'] a:text('frames.csv')")
    assert len(pd.read_csv(download.value.path())) == 10
    junk = tmp_path / "notes.mp4"
    junk.write_bytes(b"not a video\n" * 50)
    page.set_input_files("#video", str(junk))
    page.click("#upload-button")
    page.wait_for_function("document.getElementById('toast').textContent.includes('is not a video')")
    open_page.expect_error.append("400 (Bad Request)")
    assert Recording.objects.count() == 1


def test_deleting_a_track_leaves_its_frames_with_their_own_numbers(open_page):
    """A variable-rate video: frame 7 at 0.2 s (not 0.2 x the rate). Deleting the only face of a frame leaves that
    frame as an empty row with its own number (it was recomputed from the rate)."""
    page = open_page("/")
    _wait_ready(page)
    rows = page.evaluate(
        """async () => {
        const { Recorder } = await import('/static/js/video.js');
        const r = new Recorder({ name: 'v', labels: ['a', 'b'], fps: 30, width: 96, height: 96, versions: ['', ''],
          tracking: window.studio.models.manifest.pipeline.tracking });
        r.rows = [
          { frame: 7, time_s: 0.2, track: 1 }, { frame: 7, time_s: 0.2, track: 2 },
          { frame: 11, time_s: 0.5, track: 1 },
        ];
        r.remove(1);
        return r.rows.map((x) => [x.frame, x.time_s, x.track]);
    }"""
    )
    assert rows == [[7, 0.2, 2], [11, 0.5, None]]


def test_a_saved_recording_opens_replays_with_its_own_file_and_is_analysed_again(open_page, tmp_path):
    """Recordings page -> open: the saved timelines and names, no video yet; another file is refused (its contents
    differ), the recording's own file replays it; Analyse again runs the served models at the recording's rate, draws
    each track's earlier timeline above its new one, keeps the participant's name and saves as a re-analysis."""
    from webapp.recordings.models import Recording

    clip = videos.write_clip(
        tmp_path / "session.mp4", [videos.face_portrait()], videos.moving(speed=40, side=260), seconds=2.0, noise=4
    )
    other = videos.write_clip(tmp_path / "other.mp4", [videos.face_portrait()], videos.still(), seconds=1.0)
    user = factories.user("labeler")
    page = open_page("/", user=user)
    _wait_ready(page)
    page.select_option("#rate", "5")
    _open(page, clip)
    page.fill("#tracks input.name", "P07")
    page.press("#tracks input.name", "Enter")
    page.wait_for_function("document.querySelector('#tracks h3').textContent.startsWith('P07')")
    page.wait_for_function("window.studio.recording.checksum !== ''")
    page.click("#save-session")
    page.wait_for_function("window.studio.saved && window.studio.saved.id")
    (first,) = Recording.objects.all()

    page.goto(page.url.split("?")[0].rstrip("/") + "/recordings/")
    page.click(f"tr[data-recording='{first.pk}'] a.open")
    page.wait_for_function("window.studio.source === 'saved' && !document.getElementById('recording').hidden")
    assert page.locator("#tracks h3").inner_text().startswith("P07")
    assert page.locator("#play").is_hidden() and page.locator("#replay").is_visible()
    assert "10 frames analysed" in page.locator("#recording-status").inner_text()

    page.set_input_files("#replay-file", str(other))
    page.wait_for_function("document.getElementById('status').textContent.includes('is not the video of recording')")
    assert page.evaluate("window.studio.source") == "saved"
    page.set_input_files("#replay-file", str(clip))
    page.wait_for_function("document.getElementById('status').textContent.startsWith('Replaying recording')")
    timeline = page.locator("#tracks canvas[data-track]")
    timeline.click(position={"x": timeline.bounding_box()["width"] * 0.5, "y": 60})
    page.wait_for_function("Math.abs(document.getElementById('video').currentTime - 1.0) < 0.1")

    page.click("#analyse-again")
    page.wait_for_function("window.studio.previous && document.getElementById('analysing').hidden", timeout=120_000)
    assert page.locator("#tracks canvas.before").count() == 1
    assert page.locator("#tracks h3").inner_text().startswith("P07")  # the name carried to the matched track
    assert "analysed again" in page.locator("#recording-status").inner_text()
    assert page.evaluate("window.studio.recording.framesAnalysed") == 10  # the recording's 5 frames/s, not the menu's
    page.screenshot(path=str(settings.BASE_DIR / "docs" / "screenshots" / "video-again.png"), full_page=True)
    page.click("#save-session")
    page.wait_for_function("window.studio.saved && window.studio.saved.id")
    again = Recording.objects.exclude(pk=first.pk).get()
    assert again.reanalysis_of == first and again.checksum == first.checksum
    assert [t.name for t in again.tracks.all()] == ["P07"] and again.frames.count() == 10
    page.goto(page.url.split("?")[0].rstrip("/") + "/recordings/")
    page.wait_for_selector(f"tr[data-recording='{again.pk}']")
    assert f"analysed again from #{first.pk}" in page.locator(f"tr[data-recording='{again.pk}']").inner_text()
