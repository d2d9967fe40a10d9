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
        # from scratch (it asks first, with the estimate): a version is registered whatever one epoch does, where a
        # fine-tune that beats its parent on nothing registers nothing
        page.once("dialog", lambda dialog: dialog.accept())
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


def test_a_version_of_other_classes_says_its_figures_are_on_them_before_a_promotion(open_page, staff):
    """A new user's finding: the shipped five-class version showed "acc 0.779" and a Promote button beside the served
    seven-class 0.616, scored on other classes."""
    from webapp.labels.selectors import label_set
    from webapp.registry.selectors import active_version, version_labels

    classes = label_set(task="emotion").labels
    other = next(
        v for v in ModelVersion.objects.filter(kind="emotion") if tuple(version_labels(v)) != tuple(classes)
    )  # the seed's preset, shipped beside the served version
    n = len(version_labels(other))
    page = open_page("/models/", user=staff)
    page.wait_for_function("window.studio && window.studio.ready", timeout=30_000)
    row = page.locator(f'.card[data-kind="emotion"] tr[data-id="{other.pk}"]')
    assert f"on its {n} classes, not the label set's {len(classes)}" in row.inner_text()
    served = active_version(kind="emotion")
    assert "classes, not the label set" not in page.locator(f'tr[data-id="{served.pk}"]').inner_text()
    said = []
    page.once("dialog", lambda dialog: (said.append(dialog.message), dialog.dismiss()))
    row.locator("button.promote").click()
    page.wait_for_function("true")
    assert said and f"predicts {n} classes" in said[0] and "cannot be compared" in said[0], said
    assert active_version(kind="emotion") == served  # dismissed: nothing changed


HOSTILE = '<img src=x onerror="window.__xss = (window.__xss || 0) + 1">'


def test_names_notes_and_decisions_are_shown_as_text_never_run(open_page, staff, media, tmp_path):
    """A labeler named like markup, a version note, a run's decision and log: the Models page shows them as they are.
    The version's slices (the users' faces beside the reference set) are shown side by side with the decision."""
    import shutil

    from tests import factories
    from webapp.faces.labeling.services import annotation_submit
    from webapp.registry.models import ModelVersion
    from webapp.registry.selectors import version_history
    from webapp.registry.services import staging_dir, version_register
    from webapp.training.models import TrainingRun

    labeler = factories.user("labeler", HOSTILE[:150])
    from tests.csvs import fer_row, write
    from webapp.faces.interchange.services import faces_import
    from webapp.faces.models import Face

    faces_import(path=write(tmp_path / "f.csv", "emotion,pixels,Usage", [fer_row(0, 1)]), fmt="fer2013")
    annotation_submit(face=Face.objects.get(), author=labeler, emotion="happiness")
    baseline = ModelVersion.objects.get(kind="emotion", number=1)
    staging = staging_dir("emotion")
    shutil.rmtree(staging)
    shutil.copytree(settings.BASE_DIR / "models" / "baseline" / "emotion", staging)
    slice_ = {"metric": "accuracy", "confidence": 0.95, "improvement": 0.07, "ci_low": 0.04, "ci_high": 0.1}
    comparison = {**slice_, "n": 2266, "candidate": 0.778, "active": 0.779, "improvement": -0.001, "ci_low": -0.008}
    comparison |= {"ci_high": 0.006, "against": "emotion v1", "decision": f"promoted: {HOSTILE}"}
    metrics = {
        "accuracy": 0.778,
        "macro_f1": 0.72,
        "comparison": comparison,
        "slices": {
            "reference": {**comparison, "dataset": "fer2013.csv.gz"},
            "user": {
                **slice_,
                "n": 489,
                "groups": 62,
                "candidate": 0.95,
                "active": 0.88,
                "method": "5-fold by person",
                "datasets": {HOSTILE: {"n": 489, "groups": 62, "candidate": 0.95, "active": 0.88}},
            },
        },
    }
    version = version_register(
        kind="emotion", export_dir=staging, metrics=metrics, trained_on={"faces": 9}, parent=baseline, note=HOSTILE
    )
    TrainingRun.objects.create(kind="emotion", status="running", log=HOSTILE, decision=HOSTILE, epochs=3, epoch=1)

    page = open_page("/models/", user=staff)
    page.wait_for_function("window.studio && window.studio.ready", timeout=30_000)
    page.wait_for_function("!document.querySelector('#agreement .summary').textContent.startsWith('Loading')")
    page.wait_for_selector('.card[data-kind="emotion"] .run:not([hidden])')
    assert HOSTILE[:150] in page.locator("#agreement .labelers").inner_text()
    row = page.locator(f'.card[data-kind="emotion"] tr[data-id="{version.pk}"]')
    assert HOSTILE in row.inner_text()  # the note, as text
    table = row.locator("table.slices").inner_text()
    assert "your faces" in table and "489 faces of 62 people" in table and "5-fold by person" in table
    assert "reference: fer2013.csv.gz" in table and "0.9500" in table and "0.8800" in table and HOSTILE in table
    assert "(lower)" in table and "worse" not in table.replace("(lower)", "")  # the reference dropped, within noise
    assert HOSTILE in page.locator('.card[data-kind="emotion"] .run').inner_text()
    page.wait_for_timeout(300)
    assert page.evaluate("window.__xss") is None and page.locator("img[src=x]").count() == 0
    # the distilled five-class baseline (shipped, registered as v2) has no curves: its note, not empty axes
    distilled = ModelVersion.objects.get(kind="emotion", number=2)
    assert distilled.trained_on["source"] == "shipped baseline" and not version_history(distilled)
    page.click(f'.card[data-kind="emotion"] a.show[data-id="{distilled.pk}"]')
    page.wait_for_function("!document.querySelector('.card[data-kind=emotion] .no-curves').hidden")
    assert page.locator('.card[data-kind="emotion"] canvas.loss').is_hidden()


