import json

import pytest
from django.conf import settings

from webapp.faces.models import Annotation

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _ready(page):
    page.wait_for_function("window.studio && window.studio.ready && window.studio.face", timeout=60_000)


def _screen(page, index: int) -> tuple[float, float]:
    box = page.locator("#board").bounding_box()
    x, y = page.evaluate(f"window.studio.points[{index}]")[:2]
    return box["x"] + (x + 0.5) / 96 * box["width"], box["y"] + (y + 0.5) / 96 * box["height"]


def _drag(page, index: int, dx: float, dy: float) -> None:
    x, y = _screen(page, index)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx / 2, y + dy / 2, steps=4)
    page.mouse.move(x + dx, y + dy, steps=4)
    page.mouse.up()


def test_drag_undo_redo_emotion_key_and_save(open_page, labeler, faces):
    page = open_page("/label/", user=labeler)
    _ready(page)
    face_id = page.evaluate("window.studio.face.id")
    before = page.evaluate("window.studio.points")
    page.evaluate("window.studio.selected = 0")
    _drag(page, 0, 40, 25)  # 40 screen px = 8 frame px at 480 px
    moved = page.evaluate("window.studio.points")
    assert moved[0][0] == pytest.approx(before[0][0] + 8, abs=0.6) and moved[0][1] == pytest.approx(
        before[0][1] + 5, abs=0.6
    )
    assert moved[1:] == before[1:]
    page.keyboard.press("Control+z")
    assert page.evaluate("window.studio.points") == before
    page.keyboard.press("Control+Shift+z")
    assert page.evaluate("window.studio.points") == moved
    page.keyboard.press("]")  # next point; Tab is left to the page's controls
    page.keyboard.press("ArrowRight")
    assert page.evaluate("window.studio.points[1][0]") == pytest.approx(before[1][0] + 0.5)
    classes = page.evaluate("window.studio.classes")  # the label set's, in its order: key 4 is the fourth
    page.keyboard.press("4")
    assert page.evaluate("window.studio.emotion") == classes[3]
    assert page.locator('#emotions button[aria-pressed="true"]').inner_text().endswith(classes[3])
    expected = page.evaluate("window.studio.points")
    page.screenshot(path=str(settings.BASE_DIR / "docs" / "screenshots" / "label.png"))
    page.keyboard.press("Enter")
    page.wait_for_function(f"window.studio.face && window.studio.face.id !== {face_id}", timeout=20_000)
    saved = Annotation.objects.get(face_id=face_id, origin="human")
    assert saved.emotion == classes[3] and saved.author == labeler and not saved.skip
    assert [[p["x"], p["y"], p["visible"]] for p in saved.points] == expected
    assert saved.prediction is not None and saved.prediction.task == "keypoints"


@pytest.mark.parametrize(
    ("status", "detail"),
    [(503, "The database is busy"), (400, "points: points[0].x = 97 is outside the image [0, 96)")],
)
def test_a_failed_save_keeps_the_edits_and_says_why(open_page, labeler, faces, status, detail):
    page = open_page("/label/", user=labeler)
    _ready(page)
    face_id = page.evaluate("window.studio.face.id")
    page.keyboard.press("2")
    _drag(page, 0, 30, 0)
    # Both tasks confirmed before the save, or the page rightly answers "Nothing confirmed yet" instead of posting.
    page.wait_for_function("window.studio.confirmed.keypoints && window.studio.confirmed.emotion")
    edited = page.evaluate("window.studio.points")
    open_page.expect_error.append(f"the server responded with a status of {status}")
    page.route(
        "**/annotations/",
        lambda route: route.fulfill(
            status=status, content_type="application/json", body=json.dumps({"detail": detail})
        ),
    )
    page.keyboard.press("Enter")
    page.wait_for_function("document.getElementById('message').textContent.includes('Not saved')")
    assert (
        detail in page.locator("#message").inner_text()
        and "Your edits are kept" in page.locator("#message").inner_text()
    )
    assert page.evaluate("window.studio.face.id") == face_id
    assert page.evaluate("window.studio.points") == edited and page.evaluate("window.studio.emotion") == page.evaluate(
        "window.studio.classes[1]"
    )
    assert not Annotation.objects.filter(face_id=face_id, origin="human").exists()


