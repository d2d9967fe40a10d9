"""The paired comparison behind automatic promotion, on crafted inputs."""

import numpy as np
import pytest

from ml.stats import paired_bootstrap


def test_a_clear_keypoint_win_has_an_interval_above_zero():
    rng = np.random.default_rng(0)
    active = rng.gamma(2.0, 1.5, 400)  # squared errors per face
    candidate = active * 0.6  # every face 40 % less squared error
    c = paired_bootstrap(candidate, active, metric="rmse_px")
    assert c.n == 400 and c.candidate < c.active
    assert c.improvement == pytest.approx(np.sqrt(active.mean()) - np.sqrt(candidate.mean()))
    assert 0 < c.ci_low < c.improvement < c.ci_high
    assert c.describe().startswith("better by") and "95 % CI" in c.describe()


def test_a_tie_has_an_interval_around_zero():
    rng = np.random.default_rng(1)
    active = rng.gamma(2.0, 1.5, 300)
    candidate = rng.permutation(active)  # the same errors, on other faces: no real difference
    c = paired_bootstrap(candidate, active, metric="rmse_px")
    assert c.ci_low < 0 < c.ci_high


def test_accuracy_on_ten_faces_is_never_sure():
    active = np.array([1, 0, 1, 1, 0, 1, 0, 1, 1, 0], float)
    candidate = np.array([1, 1, 1, 1, 0, 1, 0, 1, 1, 0], float)  # one more right
    c = paired_bootstrap(candidate, active, metric="accuracy")
    assert c.improvement == pytest.approx(0.1) and c.ci_low <= 0


def test_a_clear_accuracy_win_and_a_loss():
    rng = np.random.default_rng(2)
    active = (rng.random(1000) < 0.70).astype(float)
    better = np.where(rng.random(1000) < 0.5, 1.0, active)  # half the faces fixed
    assert paired_bootstrap(better, active, metric="accuracy").ci_low > 0
    assert paired_bootstrap(active, better, metric="accuracy").ci_high < 0


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="same faces"):
        paired_bootstrap(np.ones(3), np.ones(4), metric="accuracy")
    with pytest.raises(ValueError, match="no faces"):
        paired_bootstrap(np.ones(0), np.ones(0), metric="accuracy")
    with pytest.raises(ValueError, match="unknown metric"):
        paired_bootstrap(np.ones(3), np.ones(3), metric="f1")


def test_a_group_bootstrap_counts_people_not_their_near_identical_frames():
    """Ten people, thirty frames each: a gain on two people is two pieces of evidence, not sixty faces'."""
    groups = np.repeat([f"person {i}" for i in range(10)], 30)
    active = np.tile(np.r_[np.ones(15), np.zeros(15)], 10)
    candidate = active.copy()
    candidate[np.isin(groups, ["person 0", "person 1"])] = 1.0  # all of two people's frames now right
    by_face = paired_bootstrap(candidate, active, metric="accuracy")
    by_person = paired_bootstrap(candidate, active, metric="accuracy", groups=groups)
    assert by_face.improvement == by_person.improvement == pytest.approx(0.1)
    assert by_face.ci_low > 0  # faces as independent: "sure"
    assert by_person.ci_low <= 0 and by_person.groups == 10  # people: within noise
    assert "of 10 people" in by_person.describe()


def test_a_group_bootstrap_sees_a_gain_on_most_people():
    rng = np.random.default_rng(3)
    groups = np.repeat([f"p{i}" for i in range(30)], 8)
    active = (rng.random(240) < 0.8).astype(float)
    candidate = np.where(rng.random(240) < 0.7, 1.0, active)
    c = paired_bootstrap(candidate, active, metric="accuracy", groups=groups)
    assert c.groups == 30 and c.ci_low > 0
    # unequal group sizes are weighted by their faces: the point estimate is the plain mean over faces
    sizes = np.r_[np.full(10, 2), np.full(5, 20)]
    groups = np.repeat([f"g{i}" for i in range(15)], sizes)
    errors = rng.gamma(2.0, 1.0, len(groups))
    c = paired_bootstrap(errors * 0.5, errors, metric="rmse_px", groups=groups)
    assert c.active == pytest.approx(np.sqrt(errors.mean())) and c.ci_low > 0
