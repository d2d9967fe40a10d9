"""The Faces page and a face's own page in real Chromium, at 1280 and 390 px wide: filter (the filter in the URL, Back
works), open a face, see the picture it was found in with its box, draw a face the detector missed."""

import io

import pytest

from tests import csvs, factories
from tests.e2e.conftest import astronaut
from webapp.faces.models import Face

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def shelf(media, staff):
    from webapp.faces.interchange.services import faces_import
    from webapp.faces.labeling.services import annotation_submit

    rows = [csvs.fer_row(c, 80 + i, "Training") for i, c in enumerate((0, 3, 4, 4, 6))]
    faces_import(path=csvs.write(media / "lab.csv", csvs.FER_HEADER, rows), fmt="fer2013", author=staff)
    first = Face.objects.order_by("id").first()
    annotation_submit(face=first, author=staff, emotion="surprise")  # corrected: disputed
    return first


def _tiles(page) -> list[int]:
    return [int(x) for x in page.locator(".tile").evaluate_all("els => els.map(e => e.dataset.face)")]


@pytest.mark.parametrize("width", [1280, 390])
def test_filter_with_the_url_and_go_back(open_page, site, staff, shelf, width, settings):
    page = open_page("/faces/", user=staff, width=width)
    page.wait_for_function("document.querySelectorAll('.tile').length === 5")
    assert page.locator("#count").inner_text() == "5 faces"
    if width == 1280:
        page.screenshot(path=str(settings.BASE_DIR / "docs" / "screenshots" / "faces.png"))
    # every value says how many faces it would show
    assert "sad (2)" in page.locator("select[name=emotion]").inner_text()
    page.select_option("select[name=emotion]", "sad")
    page.wait_for_function("document.querySelectorAll('.tile').length === 2")
    assert "emotion=sad" in page.url
    page.select_option("select[name=state]", "disputed")
    page.wait_for_function("document.getElementById('count').textContent === '0 faces'")
    assert "no face matches" in page.locator("#page").inner_text()
    page.go_back()  # the state filter goes, the emotion stays
    page.wait_for_function("document.querySelectorAll('.tile').length === 2")
    assert page.locator("select[name=emotion]").input_value() == "sad"
    assert page.locator("select[name=state]").input_value() == ""
    shared = page.url  # a link someone sends shows the same faces
    other = open_page(shared.removeprefix(site), user=staff, width=width)
    other.wait_for_function("document.querySelectorAll('.tile').length === 2")
    assert _tiles(other) == _tiles(page)
    page.fill("#q", f"#{shelf.pk}")
    page.wait_for_function("document.querySelectorAll('.tile').length === 0")  # #first is anger then surprise, not sad
    page.click("#clear")
    page.fill("#q", f"#{shelf.pk}")
    page.wait_for_function(
        f"document.querySelectorAll('.tile').length === 1 && location.search.includes('q=%23{shelf.pk}')"
    )
    tile = page.locator(".tile").first
    assert "surprise" in tile.inner_text() and "disputed" in tile.inner_text()
    if width == 390:  # no sideways scrolling on a phone
        assert page.evaluate("document.documentElement.scrollWidth") <= 390


def _photo(client, size=300) -> dict:
    out = io.BytesIO()
    astronaut(size).save(out, "JPEG")
    response = client.post("/api/faces/upload/", {"image": io.BytesIO(out.getvalue())}, format="multipart")
    assert response.status_code == 201, response.content
    return response.json()["faces"][0]


@pytest.mark.parametrize("width", [1280, 390])
def test_a_face_shows_its_picture_and_box_and_a_missed_face_can_be_drawn(
    open_page, client_for, staff, site, width, settings
):
    face = _photo(client_for("staff"))
    assert face["original_url"] and len(face["box"]) == 4
    from webapp.faces.labeling.services import annotation_submit

    annotation_submit(face=Face.objects.get(pk=face["id"]), author=staff, emotion="happiness")
    page = open_page(f"/faces/{face['id']}/", user=staff, width=width)
    page.wait_for_selector("#photo-part:not([hidden])")
    page.wait_for_function("document.querySelectorAll('#siblings li').length === 1")
    assert "this face" in page.locator("#siblings").inner_text()
    history = page.locator("#history tbody").inner_text()
    assert staff.username in history and "human" in history and "happiness" in history  # who, how, what
    # the photo is drawn with this face's box in green: sample a pixel on the box's top edge
    (x0, y0), (x1, _) = face["box"][0], face["box"][1]
    scale = page.evaluate("document.getElementById('photo').width") / 300
    green = page.evaluate(
        f"Array.from(document.getElementById('photo').getContext('2d').getImageData({(x0 + x1) / 2 * scale}, {y0 * scale}, 1, 1).data)"
    )
    assert green[1] > 150 and green[0] < 120, green
    # box the woman's face again by hand a little larger than the crop: the same alignment finds the same face
    canvas = page.locator("#photo")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    k = box["width"] / 300
    (cx0, cy0), (cx2, cy2) = face["box"][0], face["box"][2]
    start = (box["x"] + (cx0 + 6) * k, box["y"] + (cy0 + 6) * k)
    end = (box["x"] + (cx2 - 6) * k, box["y"] + (cy2 - 6) * k)
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=5)
    page.mouse.up()
    page.wait_for_function("!document.getElementById('add-face').disabled")
    page.click("#add-face")
    page.wait_for_function("/face #\\d+/i.test(document.getElementById('add-status').textContent)")
    status = page.locator("#add-status").inner_text()
    stored = Face.objects.count()
    assert stored in (1, 2), status  # the same pixels are the same face; a crop a pixel off is a new one
    # a box drawn on empty wall: a face is cut (a person said there is one), stored with the picture, in the queue
    page.mouse.move(box["x"] + 2, box["y"] + 2)
    page.mouse.down()
    page.mouse.move(box["x"] + 40 * k, box["y"] + 40 * k, steps=3)
    page.mouse.up()
    page.click("#add-face")
    page.wait_for_function("document.getElementById('add-status').textContent.includes('added')")
    added = Face.objects.order_by("-id").first()
    assert added.original == Face.objects.get(pk=face["id"]).original and added.box
    assert added.group == Face.objects.get(pk=face["id"]).group
    page.wait_for_function(f"document.querySelectorAll('#siblings li').length === {Face.objects.count()}")
    if width == 1280:
        page.screenshot(path=str(settings.BASE_DIR / "docs" / "screenshots" / "face.png"), full_page=True)