def test_outsiders_cannot_open_the_label_page(open_page, transactional_db):
    from tests import factories

    open_page.expect_error.append("status of 403")
    page = open_page("/label/", user=factories.user("none"))
    assert page.locator("h1").inner_text() == "Not allowed" and "Labelers only." in page.content()


def test_a_save_stores_only_what_the_labeler_confirmed(open_page, labeler, faces):
    """Keypoints queue: Enter on an untouched face stores nothing; moving a point stores points and no emotion."""
    page = open_page("/label/", user=labeler)
    _ready(page)
    face_id = page.evaluate("window.studio.face.id")
    page.keyboard.press("Enter")
    page.wait_for_function("document.getElementById('message').textContent.includes('Nothing confirmed yet')")
    assert not Annotation.objects.filter(face_id=face_id, origin="human").exists()
    assert "Emotion: not confirmed" in page.locator("#confirmed").inner_text()
    _drag(page, 2, 20, 0)
    assert "Points: confirmed" in page.locator("#confirmed").inner_text()
    page.keyboard.press("Enter")
    page.wait_for_function(f"window.studio.face && window.studio.face.id !== {face_id}", timeout=20_000)
    saved = Annotation.objects.get(face_id=face_id, origin="human")
    assert saved.points is not None and saved.emotion is None  # the model's emotion guess was never confirmed
    from webapp.faces.models import Face

    face = Face.objects.get(pk=face_id)
    assert face.human_keypoints and not face.human_emotion
    # the next face: A accepts the model's points as they are; the same emotion twice adds one undo step
    second = page.evaluate("window.studio.face.id")
    page.keyboard.press("a")
    page.keyboard.press("3")
    page.keyboard.press("3")
    assert page.evaluate("window.studio.undo.length") == 2
    page.keyboard.press("Enter")
    page.wait_for_function(f"window.studio.face && window.studio.face.id !== {second}", timeout=20_000)
    accepted = Annotation.objects.get(face_id=second, origin="human")
    assert accepted.points is not None and accepted.emotion == page.evaluate("window.studio.classes[2]")


def test_tab_reaches_the_buttons(open_page, labeler, faces):
    page = open_page("/label/", user=labeler)
    _ready(page)
    page.locator("#board").focus()
    seen = set()
    for _ in range(12):
        page.keyboard.press("Tab")
        seen.add(page.evaluate("document.activeElement.id || document.activeElement.tagName"))
    assert {"accept", "save", "skip"} <= seen, seen


def test_back_names_and_the_shortcut_overlay(open_page, labeler, faces):
    page = open_page("/label/", user=labeler)
    _ready(page)
    first = page.evaluate("window.studio.face.id")
    page.keyboard.press("a")  # the points as the model put them (this is the keypoints queue)
    page.keyboard.press("3")  # sad
    page.keyboard.press("Enter")
    page.wait_for_function(f"window.studio.face && window.studio.face.id !== {first}", timeout=20_000)
    # back: the saved face again, leased to this labeler, showing the label it has now
    page.keyboard.press("b")
    page.wait_for_function(f"window.studio.face && window.studio.face.id === {first}", timeout=20_000)
    assert (
        page.evaluate("window.studio.emotion") == page.evaluate("window.studio.classes[2]")
        and "going back" in page.locator("#face-info").inner_text()
    )
    # the label shown is the one saved, not the model's guess (it said "not confirmed (the model's guess)")
    status = page.locator("#confirmed").inner_text()
    assert "Emotion: saved earlier" in status and "Points: saved earlier" in status, status
    page.keyboard.press("4")  # a change is a confirmation again
    assert "Emotion: confirmed" in page.locator("#confirmed").inner_text()
    from webapp.faces.models import Lease

    assert Lease.objects.filter(face_id=first, holder=labeler).exists()
    # every point's name on the canvas, toggled with N (drawn as text: the canvas changes)
    before = page.evaluate("document.getElementById('board').toDataURL()")
    page.keyboard.press("n")
    assert (
        page.evaluate("window.studio.names") and page.evaluate("document.getElementById('board').toDataURL()") != before
    )
    page.keyboard.press("?")
    assert page.locator("#help").is_visible() and "back to the previous face" in page.locator("#help").inner_text()
    page.keyboard.press("Escape")
    assert not page.locator("#help").is_visible()


