"""At 390 px, a phone's width, no page is wider than the screen."""

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize(
    "path", ["/", "/label/", "/faces/", "/faces/<first>/", "/import/", "/models/", "/accounts/login/"]
)
def test_no_page_is_wider_than_a_phone(open_page, staff, faces, path):
    from webapp.faces.models import Face

    page = open_page(path.replace("<first>", str(Face.objects.order_by("id").first().pk)), user=staff)
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(500)
    width = page.evaluate("document.documentElement.scrollWidth")
    wide = page.evaluate(
        """() => [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > 391)
        .slice(0, 5).map((e) => `${e.tagName}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`)"""
    )
    assert width <= 390, (width, wide)
    # and no control sticks out of its card (the label page's file picker once did, inside a card that scrolls)
    outside = page.evaluate(
        """() => [...document.querySelectorAll('.card .toolbar > *')].filter((e) => {
            const card = e.closest('.card').getBoundingClientRect(), r = e.getBoundingClientRect();
            return r.width > 0 && r.right > card.right + 1; }).map((e) => e.id || e.textContent.trim().slice(0, 30))"""
    )
    assert outside == []


def test_a_photo_on_a_phone(open_page, tmp_path):
    """At 390 px: a small face keeps its features in sight (its number beside its crop, points sized to it), the list
    of faces starts just below the picture, and a tap on the face shows it large (another, or Whole picture, undoes)."""
    from django.conf import settings
    from PIL import Image

    from tests.e2e.conftest import astronaut

    page = open_page("/", width=390)
    page.wait_for_function("window.studio && window.studio.ready === true", timeout=60_000)
    scene = Image.new("RGB", (600, 800), (90, 90, 90))
    scene.paste(astronaut(400), (180, 266))
    photo = tmp_path / "small-face.jpg"
    scene.save(photo, quality=92)
    page.set_input_files("#photo", str(photo))
    page.wait_for_function("window.studio.drawn && window.studio.drawn.length > 0", timeout=30_000)
    (drawn,) = page.evaluate("window.studio.drawn")
    box, number = drawn["box"], drawn["number"]
    assert box["width"] < 120, box  # a small face on the phone's canvas
    apart = (
        number["x"] + number["width"] <= box["x"]
        or number["x"] >= box["x"] + box["width"]
        or number["y"] + number["height"] <= box["y"]
        or number["y"] >= box["y"] + box["height"]
    )
    assert apart, (number, box)
    assert drawn["radius"] <= box["width"] / 25
    canvas = page.locator("#view").bounding_box()
    assert canvas["height"] <= 0.55 * 844 + 1
    first = page.locator("#faces .face").first.bounding_box()
    assert 0 <= first["y"] - (canvas["y"] + canvas["height"]) < 250, (first, canvas)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(settings.BASE_DIR / "docs" / "screenshots" / "demo-phone.png"))

    css = canvas["width"] / page.evaluate("document.getElementById('view').width")
    centre = {"x": (box["x"] + box["width"] / 2) * css, "y": (box["y"] + box["height"] / 2) * css}
    page.locator("#view").click(position=centre)
    page.wait_for_function("window.studio.zoom === 0")
    large = page.evaluate("window.studio.drawn[0].box")
    view_width = page.evaluate("document.getElementById('view').width")
    assert large["width"] > 0.5 * view_width, large
    assert page.locator("#unzoom").is_visible()
    assert page.locator("#faces .face .zoom").inner_text() == "whole picture"
    page.click("#unzoom")
    page.wait_for_function("window.studio.zoom === null")
    assert page.evaluate("window.studio.drawn[0].box.width") == pytest.approx(box["width"], abs=0.5)
    assert not page.locator("#unzoom").is_visible()
    page.click("#faces .face .zoom")  # the list's own button does the same
    page.wait_for_function("window.studio.zoom === 0")
    page.locator("#view").click(position={"x": 5, "y": 5})  # a tap anywhere on the large face goes back
    page.wait_for_function("window.studio.zoom === null")