def test_the_faces_pages_are_for_labelers(open_page, site, media):
    face = factories.face()
    page = open_page("/faces/")
    assert "/accounts/login/" in page.url
    outsider = factories.user("outsider")
    open_page.expect_error.append("status of 403")
    page = open_page(f"/faces/{face.pk}/", user=outsider)
    assert "Labelers only" in page.content()


def test_label_this_face_opens_it_on_the_label_page_with_a_lease(open_page, staff, shelf):
    from webapp.faces.models import Lease

    last = Face.objects.order_by("-id").first()  # not the queue's first face
    page = open_page(f"/faces/{last.pk}/", user=staff)
    page.click("#label-this")
    page.wait_for_function(f"document.getElementById('face-info').textContent.startsWith('Face {last.pk} ')")
    assert Lease.objects.filter(face=last, holder=staff).exists()
    # held by someone else: the page says so and serves the queue
    other = factories.user("labeler")
    Lease.objects.filter(face=last).update(holder=other)
    open_page.expect_error.append("status of 409")
    page = open_page(f"/label/?face={last.pk}", user=staff)
    page.wait_for_function("document.getElementById('message').textContent.includes('is being labeled by')")
    assert not page.locator("#face-info").inner_text().startswith(f"Face {last.pk} ")


@pytest.mark.parametrize("width", [1280, 390])
def test_bulk_actions_on_picked_faces_and_on_a_whole_filter(open_page, staff, shelf, width):
    from webapp.faces.labeling.models import FaceSummary

    page = open_page("/faces/?ordering=id", user=staff, width=width)
    page.wait_for_function("document.querySelectorAll('.tile').length === 5")
    first, second = _tiles(page)[:2]
    page.locator(".grid .pick").nth(0).check()
    page.locator(".grid .pick").nth(1).check()
    assert page.locator("#selected").inner_text() == "2 selected"
    page.click("button[data-action=queue_first]")
    page.wait_for_function(
        "document.getElementById('toast').textContent.includes('2 of 2 faces put first in the queue')"
    )
    assert set(Face.objects.filter(queue_first=True).values_list("id", flat=True)) == {first, second}
    page.wait_for_function("!document.getElementById('grid').hasAttribute('aria-busy')")  # the grid is read again
    page.locator(".grid .pick").nth(0).check()  # a bulk action clears the selection
    page.locator(".grid .pick").nth(1).check()
    page.click("button[data-action=exclude]")
    page.wait_for_function("document.getElementById('toast').textContent.includes('2 of 2 faces excluded')")
    assert set(FaceSummary.objects.filter(excluded=True).values_list("face_id", flat=True)) == {first, second}
    page.wait_for_function("document.querySelectorAll('.tile .badge.warn').length >= 2")
    # every face of a filter: the excluded ones back in
    page.select_option("select[name=excluded]", "true")
    page.wait_for_function("document.querySelectorAll('.tile').length === 2")
    page.check("#whole-filter")
    assert page.locator("#selected").inner_text() == "all 2 faces of this filter"
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))  # asked first; No: nothing
    page.click("button[data-action=include]")
    page.wait_for_function("true")
    assert asked == ["All 2 faces of this filter will be included again. Go on?"]
    assert FaceSummary.objects.filter(excluded=True).count() == 2
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button[data-action=include]")
    page.wait_for_function("document.getElementById('toast').textContent.includes('2 of 2 faces included again')")
    assert not FaceSummary.objects.filter(excluded=True).exists()
    page.wait_for_function("document.querySelectorAll('.tile').length === 0")
    if width == 390:
        assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_labelers_see_the_faces_but_no_bulk_actions(open_page, shelf):
    labeler = factories.user("labeler")
    page = open_page("/faces/", user=labeler)
    page.wait_for_function("document.querySelectorAll('.tile').length === 5")
    assert page.locator("#bulk").count() == 0 and page.locator(".grid .pick").count() == 0
    assert page.locator("#check").count() == 0
