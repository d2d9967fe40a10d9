import numpy as np
import pytest

from ml.datasets import (
    DatasetError,
    read_faces,
    read_fer2013_csv,
    read_icml_csv,
    read_keypoints_csv,
    sniff_format,
    split,
)
from ml.schema import DEFAULT_LABELS, FER_CLASSES, PRESETS
from tests import csvs


def test_keypoints_reader_reads_good_rows_and_reports_each_bad_row_by_line(tmp_path):
    good = csvs.keypoint_row(0).split(",")
    missing = good.copy()
    missing[4] = ""  # left_eye_inner_corner_x
    outside = good.copy()
    outside[1] = "96.5"
    text = good.copy()
    text[2] = "abc"
    short_image = [*good[:30], "1 2 3"]
    bad_pixel = [*good[:30], " ".join(["7"] * 9215 + ["x"])]
    path = csvs.keypoints_csv(
        tmp_path / "training.csv",
        n=3,
        extra_rows=[",".join(r) for r in (missing, outside, text, short_image, bad_pixel)] + ["1,2,3"],
    )
    data = read_keypoints_csv(path)
    assert len(data) == 3 and data.images.shape == (3, 96, 96) and data.images.dtype == np.uint8
    assert data.points.shape == (3, 15, 2)
    np.testing.assert_allclose(data.points[0], csvs.synthetic_face(0)[1], atol=1e-3)
    reasons = {e.line: e.reason for e in data.errors}
    assert reasons == {
        5: "missing keypoint left_eye_inner_corner_x",
        6: "left_eye_center_y = 96.5 is outside the 96x96 image",
        7: "right_eye_center_x is not a number: 'abc'",
        8: "expected 9216 pixel values (96x96), found 3",
        9: "pixel 9216 is not an integer in 0..255: 'x'",
        10: "expected 31 fields, found 3",
    }


def test_fer_reader_keeps_the_classes_of_the_label_set_and_leaves_out_the_others(tmp_path):
    rows = [csvs.fer_row(code, seed=code) for code in range(7)]
    rows += [csvs.fer_row(9, 1), csvs.fer_row("x!", 1), "3," + " ".join(["1"] * 100) + ",Training"]
    path = csvs.write(tmp_path / "fer2013.csv", csvs.FER_HEADER, rows, gz=True)
    data = read_fer2013_csv(path)  # the default set: FER2013's seven, fear and neutral kept
    assert data.label_names == DEFAULT_LABELS == FER_CLASSES
    assert [data.label_names[i] for i in data.labels] == list(FER_CLASSES) and data.excluded == 0
    assert [(e.line, e.reason) for e in data.errors] == [
        (9, "emotion 9 is out of range 0..6"),
        (10, "emotion: 'x!' is not a class name: a letter, then up to 31 letters, digits or underscores"),
        (11, "expected 2304 pixel values (48x48), found 100"),
    ]
    five = read_fer2013_csv(path, labels=PRESETS["seed-five"])  # the seed's five: fear and neutral left out
    assert [five.label_names[i] for i in five.labels] == ["anger", "disgust", "happiness", "sad", "surprise"]
    assert five.excluded == 2 and len(five.excluded_checksums) == 2
    # 48x48 faces come into the 96 frame by pixel repetition: a 2x2 average gives the file's pixels back exactly.
    original = csvs.synthetic_face(0, side=48)[0]
    np.testing.assert_array_equal(data.images[0].reshape(48, 2, 48, 2).mean(axis=(1, 3)), original)


def test_fer_codes_are_the_documented_classes():
    assert FER_CLASSES == ("anger", "disgust", "fear", "happiness", "sad", "surprise", "neutral")


