"""The label set is data: changed by staff (page, API, command line), never changing what a stored label means."""

import pytest
from django.core.management import call_command

from ml.schema import DEFAULT_LABELS, PRESETS
from tests import factories
from webapp.faces.labeling.selectors import current_labels
from webapp.faces.labeling.services import annotation_submit
from webapp.labels.models import LabelSetChange
from webapp.labels.selectors import label_set

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(media):
    return media


def test_the_default_set_is_fer2013s_seven_until_someone_changes_it():
    assert label_set().labels == DEFAULT_LABELS and label_set().change is None and not label_set().retired


@pytest.mark.parametrize(("role", "status"), [("anonymous", 403), ("labeler", 403), ("staff", 200)])
def test_anyone_reads_the_set_and_only_staff_change_it(client_for, role, status):
    client = client_for(role)
    assert client.get("/api/labelsets/emotion/").json()["labels"] == list(DEFAULT_LABELS)
    response = client.put("/api/labelsets/emotion/", {"labels": [*DEFAULT_LABELS, "contempt"]}, format="json")
    assert response.status_code == status
    assert ("contempt" in label_set().labels) == (status == 200)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"labels": ["anger", "anger", "sad"]}, "anger named twice"),
        ({"labels": ["anger"]}, "2 to 50 classes"),
        ({"labels": ["anger", "<b>x</b>"]}, "is not a class name"),
        ({"labels": ["anger", "sad"], "preset": "seed-five"}, "send labels or preset"),
        ({"preset": "nine"}, "is not a valid choice"),
        ({}, "send labels or preset"),
    ],
)
def test_a_bad_set_is_a_400_and_changes_nothing(client_for, body, message):
    response = client_for("staff").put("/api/labelsets/emotion/", body, format="json")
    assert response.status_code == 400 and message in response.json()["detail"]
    assert not LabelSetChange.objects.exists()


def test_changing_the_set_never_changes_a_stored_label(client_for, capsys):
    """Labels are stored by key: every old label keeps its meaning through an addition, a reorder, a retirement,
    a preset and back; a retired class is not offered (a new label of it is refused) and trains nothing."""
    faces = [factories.face() for _ in DEFAULT_LABELS]
    labeler = factories.user("labeler")
    for face, key in zip(faces, DEFAULT_LABELS, strict=True):
        annotation_submit(face=face, author=labeler, emotion=key)
    before = current_labels(task="emotion")
    staff = client_for("staff")

    call_command("labelset", "emotion", "--add", "contempt", "Pain")
    assert capsys.readouterr().out.splitlines()[0] == ", ".join([*DEFAULT_LABELS, "contempt", "pain"])
    staff.put("/api/labelsets/emotion/", {"labels": ["pain", "neutral", *DEFAULT_LABELS[:-1]]}, format="json")
    call_command("labelset", "emotion", "--retire", "fear")
    assert label_set().labels == ("pain", "neutral", "anger", "disgust", "happiness", "sad", "surprise")
    assert set(label_set().retired) == {"fear", "contempt"}
    assert current_labels(task="emotion") == before  # every old label, as it was
    refused = client_for("labeler").post(f"/api/faces/{faces[0].pk}/annotations/", {"emotion": "fear"}, format="json")
    assert refused.status_code == 400 and "must be a class of the label set (pain, neutral" in refused.json()["detail"]

    from webapp.faces.labeling.selectors import training_set

    data = training_set(task="emotion")  # the fear face trains nothing now; the others by their key's new index
    assert data.label_names == label_set().labels and len(data.targets) == len(DEFAULT_LABELS) - 1
    assert sorted(data.label_names[i] for i in data.targets) == sorted(k for k in DEFAULT_LABELS if k != "fear")

    call_command("labelset", "emotion", "--preset", "seed-five")
    assert label_set().labels == PRESETS["seed-five"] and current_labels(task="emotion") == before
    call_command("labelset", "emotion", "--preset", "fer-seven")
    assert label_set().labels == DEFAULT_LABELS and current_labels(task="emotion") == before
    history = list(LabelSetChange.objects.order_by("id").values_list("note", flat=True))
    assert history[0] == "added contempt, pain" and history[-1] == "preset fer-seven" and len(history) == 5


def test_the_command_serves_the_version_of_a_preset(capsys, tiny_exports, settings, tmp_path):
    """`labelset emotion --preset seed-five --serve`: the seed's five stay one command away when a version of
    exactly those classes is registered (the shipped seed-five baseline)."""
    import shutil

    from ml.export import export_tfjs
    from ml.models import build_emotion_model
    from webapp.registry.selectors import active_version
    from webapp.registry.services import baseline_register

    shipped = tmp_path / "shipped"
    shutil.copytree(tiny_exports, shipped)
    five = PRESETS["seed-five"]
    export_tfjs(build_emotion_model(num_classes=5), shipped / "emotion-seed-five", task="emotion", labels=five)
    settings.BASELINE_MODELS_DIR = shipped
    versions = baseline_register()
    assert [(v.kind, v.number) for v in versions] == [("keypoints", 1), ("emotion", 1), ("emotion", 2)]
    assert active_version(kind="emotion").number == 1  # the default, seven-class baseline is served
    assert baseline_register() == []  # registered once
    call_command("labelset", "emotion", "--preset", "seed-five", "--serve")
    assert active_version(kind="emotion").number == 2 and "serving emotion v2" in capsys.readouterr().out


def test_a_million_names_are_refused_by_their_count_before_any_name_is_read(client_for):
    from webapp.labels import services

    names = [f"c{i}" for i in range(1_000_000)]
    response = client_for("staff").put("/api/labelsets/emotion/", {"labels": names}, format="json")
    assert response.status_code == 400 and "no more than 50" in response.json()["detail"]
    with pytest.raises(Exception, match="2 to 50 classes, got 1000000"):
        services.labelset_change(labels=names)
    # the duplicate check is a set now: 50 names with two alike are told at once
    with pytest.raises(Exception, match="c1 named twice"):
        services.labelset_change(labels=["c1", *[f"c{i}" for i in range(1, 49)]])
