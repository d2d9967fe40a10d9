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