def test_an_emotion_column_may_name_the_class_and_a_class_outside_the_set_is_a_bad_row_or_added(tmp_path):
    rows = [
        f"{name},{csvs.pixels(csvs.synthetic_face(i, side=48)[0])},Training,S{i}"
        for i, name in enumerate(["contempt", "Happy", "anger", "contempt", "Angry"])
    ]
    path = csvs.write(tmp_path / "named.csv", "emotion,pixels,Usage,subject", rows)
    data = read_faces(path)
    assert [data.label_names[i] for i in data.labels] == ["happiness", "anger", "anger"]  # aliases resolved
    assert [e.line for e in data.errors] == [2, 5]
    assert "'contempt' is not in the label set (anger, disgust, fear, happiness, sad, surprise, neutral)" in str(
        data.errors[0]
    )
    grown = read_faces(path, add_classes=True)
    assert grown.label_names == (*DEFAULT_LABELS, "contempt") and not grown.errors
    assert [grown.label_names[i] for i in grown.labels] == ["contempt", "happiness", "anger", "contempt", "anger"]


def test_relabel_keeps_the_faces_of_the_shared_classes_indexed_into_the_new_set(tmp_path):
    from ml.datasets import relabel

    rows = [csvs.fer_row(code, seed=code) for code in range(7)]
    data = read_faces(csvs.write(tmp_path / "f.csv", csvs.FER_HEADER, rows))
    five = relabel(data, PRESETS["seed-five"])
    assert len(five) == 5 and five.label_names == PRESETS["seed-five"]
    assert [five.label_names[i] for i in five.labels] == ["anger", "disgust", "happiness", "sad", "surprise"]


def test_icml_reader_handles_the_leading_space_header_and_five_codes(tmp_path):
    rows = [csvs.icml_row(c, c, "PublicTest" if c == 4 else "Training") for c in range(5)] + [csvs.icml_row(5, 0)]
    path = csvs.write(tmp_path / "icml_face_data.csv", csvs.ICML_HEADER, rows)
    assert sniff_format(path) == "icml"
    data = read_icml_csv(path, labels=PRESETS["seed-five"])
    assert list(data.labels) == [0, 1, 2, 3, 4] and list(data.usage)[-1] == "PublicTest"
    assert [e.reason for e in data.errors] == ["emotion 5 is out of range 0..4"]
    seven = read_icml_csv(path)  # icml's codes are the seed's five, read into any set by name
    assert [seven.label_names[i] for i in seven.labels] == list(PRESETS["seed-five"])


def test_wrong_columns_or_no_valid_row_fail_naming_the_file(tmp_path):
    wrong = csvs.write(tmp_path / "wrong.csv", "a,b,c", ["1,2,3"])
    with pytest.raises(DatasetError, match=r"wrong\.csv: missing column\(s\) emotion, pixels, Usage"):
        read_fer2013_csv(wrong)
    empty = csvs.write(tmp_path / "bad.csv", csvs.FER_HEADER, ["7,1 2,Training"])
    with pytest.raises(DatasetError, match=r"bad\.csv: no valid fer2013 row .* first problem: line 2"):
        read_fer2013_csv(empty)
    with pytest.raises(DatasetError, match=r"no such file"):
        read_faces(tmp_path / "missing.csv", "fer2013")
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DatasetError, match=r"binary\.csv"):
        read_keypoints_csv(tmp_path / "binary.csv")


def test_standard_split_uses_publictest_rows_and_contiguous_keypoint_blocks(tmp_path):
    rows = [csvs.fer_row(0, i, "PublicTest" if i % 3 == 0 else "Training") for i in range(9)]
    train, val = split(read_fer2013_csv(csvs.write(tmp_path / "f.csv", csvs.FER_HEADER, rows)))
    assert set(val.usage) == {"PublicTest"} and set(train.usage) == {"Training"} and len(val) == 3
    # line 11 repeats the pixels of Training row 1 (line 3): a face the model trains on, so in neither split
    repeat = csvs.fer_row(3, 1, "PublicTest")
    train, val = split(read_fer2013_csv(csvs.write(tmp_path / "r.csv", csvs.FER_HEADER, [*rows, repeat])))
    assert len(train) == 6 and len(val) == 3 and 11 not in val.lines.tolist() + train.lines.tolist()
    kp = read_keypoints_csv(csvs.keypoints_csv(tmp_path / "k.csv", n=40))
    train, val = split(kp)
    assert len(train) + len(val) == 40 and 0 < len(val) < 40
    lines = np.sort(val.lines)
    assert np.all(np.diff(lines)[np.diff(lines) != 1] > 1)  # whole blocks of neighbouring rows
    assert len(np.split(lines, np.where(np.diff(lines) != 1)[0] + 1)) <= 3