def test_zoom_and_pan_keep_dragging_exact(open_page, labeler, faces):
    page = open_page("/label/", user=labeler)
    _ready(page)
    page.keyboard.press("+")
    page.keyboard.press("+")  # zoom 2.25, centred
    assert page.evaluate("window.studio.view.zoom") == pytest.approx(2.25)
    before = page.evaluate("window.studio.points")
    # a point on screen at zoom 2.25: _screen would be wrong now, so compute it from the view
    x, y = page.evaluate(
        """() => { const s = window.studio, v = s.view, r = document.getElementById('board').getBoundingClientRect();
        const p = s.points[10]; const side = 96 / v.zoom;
        return [r.x + (p[0] + 0.5 - v.x) / side * r.width, r.y + (p[1] + 0.5 - v.y) / side * r.height]; }"""
    )
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 20, y, steps=4)
    page.mouse.move(x + 45, y, steps=4)
    page.mouse.up()
    moved = page.evaluate("window.studio.points")[10]
    assert moved[0] == pytest.approx(before[10][0] + 45 / 480 * 96 / 2.25, abs=0.3) and moved[1] == pytest.approx(
        before[10][1], abs=0.3
    )
    # wheel over a point zooms about it: the point stays under the pointer
    px, py = page.evaluate(
        """() => { const s = window.studio, v = s.view, r = document.getElementById('board').getBoundingClientRect();
        const p = s.points[0]; const side = 96 / v.zoom;
        return [r.x + (p[0] + 0.5 - v.x) / side * r.width, r.y + (p[1] + 0.5 - v.y) / side * r.height]; }"""
    )
    page.mouse.move(px, py)
    page.mouse.wheel(0, -100)
    page.wait_for_function("window.studio.view.zoom > 2.5")
    qx, qy = page.evaluate(
        """() => { const s = window.studio, v = s.view, r = document.getElementById('board').getBoundingClientRect();
        const p = s.points[0]; const side = 96 / v.zoom;
        return [r.x + (p[0] + 0.5 - v.x) / side * r.width, r.y + (p[1] + 0.5 - v.y) / side * r.height]; }"""
    )
    assert abs(qx - px) < 3 and abs(qy - py) < 3
    page.keyboard.press("0")
    assert page.evaluate("window.studio.view.zoom") == 1


def test_photos_added_on_the_label_page_queue_their_faces_and_say_so_for_each(open_page, labeler, faces, tmp_path):
    """Every photo's outcome stays in one message (several photos once left only the last one's) and the queue's
    count grows at once (it stayed as it was until the next face, #29 item 11)."""
    from tests.e2e.conftest import astronaut
    from tests.ml.test_detect import group_photo
    from webapp.faces.models import Face

    page = open_page("/label/", user=labeler)
    _ready(page)
    before = Face.objects.count()
    count = lambda: int(page.locator("#face-info").inner_text().split(" · ")[2].split()[0].replace(",", ""))  # noqa: E731
    waiting = count()
    photo, group, notes = tmp_path / "astronaut.jpg", tmp_path / "group.jpg", tmp_path / "notes.txt"
    astronaut().save(photo, quality=92)
    group_photo().save(group, quality=92)
    notes.write_text("not a picture")
    page.set_input_files("#photos", [str(photo), str(group), str(notes)])
    page.wait_for_function(
        "document.getElementById('message').textContent.includes('new faces in the queue')", timeout=60_000
    )
    message = page.locator("#message").inner_text()
    assert message.startswith("3 new faces in the queue from 3 photos")
    assert "astronaut.jpg: 1 face found, 1 new" in message and "group.jpg: 2 faces found, 2 new" in message
    assert "notes.txt: not a picture" in message
    assert Face.objects.count() == before + 3 and Face.objects.latest("id").source == "upload"
    assert count() == waiting + 3