def test_staff_add_a_class_and_labelers_get_its_button_while_every_stored_label_keeps_its_class(
    open_page, staff, labeler, faces
):
    """The label set card: a class added (and one moved) is the label page's set at once; the served version's
    classes stay what its manifest says, so the demo is unchanged until a retrain teaches the model the new class."""
    from webapp.faces.labeling.selectors import current_labels
    from webapp.labels.selectors import label_set

    before = current_labels(task="emotion")
    page = open_page("/models/", user=staff)
    page.wait_for_function("document.querySelectorAll('#labelset .classes li').length > 0", timeout=30_000)
    assert page.locator("#labelset .classes li").count() == len(label_set().labels)
    page.fill('#labelset input[name="class"]', "Contempt")
    page.click('#labelset button[type="submit"]')
    page.wait_for_function("document.querySelector('#labelset .classes').textContent.includes('contempt')")
    page.locator("#labelset .classes li").last.locator('button[data-action="up"]').click()  # one place up
    page.wait_for_function(
        "document.querySelector('#labelset .classes li:nth-last-child(2)').textContent.includes('contempt')"
    )
    expected = label_set().labels
    assert expected[-2] == "contempt" and current_labels(task="emotion") == before
    page.screenshot(path=str(settings.BASE_DIR / "docs" / "screenshots" / "labelset.png"), full_page=False)

    label = open_page("/label/", user=labeler)
    label.wait_for_function("window.studio && window.studio.ready && window.studio.face", timeout=60_000)
    assert label.evaluate("window.studio.classes") == list(expected)
    assert label.locator("#emotions button").all_inner_texts()[len(expected) - 2].endswith("contempt")
    label.keyboard.press(str(len(expected) - 1))  # its number key
    assert label.evaluate("window.studio.emotion") == "contempt"
    served = label.evaluate("window.studio.models.manifest.emotion.labels")
    assert "contempt" not in served  # no version knows it yet: the model's guess is one of its own classes
