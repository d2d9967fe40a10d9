import json

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from ml.datasets import read_fer2013_csv, read_keypoints_csv
from ml.schema import FER_CLASSES, PRESETS
from tests import csvs, factories
from webapp.faces.labeling.services import annotation_submit
from webapp.faces.models import Annotation, Face

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(media):
    return media


def _import(fmt, path, capsys):
    call_command("import_faces", "--format", fmt, str(path), verbosity=0)
    return capsys.readouterr()


def test_kaggle_import_reports_bad_rows_imports_the_rest_and_is_idempotent(tmp_path, capsys):
    bad = csvs.keypoint_row(50).split(",")
    bad[0] = "120"
    path = csvs.keypoints_csv(tmp_path / "training.csv.gz", n=5, extra_rows=[",".join(bad)], gz=True)
    out = _import("kaggle-keypoints", path, capsys)
    assert "5 faces created, 5 labels, 0 already present, 1 bad rows skipped" in out.out
    assert "skipped line 7: left_eye_center_x = 120 is outside the 96x96 image" in out.err
    assert Face.objects.count() == 5 and Annotation.objects.filter(origin="import").count() == 5
    again = _import("kaggle-keypoints", path, capsys)
    assert "0 faces created, 0 labels, 5 already present" in again.out
    assert Face.objects.count() == 5 and Annotation.objects.count() == 5


def test_fer_and_icml_imports_keep_every_class_of_the_label_set(tmp_path, capsys):
    fer = csvs.write(
        tmp_path / "fer2013.csv",
        csvs.FER_HEADER,
        [csvs.fer_row(c, 10 + c, "PublicTest" if c == 3 else "Training") for c in range(7)] + ["1,1 2 3,Training"],
    )
    out = _import("fer2013", fer, capsys)  # the default set, FER2013's seven: fear and neutral are kept
    assert "7 faces created" in out.out and "1 bad rows skipped, 0 left out" in out.out
    assert Face.objects.get(usage="PublicTest").split == "val"  # PublicTest rows are the fixed validation split
    icml = csvs.write(tmp_path / "icml.csv", csvs.ICML_HEADER, [csvs.icml_row(c, 30 + c) for c in range(5)])
    assert "5 faces created" in _import("icml", icml, capsys).out
    stored = sorted(Annotation.objects.values_list("emotion", flat=True))
    assert stored == sorted([*FER_CLASSES, *PRESETS["seed-five"]])  # by name: icml's codes are the seed's five


def test_with_the_seed_five_preset_fear_and_neutral_are_left_out(tmp_path, capsys):
    call_command("labelset", "emotion", "--preset", "seed-five", verbosity=0)
    fer = csvs.write(tmp_path / "fer.csv", csvs.FER_HEADER, [csvs.fer_row(c, 10 + c) for c in range(7)])
    assert "5 faces created" in _import("fer2013", fer, capsys).out
    assert set(Annotation.objects.values_list("emotion", flat=True)) == set(PRESETS["seed-five"])


def test_class_names_in_the_emotion_column_and_a_class_the_set_lacks(tmp_path, capsys):
    """A lab's file names its classes; one the set lacks is a bad row naming the set, or is added on request."""
    from webapp.labels.selectors import label_set

    rows = [
        f"{name},{csvs.pixels(csvs.synthetic_face(40 + i, side=48)[0])},Training,S{i % 2}"
        for i, name in enumerate(["contempt", "happy", "fear", "contempt"])
    ]
    lab = csvs.write(tmp_path / "lab.csv", "emotion,pixels,Usage,subject", rows)
    out = _import("fer2013", lab, capsys)
    assert "2 faces created" in out.out and "2 bad rows skipped" in out.out
    assert (
        "emotion 'contempt' is not in the label set (anger, disgust, fear, happiness, sad, surprise, neutral)"
        in out.err
    )
    assert "contempt" not in label_set().labels
    call_command("import_faces", "--format", "fer2013", "--add-classes", str(lab), verbosity=0)
    out = capsys.readouterr().out
    assert "2 faces created" in out and "classes added to the label set: contempt" in out
    assert label_set().labels[-1] == "contempt"
    assert sorted(Annotation.objects.values_list("emotion", flat=True)) == ["contempt", "contempt", "fear", "happiness"]