def test_review_flow_end_to_end(open_page, staff, faces, settings):
    """Two labelers disagree on a face's emotion; a reviewer sees both, decides on the label page, and it is the label."""
    from tests import factories
    from webapp.faces.labeling.selectors import current_labels
    from webapp.faces.labeling.services import annotation_submit

    settings.LABELS_PER_FACE = 2
    from webapp.faces.models import Face

    face = Face.objects.order_by("id").first()
    ann, bob = factories.user("labeler", "ann"), factories.user("labeler", "bob")
    annotation_submit(face=face, author=ann, emotion="sad")
    annotation_submit(face=face, author=bob, emotion="surprise")
    face.refresh_from_db()
    assert face.review_emotion

    page = open_page("/label/", user=staff)
    _ready(page)
    page.select_option("#task", "review-emotion")
    page.wait_for_function(f"window.studio.face && window.studio.face.id === {face.pk}", timeout=20_000)
    said = page.locator("#current").inner_text()
    assert "ann: sad" in said and "bob: surprise" in said
    fourth = page.evaluate("window.studio.classes[3]")
    assert fourth not in ("sad", "surprise")
    page.keyboard.press("4")  # the reviewer's own decision
    page.keyboard.press("Enter")
    page.wait_for_function(
        "document.getElementById('face-info').textContent.startsWith('Nothing to review')", timeout=20_000
    )
    face.refresh_from_db()
    assert not face.review_emotion and current_labels(task="emotion")[face.pk] == fourth


def test_enter_after_clicking_an_emotion_with_the_mouse_saves(open_page, labeler, faces):
    page = open_page("/label/", user=labeler)
    _ready(page)
    face_id = page.evaluate("window.studio.face.id")
    page.keyboard.press("a")  # the model's points, accepted
    page.click('#emotions button[data-emotion="surprise"]')  # the focus stays on the button
    assert page.evaluate("document.activeElement.dataset.emotion") == "surprise"
    page.keyboard.press("Enter")
    page.wait_for_function(f"window.studio.face && window.studio.face.id !== {face_id}", timeout=20_000)
    assert Annotation.objects.get(face_id=face_id, origin="human").emotion == "surprise"


def test_a_second_labeler_saving_a_held_face_is_told_and_keeps_the_edits(open_page, labeler, faces):
    """Ann's page holds the face; Bob's page shows it too once he asks for it by id (B goes back), and his save is
    refused with who holds it."""
    from tests import factories
    from webapp.faces.labeling.services import queue_take
    from webapp.faces.models import Face

    open_page.expect_error.append("status of 409")
    ann_page = open_page("/label/", user=labeler)
    _ready(ann_page)
    held = ann_page.evaluate("window.studio.face.id")
    bob = factories.user("labeler", "bob")
    bob_page = open_page("/label/", user=bob)
    _ready(bob_page)
    assert bob_page.evaluate("window.studio.face.id") != held  # the queue never serves Bob Ann's face
    # Bob's page is made to show Ann's face (as a stale tab would after her lease was taken over): his save is refused
    # (his page's recorded predictions are of his own face: once both are recorded they go, as a stale tab would not
    # have one of Ann's face; forgotten before they are recorded, a late one came back and the save was a 400)
    bob_page.wait_for_function("window.studio.predictionIds.keypoints && window.studio.predictionIds.emotion")
    bob_page.evaluate(f"window.studio.face = {{...window.studio.face, id: {held}}}; window.studio.predictionIds = {{}}")
    bob_page.keyboard.press("a")
    bob_page.keyboard.press("Enter")
    bob_page.wait_for_function("document.getElementById('message').textContent.includes('Not saved')")
    assert f"being labeled by {labeler.username}" in bob_page.locator("#message").inner_text()
    assert not Annotation.objects.filter(face_id=held, origin="human").exists()
    assert queue_take(task="keypoints", user=bob)[0].pk != held and Face.objects.filter(pk=held).exists()


