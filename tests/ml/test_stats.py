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