def test_a_file_in_the_wrong_format_fails_with_a_clear_message(tmp_path):
    path = csvs.keypoints_csv(tmp_path / "training.csv", n=2)
    with pytest.raises(
        CommandError, match=r"training\.csv has the kaggle-keypoints header .* import it as kaggle-keypoints"
    ):
        call_command("import_faces", "--format", "fer2013", str(path), verbosity=0)
    assert Face.objects.count() == 0


@pytest.mark.parametrize("kind", ["latin-1 csv", "png", "truncated gz"])
def test_a_file_that_is_not_utf8_csv_text_fails_with_a_clear_message(tmp_path, kind):
    import gzip

    path = tmp_path / "faces.csv"
    good = csvs.write(tmp_path / "good.csv", csvs.FER_HEADER, [csvs.fer_row(0, 1, "Training")]).read_bytes()
    if kind == "latin-1 csv":
        path.write_bytes(good.replace(b"Training", "Entra\u00eenement".encode("latin-1")))
    elif kind == "png":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    else:
        path = tmp_path / "faces.csv.gz"
        path.write_bytes(gzip.compress(good * 50)[:200])
    with pytest.raises(CommandError, match=r"not a readable CSV .*expected UTF-8 text"):
        call_command("import_faces", "--format", "fer2013", str(path), verbosity=0)
    assert Face.objects.count() == 0


def test_kaggle_export_round_trip_carries_the_newest_human_label(tmp_path, capsys):
    source = csvs.keypoints_csv(tmp_path / "in.csv", n=4)
    _import("kaggle-keypoints", source, capsys)
    corrected = Face.objects.order_by("source_line").first()
    points = factories.points(0)
    points[0] = {"x": 70.0, "y": 30.0, "visible": True}
    annotation_submit(face=corrected, author=factories.user(), points=points)
    out = tmp_path / "out.csv"
    call_command("export_faces", "--format", "kaggle-keypoints", str(out), verbosity=0)
    original, exported = read_keypoints_csv(source), read_keypoints_csv(out)
    assert len(exported) == 4
    np.testing.assert_array_equal(exported.images, original.images)
    np.testing.assert_allclose(exported.points[0, 0], [70.0, 30.0])
    np.testing.assert_allclose(exported.points[1:], original.points[1:], atol=1e-3)
    assert "0 faces created, 0 labels, 4 already present" in _import("kaggle-keypoints", out, capsys).out


def test_fer_export_round_trip_gives_back_the_48px_pixels(tmp_path, capsys):
    source = csvs.write(tmp_path / "in.csv", csvs.FER_HEADER, [csvs.fer_row(c, c, "Training") for c in (0, 1, 3, 4, 5)])
    _import("fer2013", source, capsys)
    out = tmp_path / "out.csv"
    call_command("export_faces", "--format", "fer2013", str(out), verbosity=0)
    original, exported = read_fer2013_csv(source), read_fer2013_csv(out)
    np.testing.assert_array_equal(exported.images, original.images)
    assert list(exported.labels) == list(original.labels)
    assert "0 faces created" in _import("fer2013", out, capsys).out


def test_coco_export(tmp_path, capsys):
    _import("kaggle-keypoints", csvs.keypoints_csv(tmp_path / "in.csv", n=3), capsys)
    out = tmp_path / "coco.json"
    call_command("export_faces", "--format", "coco-keypoints", str(out), verbosity=0)
    coco = json.loads(out.read_text())
    category = coco["categories"][0]
    assert len(category["keypoints"]) == 15 and min(min(e) for e in category["skeleton"]) == 1
    assert len(coco["images"]) == 3 and len(coco["annotations"]) == 3
    assert len(coco["annotations"][0]["keypoints"]) == 45
    assert (tmp_path / coco["images"][0]["file_name"]).is_file()