def test_saving_only_the_emotion_in_the_keypoints_queue_moves_on(open_page, labeler, faces):
    """The face still needs its points, so it stays in the queue, but not for this session's very next request."""
    page = open_page("/label/", user=labeler)
    _ready(page)
    face_id = page.evaluate("window.studio.face.id")
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    page.wait_for_function(f"window.studio.face && window.studio.face.id !== {face_id}", timeout=20_000)
    saved = Annotation.objects.get(face_id=face_id, origin="human")
    assert saved.emotion == page.evaluate("window.studio.classes[1]") and saved.points is None
    assert "still needs its points" in page.locator("#toast").inner_text()


def test_a_face_served_again_starts_from_the_labels_a_person_saved_not_the_models_guess(open_page, labeler, faces):
    """When the queue serves a face a person has labeled (the unlabeled ones ran out, or the face still lacks the
    other task's label), the board shows the person's points and the buttons their emotion, not the model's guess
    over them (#29 item 8: a saved face came back with the model's points; "Current label: anger" beside "sad")."""
    from tests import factories
    from webapp.faces.labeling.services import annotation_submit
    from webapp.faces.models import Face

    faces = list(Face.objects.order_by("id"))
    for face in faces[1:]:  # points and an emotion saved on every face but the first
        annotation_submit(face=face, author=labeler, points=factories.points(face.pk), emotion="surprise")
    annotation_submit(face=faces[0], author=labeler, emotion="surprise")  # emotion only: the keypoints queue's head
    page = open_page("/label/", user=labeler)
    _ready(page)
    assert page.evaluate("window.studio.face.id") == faces[0].pk
    assert page.evaluate("window.studio.emotion") == "surprise"  # the person's, not the model's guess
    assert "Current label: surprise (by a person)" in page.locator("#current").inner_text()
    page.keyboard.press("s")  # skip it: the queue now serves faces whose points a person saved
    page.wait_for_function(f"window.studio.face && window.studio.face.id !== {faces[0].pk}", timeout=20_000)
    served = Face.objects.get(pk=page.evaluate("window.studio.face.id"))
    saved = [[p["x"], p["y"], p["visible"]] for p in factories.points(served.pk)]
    assert page.evaluate("window.studio.points") == saved  # as saved, not the model's guess
    assert page.evaluate("window.studio.emotion") == "surprise"


def test_a_face_just_saved_is_not_served_again_when_every_face_has_a_label(open_page, labeler, faces):
    """Once no face lacks a label the queue serves labeled faces, the most uncertain first, and the face this page
    had just saved (the only one with a recorded prediction) came straight back. The page leaves out what it saved."""
    from tests import factories
    from webapp.faces.labeling.services import annotation_submit
    from webapp.faces.models import Face

    last, *rest = Face.objects.order_by("-id")
    for face in rest:
        annotation_submit(face=face, author=labeler, points=factories.points(face.pk))
    page = open_page("/label/", user=labeler)
    _ready(page)
    assert page.evaluate("window.studio.face.id") == last.pk  # the one face without points
    page.keyboard.press("a")
    page.keyboard.press("Enter")
    page.wait_for_function(f"window.studio.face && window.studio.face.id !== {last.pk}", timeout=20_000)
    assert Face.objects.get(pk=last.pk).human_keypoints
