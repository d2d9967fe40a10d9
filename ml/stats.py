"""Is a candidate model really better than the active one on the same faces? A paired bootstrap says how sure we are.

Both models are scored face by face on the same validation faces (per face: the squared keypoint error, or whether
the emotion was right). Resampling faces with replacement, the same draw for both models, gives the spread of the
difference in the headline metric (RMSE in px, or accuracy): its percentile interval at ``confidence``. A difference
whose interval holds zero (or less than the required margin) is noise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Comparison:
    metric: str  # "rmse_px" or "accuracy"
    n: int  # validation faces both models were scored on
    candidate: float
    active: float
    improvement: float  # how much better the candidate is (px less error, or accuracy more); negative = worse
    ci_low: float  # percentile interval of the improvement
    ci_high: float
    confidence: float
    groups: int | None = None  # with a group bootstrap: how many groups (people) the faces came from

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        unit = " px" if self.metric == "rmse_px" else ""
        word = "better" if self.improvement >= 0 else "worse"
        ci = f"{100 * self.confidence:.0f} % CI [{self.ci_low:+.4f}, {self.ci_high:+.4f}]"
        of = f" of {self.groups} people" if self.groups is not None else ""
        return f"{word} by {abs(self.improvement):.4f}{unit} on {self.n} faces{of} ({ci})"


def _metric(per_face: np.ndarray, metric: str, axis: int = -1) -> np.ndarray:
    mean = per_face.mean(axis=axis)
    return np.sqrt(mean) if metric == "rmse_px" else mean


def paired_bootstrap(
    candidate: np.ndarray,
    active: np.ndarray,
    *,
    metric: str,
    confidence: float = 0.95,
    resamples: int = 4000,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> Comparison:
    """``candidate`` and ``active``: one value per face, in the same face order (squared error for "rmse_px",
    1/0 correct for "accuracy").

    ``groups`` (one name per face): resample whole groups instead of faces (a cluster bootstrap). Frames of one person
    are near-identical, so they are one piece of evidence, not many: resampling faces would make a handful of people
    look like hundreds of independent faces and call noise a gain."""
    if metric not in ("rmse_px", "accuracy"):
        raise ValueError(f"unknown metric {metric!r}")
    candidate, active = np.asarray(candidate, np.float64), np.asarray(active, np.float64)
    if candidate.shape != active.shape or candidate.ndim != 1:
        raise ValueError("candidate and active need one value per face, for the same faces")
    n = len(candidate)
    if n == 0:
        raise ValueError("no faces to compare on")
    sign = -1.0 if metric == "rmse_px" else 1.0  # improvement = less error, or more accuracy
    observed = sign * (_metric(candidate, metric) - _metric(active, metric))
    rng = np.random.default_rng(seed)
    n_groups = None
    if groups is None:
        draws = rng.integers(0, n, size=(resamples, n))
        spread = sign * (_metric(candidate[draws], metric) - _metric(active[draws], metric))
    else:
        # per group: its faces' sums; a draw of groups adds them up (groups differ in size, so sum, then divide)
        _, index = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
        n_groups = int(index.max()) + 1
        sizes = np.bincount(index, minlength=n_groups)
        sums = [np.bincount(index, weights=scores, minlength=n_groups) for scores in (candidate, active)]
        draws = rng.integers(0, n_groups, size=(resamples, n_groups))
        faces = sizes[draws].sum(axis=1)
        means = [s[draws].sum(axis=1) / faces for s in sums]
        if metric == "rmse_px":
            means = [np.sqrt(m) for m in means]
        spread = sign * (means[0] - means[1])
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(spread, [tail, 100 - tail])
    return Comparison(
        metric=metric,
        n=n,
        candidate=float(_metric(candidate, metric)),
        active=float(_metric(active, metric)),
        improvement=float(observed),
        ci_low=float(low),
        ci_high=float(high),
        confidence=confidence,
        groups=n_groups,
    )


def recall_intervals(
    correct: np.ndarray,
    labels: np.ndarray,
    names: tuple[str, ...] | list[str],
    groups: np.ndarray | None = None,
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> dict[str, dict]:
    """Per class: recall (the share of its faces the model got right) with a percentile interval from a bootstrap of
    its groups (people; each face its own group without ``groups``). A class with no face is left out."""
    correct, labels = np.asarray(correct, np.float64), np.asarray(labels, np.int64)
    groups = np.arange(len(labels)).astype(str) if groups is None else np.asarray(groups, dtype=str)
    rng = np.random.default_rng(seed)
    tail = 100 * (1 - confidence) / 2
    out = {}
    for c, name in enumerate(names):
        mask = labels == c
        if not mask.any():
            continue
        _, index = np.unique(groups[mask], return_inverse=True)
        n_groups = int(index.max()) + 1
        sizes = np.bincount(index, minlength=n_groups)
        hits = np.bincount(index, weights=correct[mask], minlength=n_groups)
        draws = rng.integers(0, n_groups, size=(resamples, n_groups))
        spread = hits[draws].sum(axis=1) / sizes[draws].sum(axis=1)
        low, high = np.percentile(spread, [tail, 100 - tail])
        out[str(name)] = {
            "n": int(mask.sum()),
            "groups": n_groups,
            "recall": float(correct[mask].mean()),
            "ci_low": float(low),
            "ci_high": float(high),
        }
    return out