def test_skipped_faces_are_left_out_of_exports(tmp_path, capsys):
    _import("kaggle-keypoints", csvs.keypoints_csv(tmp_path / "in.csv", n=3), capsys)
    annotation_submit(face=Face.objects.first(), author=factories.user(), skip=True)
    out = tmp_path / "out.csv"
    call_command("export_faces", "--format", "kaggle-keypoints", str(out), verbosity=0)
    assert len(read_keypoints_csv(out)) == 2


@pytest.mark.parametrize(("role", "expected"), [("anonymous", 403), ("labeler", 403), ("staff", 201)])
def test_import_over_the_api_is_staff_only(client_for, tmp_path, role, expected):
    import io

    path = csvs.keypoints_csv(tmp_path / "training.csv", n=3, extra_rows=["1,2"])
    body = {"format": "kaggle-keypoints", "file": io.BytesIO(path.read_bytes())}
    response = client_for(role).post("/api/datasets/import/", body, format="multipart")
    assert response.status_code == expected
    assert Face.objects.count() == (3 if expected == 201 else 0)
    if expected == 201:
        assert response.json()["created"] == 3 and response.json()["errors"] == ["line 5: expected 31 fields, found 2"]


def test_import_api_names_a_wrong_file(client_for, tmp_path):
    import io

    body = {"format": "fer2013", "file": io.BytesIO(b"a,b\n1,2\n")}
    response = client_for("staff").post("/api/datasets/import/", body, format="multipart")
    assert response.status_code == 400 and "missing column(s) emotion, pixels, Usage" in response.json()["detail"]


@pytest.mark.parametrize(("role", "expected"), [("labeler", 403), ("staff", 200)])
def test_export_over_the_api(client_for, tmp_path, capsys, role, expected):
    _import("kaggle-keypoints", csvs.keypoints_csv(tmp_path / "in.csv", n=2), capsys)
    response = client_for(role).get("/api/datasets/export/kaggle-keypoints/")
    assert response.status_code == expected
    if expected == 200:
        text = b"".join(response.streaming_content).decode()
        assert text.startswith("left_eye_center_x,") and len(text.strip().splitlines()) == 3
        assert response["Content-Type"].startswith("text/csv")


@pytest.mark.parametrize("fmt", ["kaggle-keypoints", "coco-keypoints"])
def test_an_export_leaves_nothing_behind(client_for, tmp_path, capsys, monkeypatch, fmt):
    import tempfile

    _import("kaggle-keypoints", csvs.keypoints_csv(tmp_path / "in.csv", n=2), capsys)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    response = client_for("staff").get(f"/api/datasets/export/{fmt}/")
    body = b"".join(response.streaming_content)
    assert response.status_code == 200 and len(body) > 100
    response.close()
    assert list(scratch.iterdir()) == []
    if fmt == "coco-keypoints":  # the zip holds the JSON and the images, never itself (it once grew to fill a disk)
        import io
        import zipfile

        names = zipfile.ZipFile(io.BytesIO(body)).namelist()
        assert "coco-keypoints.json" in names and not [n for n in names if n.endswith(".zip")], names


def _fer_file(tmp_path):
    """FER codes 0 angry, 2 fear, 3 happy, 4 sad, 5 surprise: one face each."""
    rows = [csvs.fer_row(code, 10 + code, "Training") for code in (0, 2, 3, 4, 5)]
    return csvs.write(tmp_path / "fer2013.csv", csvs.FER_HEADER, rows)


def test_a_fer2013_file_named_icml_is_refused_before_any_wrong_label_is_stored(tmp_path, client_for):
    path = _fer_file(tmp_path)
    with pytest.raises(CommandError, match=r"has the fer2013 header .* not the icml one .* import it as fer2013"):
        call_command("import_faces", "--format", "icml", str(path), verbosity=0)
    with path.open("rb") as f:
        response = client_for("staff").post("/api/datasets/import/", {"format": "icml", "file": f})
    assert response.status_code == 400 and "import it as fer2013" in response.json()["detail"]
    assert Face.objects.count() == 0


