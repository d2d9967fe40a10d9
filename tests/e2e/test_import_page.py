import pytest

from tests import csvs
from webapp.faces.models import Face

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_staff_import_a_csv_and_read_the_report(open_page, staff, media, tmp_path):
    rows = [csvs.fer_row(c, 60 + c, "Training") for c in (0, 3, 4)] + ["9,1 2 3,Training"]
    path = csvs.write(tmp_path / "fer2013.csv", csvs.FER_HEADER, rows)
    page = open_page("/import/", user=staff)
    page.set_input_files("#file", str(path))
    page.wait_for_function("document.getElementById('format').value === 'fer2013'")  # told from the header
    page.click("#start")
    page.wait_for_selector("#report:not([hidden])", timeout=30_000)
    summary = page.locator("#report .summary").inner_text()
    assert "3 faces created" in summary and "1 bad rows skipped" in summary
    assert page.locator("#report .bad-count").inner_text() == "1 bad rows"
    page.click("#report summary")
    assert "line 5" in page.locator("#report .errors").inner_text()
    assert Face.objects.count() == 3


def test_a_wrong_format_is_refused_on_the_page(open_page, staff, media, tmp_path):
    path = csvs.write(tmp_path / "fer2013.csv", csvs.FER_HEADER, [csvs.fer_row(0, 70, "Training")])
    page = open_page("/import/", user=staff)
    page.set_input_files("#file", str(path))
    # the page reads the header and picks the format itself; a person then overrules it
    page.wait_for_function("document.getElementById('format').value === 'fer2013'")
    page.select_option("#format", "icml")
    open_page.expect_error.append("status of 400")
    page.click("#start")
    page.wait_for_function("document.getElementById('import-status').textContent.startsWith('Not imported')")
    assert "import it as fer2013" in page.locator("#import-status").inner_text()
    assert Face.objects.count() == 0
    assert page.locator("#progress").is_hidden()  # no full bar for an import that did not happen


def test_staff_import_a_label_studio_export_and_read_the_report(open_page, staff, media, tmp_path):
    import base64
    import io
    import json

    import numpy as np
    from PIL import Image

    from tests import factories
    from webapp.faces.interchange.labelstudio import protocol as ls

    face = io.BytesIO()
    Image.fromarray(np.full((96, 96), 100, np.uint8)).save(face, "PNG")
    image = "data:image/png;base64," + base64.b64encode(face.getvalue()).decode()
    result = [*ls.keypoint_results(factories.points_array(0), 96, 96), ls.emotion_result("happiness", 15)]
    tasks = [
        {"id": 11, "data": {"image": image}, "annotations": [{"result": result}]},
        {"id": 12, "data": {"image": image}, "annotations": [{"result": result[:10]}]},  # 10 of 15 points
    ]
    path = tmp_path / "project-3-at-2026-12-04.json"
    path.write_text(json.dumps(tasks))
    page = open_page("/import/", user=staff)
    page.set_input_files("#file", str(path))
    page.wait_for_function("document.getElementById('format').value === 'label-studio'")
    page.click("#start")
    page.wait_for_selector("#report:not([hidden])", timeout=30_000)
    assert "1 faces created" in page.locator("#report .summary").inner_text()
    assert page.locator("#report .bad-count").inner_text() == "1 bad tasks"
    page.click("#report summary")
    assert "task 12: the face has 10 of 15 keypoints" in page.locator("#report .errors").inner_text()
    assert Face.objects.count() == 1


def test_a_gzipped_file_has_its_format_told_and_its_new_classes_added_on_request(open_page, staff, media, tmp_path):
    """The README's own data files are .gz: the page reads the header through the browser's gzip stream. A lab's file
    naming a class the set lacks: with the checkbox, the class joins the set and its rows are imported."""
    from webapp.labels.selectors import label_set

    rows = [
        f"{name},{csvs.pixels(csvs.synthetic_face(80 + i, side=48)[0])},Training,S{i}"
        for i, name in enumerate(["contempt", "happy", "contempt"])
    ]
    path = csvs.write(tmp_path / "lab.csv.gz", "emotion,pixels,Usage,subject", rows, gz=True)
    page = open_page("/import/", user=staff)
    page.select_option("#format", "kaggle-keypoints")
    page.set_input_files("#file", str(path))
    page.wait_for_function("document.getElementById('format').value === 'fer2013'")  # told from the .gz's header
    page.check("#add-classes")
    page.click("#start")
    page.wait_for_selector("#report:not([hidden])", timeout=30_000)
    summary = page.locator("#report .summary").inner_text()
    assert "3 faces created" in summary and "classes added to the label set: contempt" in summary
    assert "contempt" in label_set().labels and Face.objects.count() == 3