def test_a_group_column_is_read_and_the_split_keeps_each_group_on_one_side(tmp_path):
    from ml.datasets import group_folds, group_held_out

    rows = [f"{csvs.fer_row([0, 3, 4][i % 3], i)},S{i // 3:03d}" for i in range(120)]
    path = csvs.write(tmp_path / "lab.csv", "emotion,pixels,Usage,subject", rows)
    data = read_faces(path)
    assert list(data.groups[:4]) == ["S000", "S000", "S000", "S001"]
    train, val = split(data, val_fraction=0.25)
    assert len(val) and len(train)
    train_groups = {g for g in data.groups if g not in set(val.groups)}
    assert set(train.groups) == train_groups and not set(train.groups) & set(val.groups)
    # stable: the same groups on the same side whatever else the file holds, on every read
    again = group_held_out(np.array(["S000", "S017", "S039"]), 0.25)
    assert list(again) == [g in set(val.groups) for g in ["S000", "S017", "S039"]]
    folds = group_folds(data.groups, 5)
    assert sorted(set(folds)) == [0, 1, 2, 3, 4]
    for g in set(data.groups):
        assert len(set(folds[data.groups == g])) == 1
    sizes = np.bincount([folds[list(data.groups).index(g)] for g in set(data.groups)])
    assert sizes.max() - sizes.min() <= 1  # 40 groups dealt round-robin: 8 each
    assert (group_folds(data.groups[::-1], 5)[::-1] == folds).all()  # the order of the rows does not matter


def test_a_group_longer_than_the_limit_is_a_bad_row(tmp_path):
    rows = [f"{csvs.fer_row(0, 1)},{'x' * 101}", f"{csvs.fer_row(3, 2)},S1"]
    data = read_faces(csvs.write(tmp_path / "lab.csv", "emotion,pixels,Usage,subject", rows))
    assert len(data) == 1 and "subject is longer than 100" in str(data.errors[0]) and data.errors[0].line == 2


def test_a_csv_saved_by_excel_with_a_byte_order_mark_reads_like_any_other(tmp_path):
    path = csvs.write(tmp_path / "excel.csv", csvs.FER_HEADER, [csvs.fer_row(3, 1), csvs.fer_row(0, 2)])
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    data = read_faces(path)
    assert data.format == "fer2013" and len(data) == 2 and not data.errors


def test_a_fer_row_with_an_unknown_usage_is_a_bad_row_not_a_silent_import(tmp_path):
    rows = [csvs.fer_row(3, 1, "Nowhere"), csvs.fer_row(0, 2, "PublicTest"), csvs.fer_row(0, 3, "")]
    data = read_faces(csvs.write(tmp_path / "f.csv", csvs.FER_HEADER, rows))
    assert len(data) == 2 and [e.line for e in data.errors] == [2]
    assert "Usage 'Nowhere' is not one of Training, PublicTest, PrivateTest" in data.errors[0].reason


def test_one_endless_line_in_a_small_gzip_is_refused_at_that_line_without_reading_it_whole(tmp_path):
    import gzip
    import resource

    from ml.datasets import DatasetError, read_fer2013_csv

    bomb = tmp_path / "bomb.csv.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as f:  # 300 MB of one pixels field, about 300 KB of gzip
        f.write(b"emotion,pixels,Usage\n0,")
        block = b"1 " * (1 << 20)
        for _ in range(150):
            f.write(block)
        f.write(b",Training\n")
    assert bomb.stat().st_size < 2_000_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(DatasetError, match="line 2 is longer than"):
        read_fer2013_csv(bomb)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 100, grown_mb  # the whole line would be 300 MB of text (1.2 GB as str)