def test_relabel_repairs_faces_imported_in_the_wrong_format(tmp_path, capsys):
    from webapp.faces.labeling.selectors import current_labels

    call_command("labelset", "emotion", "--preset", "seed-five", verbosity=0)  # the set of the time: no fear
    fer = _fer_file(tmp_path)
    # what the old importer did with --format icml: FER's codes read as icml's (fear 2 -> sad, sad 4 -> surprise);
    # icml has no 5, so that row was refused
    misread = [csvs.icml_row(code, 10 + code, "Training") for code in (0, 2, 3, 4)]
    _import("icml", csvs.write(tmp_path / "misread.csv", csvs.ICML_HEADER, misread), capsys)
    by_code = {code: Face.objects.get(checksum=_checksum_of(10 + code)).pk for code in (0, 2, 3, 4)}
    assert current_labels(task="emotion")[by_code[4]] == "surprise"  # wrong

    human = Face.objects.get(pk=by_code[3])
    annotation_submit(face=human, author=factories.user("labeler"), emotion="sad")  # a person's label stays
    out = _import("fer2013", fer, capsys)  # without --relabel: the wrong labels stay, as before
    assert current_labels(task="emotion")[by_code[4]] == "surprise" and "corrected" not in out.out

    call_command("import_faces", "--format", "fer2013", "--relabel", str(fer), verbosity=0)
    assert "2 imported labels corrected" in capsys.readouterr().out  # sad 4 -> 2, and fear loses its label
    labels = current_labels(task="emotion")
    assert labels[by_code[4]] == "sad" and by_code[2] not in labels and labels[by_code[0]] == "anger"
    assert labels[by_code[3]] == "sad"  # the human label, untouched
    assert Annotation.objects.filter(face_id=by_code[4], origin="import").count() == 2  # history kept
    call_command("import_faces", "--format", "fer2013", "--relabel", str(fer), verbosity=0)
    assert "0 imported labels corrected" in capsys.readouterr().out


def _checksum_of(seed):
    from ml.datasets import checksum, to_frame
    from tests.csvs import synthetic_face

    return checksum(to_frame(synthetic_face(seed, side=48)[0][None])[0])


def test_relabel_of_an_unchanged_keypoints_file_changes_nothing_and_fixes_moved_points(tmp_path, capsys):
    from webapp.faces.labeling.selectors import current_labels

    path = csvs.keypoints_csv(tmp_path / "training.csv", n=3)
    _import("kaggle-keypoints", path, capsys)
    call_command("import_faces", "--format", "kaggle-keypoints", "--relabel", str(path), verbosity=0)
    assert "0 imported labels corrected" in capsys.readouterr().out
    # the same faces with the first point moved by 2 px: each is corrected once
    rows = path.read_text().splitlines()
    moved = [rows[0]] + [f"{float(r.split(',')[0]) + 2:.4f}," + r.split(",", 1)[1] for r in rows[1:]]
    fixed = tmp_path / "fixed.csv"
    fixed.write_text("\n".join(moved) + "\n")
    call_command("import_faces", "--format", "kaggle-keypoints", "--relabel", str(fixed), verbosity=0)
    assert "3 imported labels corrected" in capsys.readouterr().out
    labels = current_labels(task="keypoints")
    first = [float(r.split(",")[0]) for r in moved[1:]]
    assert sorted(round(v[0]["x"], 3) for v in labels.values()) == sorted(round(x, 3) for x in first)


def test_an_import_over_the_web_with_more_rows_than_the_limit_is_a_413_and_stores_nothing(tmp_path, settings):
    from rest_framework.test import APIClient

    from tests import factories
    from webapp.faces.models import Face

    settings.IMPORT_MAX_ROWS = 5
    client = APIClient()
    client.force_authenticate(factories.user("staff"))
    path = csvs.write(tmp_path / "big.csv.gz", csvs.FER_HEADER, [csvs.fer_row(0, i) for i in range(6)], gz=True)
    with path.open("rb") as f:
        response = client.post("/api/datasets/import/", {"format": "fer2013", "file": f}, format="multipart")
    assert response.status_code == 413 and "has more than 5 rows" in response.json()["detail"]
    assert "manage.py import_faces" in response.json()["detail"] and Face.objects.count() == 0
    settings.IMPORT_MAX_ROWS = 6
    with path.open("rb") as f:
        response = client.post("/api/datasets/import/", {"format": "fer2013", "file": f}, format="multipart")
    assert response.status_code == 201 and Face.objects.count() == 6


