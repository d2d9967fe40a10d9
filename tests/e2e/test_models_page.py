import pytest
from django.conf import settings

from tests.training.conftest import Worker
from webapp.registry.models import ModelVersion

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_staff_retrains_and_watches_the_run_to_a_new_version(open_page, staff, faces, media, redis_clean):
    worker = Worker("redis://127.0.0.1:6379/15", media)
    try:
        page = open_page("/models/", user=staff)
        page.wait_for_function("window.studio && window.studio.ready", timeout=30_000)
        assert page.locator('.card[data-kind="keypoints"] .badge').inner_text() == "active"
        # one version ever served: nothing to roll back to, and the button says so instead of asking first
        rollback = page.locator('.card[data-kind="keypoints"] .rollback')
        assert rollback.is_disabled() and "Nothing to roll back to" in rollback.get_attribute("title")
        # before anything starts: what a retrain would do, and how long it should take
        plan = page.locator('.card[data-kind="keypoints"] .plan')
        page.wait_for_function("document.querySelector('.card[data-kind=keypoints] .plan').textContent.length > 0")
        assert plan.inner_text().startswith("Fine-tune the active version") and "about " in plan.inner_text()
        page.check('.card[data-kind="keypoints"] .scratch')
        page.wait_for_function(
            "document.querySelector('.card[data-kind=keypoints] .plan').textContent.includes('the full recipe')"
        )
        page.uncheck('.card[data-kind="keypoints"] .scratch')
        page.click('.card[data-kind="keypoints"] button.retrain')
        page.wait_for_selector('.card[data-kind="keypoints"] .run:not([hidden])', timeout=10_000)
        page.wait_for_function(
            "document.querySelector('.card[data-kind=keypoints] .run').textContent.includes('succeeded')",
            timeout=180_000,
        )
        run_text = page.locator('.card[data-kind="keypoints"] .run').inner_text()
        assert page.locator('.card[data-kind="keypoints"] .run progress').get_attribute("value") == "100"
        # at 1280 px nothing is cut off: no card scrolls sideways, the confusion matrix names whole classes
        assert page.evaluate("[...document.querySelectorAll('.card')].every((c) => c.scrollWidth <= c.clientWidth)")
        headers = page.locator('.card[data-kind="emotion"] table.confusion th').all_inner_texts()
        assert {"anger", "disgust", "sad", "happiness", "surprise"} <= set(headers), headers
        assert "epoch 1/1" in run_text and "registered keypoints v2" in run_text
        page.wait_for_selector('.card[data-kind="keypoints"] tr[data-id] >> text=v2')
        assert ModelVersion.objects.filter(kind="keypoints").count() == 2
        # like with like: the new version and the one it was compared with, on the same faces, with the n
        v2 = ModelVersion.objects.get(kind="keypoints", number=2)
        n = v2.metrics["comparison"]["n"]
        row = page.locator(f'.card[data-kind="keypoints"] tr[data-id="{v2.pk}"] .comparison').inner_text()
        assert f"on the same {n} validation faces" in row and "vs keypoints v1" in row and "95 % CI" in row
        assert (
            f"{v2.metrics['comparison']['candidate']:.4f}" in row and f"{v2.metrics['comparison']['active']:.4f}" in row
        )
        page.wait_for_function("!document.querySelector('#agreement .summary').textContent.startsWith('Loading')")
        assert "Keypoints: 0 shared faces" in page.locator("#agreement .summary").inner_text()
        page.screenshot(path=str(settings.BASE_DIR / "docs" / "screenshots" / "models.png"), full_page=True)
    finally:
        worker.stop()


def test_a_labeler_gets_403(open_page, transactional_db):
    from tests import factories

    open_page.expect_error.append("status of 403")
    page = open_page("/models/", user=factories.user("labeler"))
    assert page.request.get(page.url).status == 403
    assert "Staff only." in page.content()