def test_a_small_gzip_of_endless_newlines_is_refused_after_the_limit_not_after_decompressing_it(tmp_path):
    """A 1 MB gzip can hold a gigabyte of newlines: counting stops once past the limit."""
    import gzip
    import time

    from ml.datasets import count_lines

    path = tmp_path / "bomb.csv.gz"
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(b"emotion,pixels,Usage\n")
        for _ in range(256):
            f.write(b"\n" * (1 << 20))  # 256 MB of newlines in a file of a few hundred KB
    assert path.stat().st_size < 1_000_000
    started = time.monotonic()
    assert count_lines(path, limit=60_001) > 60_001
    assert time.monotonic() - started < 5
    assert count_lines(csvs.write(tmp_path / "three.csv", csvs.FER_HEADER, [csvs.fer_row(0, 1), "x"])) == 3


@pytest.mark.parametrize(
    ("content", "status", "message"),
    [
        (b"[" * 100_000, 400, "nested deeper than 64 levels"),
        (b'{"data": ' + b"[" * 70 + b"]" * 70 + b"}", 400, "nested deeper than 64 levels"),
        (b" " * (3 * 1024 * 1024) + b"[]", 413, "Label Studio exports over the web take at most"),
    ],
)
def test_a_hostile_label_studio_json_is_refused_with_a_clear_message(tmp_path, settings, content, status, message):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from rest_framework.test import APIClient

    from tests import factories

    settings.LABEL_STUDIO_IMPORT_MAX_BYTES = 2 * 1024 * 1024
    client = APIClient()
    client.force_authenticate(factories.user("staff"))
    upload = SimpleUploadedFile("tasks.json", content, content_type="application/json")
    response = client.post("/api/datasets/import/", {"format": "label-studio", "file": upload}, format="multipart")
    assert response.status_code == status and message in response.json()["detail"]
    assert Face.objects.count() == 0
    path = tmp_path / "tasks.json"
    path.write_bytes(content)
    if status == 400:  # the command line says the same, without a traceback
        with pytest.raises(CommandError, match=message):
            call_command("import_faces", "--format", "label-studio", str(path), verbosity=0)


def test_an_import_read_in_chunks_stores_what_one_read_does(media, monkeypatch, tmp_path):
    """import_faces reads and stores a chunk of rows at a time (its memory is one chunk, bench/import_memory.py):
    chunks of two rows give the faces, labels, splits, duplicates and bad rows that one chunk of all rows gives."""
    from webapp.faces.interchange import services

    rows = [csvs.fer_row(c % 7, 300 + c, "PublicTest" if c % 3 == 0 else "Training") for c in range(9)]
    rows.insert(4, "9,1 2 3,Training")  # a bad row in the middle
    rows.append(csvs.fer_row(2, 301, "Training"))  # a face already read (the same pixels)
    path = csvs.write(tmp_path / "fer2013.csv", csvs.FER_HEADER, rows)

    def imported(batch: int):
        monkeypatch.setattr(services, "BATCH", batch)
        Face.objects.all().delete()
        report = services.faces_import(path=path, fmt="fer2013")
        faces = Face.objects.order_by("source_line").values_list("source_line", "split", "usage")
        labels = dict(Annotation.objects.values_list("face__source_line", "emotion"))
        return report.summary(), [str(e) for e in report.errors], list(faces), labels

    assert imported(2) == imported(1000)
    summary, errors, _, _ = imported(2)
    assert "9 faces created" in summary and "1 already present" in summary and len(errors) == 1
    assert errors[0].startswith("line 6")
