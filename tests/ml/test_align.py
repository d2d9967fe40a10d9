"""Alignment geometry: the Python (ml.align) and browser (static/js/geometry.js) formulas agree, and crops put the
pixels where the matrices say."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from ml import align

ROOT = Path(__file__).resolve().parents[2]


def _cases(n: int = 40) -> list[dict]:
    rng = np.random.default_rng(3)
    cases = []
    for i in range(n):
        framing = align.Framing(
            center=tuple(rng.uniform(40, 60, 2)), distance=float(rng.uniform(25, 55)), rotate=bool(i % 2)
        )
        box = [float(v) for v in (*rng.uniform(0, 400, 2), *rng.uniform(30, 300, 2))]
        prior = align.BoxPrior(
            dx=float(rng.uniform(-0.1, 0.1)), dy=float(rng.uniform(-0.1, 0.1)), k=float(rng.uniform(0.3, 0.6))
        )
        points = (rng.uniform(0, 500, 2) + rng.normal(0, 40, (15, 2))).round(3)
        # the detector's six landmarks on every other pair of cases: they turn a levelling framing's first crop
        landmarks = (rng.uniform(0, 500, 2) + rng.normal(0, 40, (6, 2))).round(3).tolist() if i % 4 < 2 else None
        cases.append(
            {
                "framing": framing.to_dict(),
                "box": box,
                "prior": prior.to_dict(),
                "points": points.tolist(),
                "landmarks": landmarks,
            }
        )
    return cases


def _python(case: dict) -> dict:
    framing = align.Framing.from_dict(case["framing"])
    from_box = align.matrix_from_box(case["box"], align.BoxPrior(**case["prior"]), framing, case["landmarks"])
    from_points = align.matrix_from_points(np.array(case["points"]), framing)
    corners = align.apply(align.invert(from_points), [[-0.5, -0.5], [95.5, -0.5], [95.5, 95.5], [-0.5, 95.5]])
    shift = align.crop_shift(from_box, from_points)
    return {"box": from_box.tolist(), "points": from_points.tolist(), "corners": corners.tolist(), "shift": shift}


def _javascript(cases: list[dict]) -> list[dict]:
    script = f"""
const g = await import({json.dumps((ROOT / "static" / "js" / "geometry.js").as_uri())});
const cases = JSON.parse(process.argv[1]);
const names = {json.dumps(list(__import__("ml.schema", fromlist=["KEYPOINTS"]).KEYPOINTS))};
const indices = g.anchorIndices(names);
const out = cases.map((c) => {{
  const box = {{ x: c.box[0], y: c.box[1], width: c.box[2], height: c.box[3], landmarks: c.landmarks ?? undefined }};
  const fromPoints = g.matrixFromPoints(c.points, indices, c.framing);
  const corners = g.apply(g.invert(fromPoints), [[-0.5, -0.5], [95.5, -0.5], [95.5, 95.5], [-0.5, 95.5]]);
  const fromBox = g.matrixFromBox(box, c.prior, c.framing);
  return {{ box: fromBox, points: fromPoints, corners, shift: g.cropShift(fromBox, fromPoints) }};
}});
console.log(JSON.stringify(out));
"""
    node = shutil.which("node")
    assert node, "node is needed for the browser-geometry test (make test installs the npm packages with it)"
    done = subprocess.run(
        [node, "--input-type=module", "-e", script, json.dumps(cases)], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def test_python_and_browser_compute_the_same_crops():
    cases = _cases()
    for case, js in zip(cases, _javascript(cases), strict=True):
        py = _python(case)
        assert np.allclose(py["box"], js["box"], atol=1e-9)
        assert np.allclose(py["points"], js["points"], atol=1e-9)
        # the same box and points give the same crop: its corners in the source agree far inside 0.5 px
        assert np.abs(np.array(py["corners"]) - np.array(js["corners"])).max() < 1e-6
        assert py["shift"] == pytest.approx(js["shift"], abs=1e-6)  # when both stop re-cropping


@pytest.mark.parametrize("rotate", [False, True])
def test_a_crop_puts_the_pixels_where_its_matrix_says(rotate):
    """A bright dot at a known source point shows up in the crop where ``apply(matrix, point)`` puts it."""
    image = Image.new("L", (640, 480), 0)
    dots = np.array([[300.0, 200.0], [340.0, 260.0], [280.0, 250.0]])
    draw = ImageDraw.Draw(image)
    for x, y in dots:
        # a 3x3 dot centred on pixel (x, y): pixel i covers [i - 0.5, i + 0.5] in these coordinates
        draw.rectangle([x - 1, y - 1, x + 1, y + 1], fill=255)
    tilt = 0.3 if rotate else 0.0
    framing = align.Framing(center=(48.0, 57.0), distance=38.0, rotate=rotate)
    matrix = align.crop_matrix(np.array([310.0, 230.0]), 60.0, tilt, framing)
    crop = align.warp(image, matrix).astype(np.float64)
    # Source coordinates are canvas (edge) coordinates, as in the browser: the dot drawn on pixels x-1..x+1 covers
    # [x - 1, x + 2], so its centre is x + 0.5. Crop pixel j covers crop coordinates [j - 0.5, j + 0.5].
    for expected in align.apply(matrix, dots + 0.5):
        x0, y0 = np.floor(expected).astype(int) - 4
        window = crop[y0 : y0 + 9, x0 : x0 + 9]
        ys, xs = np.mgrid[y0 : y0 + 9, x0 : x0 + 9]
        centroid = np.array([(xs * window).sum(), (ys * window).sum()]) / window.sum()
        assert np.abs(centroid - expected).max() < 0.25


def test_reframing_round_trips_and_keeps_points_with_pixels():
    source, target = align.FACE_FRAMING, align.KEYPOINT_MODEL_FRAMING
    there = align.reframe_matrix(source, target)
    back = align.reframe_matrix(target, source)
    points = np.array([[30.0, 40.0], [60.0, 70.0]])
    assert np.allclose(align.apply(back, align.apply(there, points)), points)
    # the anchors of a face in the source framing land on the target framing's anchors
    half = np.array([0.0, source.distance / 2])
    eye = np.array(source.center) - half
    lip = np.array(source.center) + half
    moved_eye, moved_lip = align.apply(there, [eye, lip])
    assert np.allclose((moved_eye + moved_lip) / 2, target.center) and np.isclose(
        np.linalg.norm(moved_lip - moved_eye), target.distance
    )


def test_a_framing_is_measured_from_the_points_not_assumed():
    """matrix_from_points puts any face's anchors on the framing, whatever its place, size and tilt."""
    rng = np.random.default_rng(0)
    for rotate in (False, True):
        framing = align.Framing(center=(48.0, 57.0), distance=38.0, rotate=rotate)
        points = rng.uniform(100, 300, (15, 2))
        eye, lip = align.anchors(align.apply(align.matrix_from_points(points, framing), points))
        assert np.allclose((eye + lip) / 2, framing.center)
        assert np.isclose(np.linalg.norm(lip - eye), framing.distance)
        if rotate:
            assert np.isclose(eye[0], lip[0])  # the eye-lip axis is vertical


def test_the_box_prior_is_fitted_from_boxes_and_truth():
    rng = np.random.default_rng(1)
    truth = align.BoxPrior(dx=0.03, dy=-0.04, k=0.4)
    boxes, points = [], []
    for _ in range(50):
        side = rng.uniform(50, 200)
        x, y = rng.uniform(0, 300, 2)
        mid = np.array([x + side / 2 + truth.dx * side, y + side / 2 + truth.dy * side])
        half = np.array([0.0, truth.k * side / 2])
        face = np.tile(mid, (15, 1))
        face[list(align.EYES)] = mid - half
        face[list(align.LIPS)] = mid + half
        boxes.append([x, y, side, side])
        points.append(face)
    fitted = align.fit_box_prior(np.array(boxes), np.array(points))
    assert (fitted.dx, fitted.dy, fitted.k) == pytest.approx((truth.dx, truth.dy, truth.k), abs=1e-3)


def test_mirrored_mean_undoes_the_mirror_exactly():
    """A 'model' that finds a fixed asymmetric face: on the mirror image it finds the mirrored face, and un-mirroring
    gives the same points back, so the mean equals the plain prediction (and mirror=False is the plain one)."""
    from ml.schema import FLIP_PERMUTATION

    face = np.random.default_rng(0).uniform(10, 80, (15, 2))
    mirrored_face = face[list(FLIP_PERMUTATION)].copy()
    mirrored_face[:, 0] = 95 - mirrored_face[:, 0]
    crops = np.zeros((2, 96, 96), np.uint8)
    crops[1, :, :10] = 255  # a crop with a marked left edge; its mirror has it on the right

    def points_of(x):
        return np.stack([face if c[:, :10].mean() > 100 or c.max() == 0 else mirrored_face for c in x])

    assert np.allclose(align.mirrored_mean(points_of, crops, mirror=True)[1], face)
    assert np.allclose(align.mirrored_mean(points_of, crops, mirror=False), points_of(crops))


def test_a_levelling_framing_takes_the_first_crops_angle_from_the_detectors_landmarks():
    """A head turned 30 degrees: its landmarks turn the first crop by the same angle, so the face in it is level; a
    framing that keeps the tilt ignores them."""
    upright = np.array([[40.0, 40], [60, 40], [50, 50], [50, 62], [30, 45], [70, 45]])  # eyes, nose, mouth, ears
    t = np.deg2rad(30)
    turned = (upright - 50) @ np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]).T + 50
    prior = align.BoxPrior(dx=0.0, dy=0.0, k=0.5)
    level = align.Framing(center=(48, 57), distance=38, rotate=True)
    matrix = align.matrix_from_box((20, 20, 60, 60), prior, level, turned)
    in_crop = align.apply(matrix, turned)
    eyes = in_crop[1] - in_crop[0]
    assert abs(np.degrees(np.arctan2(eyes[1], eyes[0]))) < 1e-6  # the eye line is horizontal in the crop
    keep = align.matrix_from_box((20, 20, 60, 60), prior, align.Framing(center=(48, 57), distance=38), turned)
    assert np.allclose(
        keep, align.matrix_from_box((20, 20, 60, 60), prior, align.Framing(center=(48, 57), distance=38))
    )


def test_alignment_stops_re_cropping_once_a_re_crop_would_no_longer_move_the_crop():
    """After the first re-crop a face whose crop would move by under ``converged_px`` is not read again; one still
    moving is, up to ``align_steps``."""
    from ml.pipeline import Analyzer

    class Settled:  # a keypoint "model" that always sees the face where the framing puts it: converged at once
        framing = align.KEYPOINT_MODEL_FRAMING
        manifest = {"keypoint_scale": 96}
        calls = 0

        def __call__(self, crops):
            Settled.calls += 1
            eye_y = self.framing.center[1] - self.framing.distance / 2
            lip_y = self.framing.center[1] + self.framing.distance / 2
            points = np.tile([[self.framing.center[0], eye_y]], (15, 1))
            points[13:] = [self.framing.center[0], lip_y]
            return np.tile((points / 96).reshape(1, -1), (len(crops), 1))

    analyzer = Analyzer(Settled(), detector=False)
    image = Image.new("RGB", (200, 200))
    seed = align.matrix_from_box((50, 50, 100, 100), analyzer.box_prior, Settled.framing)
    analyzer.align(image, [seed])
    assert analyzer.align_steps == 2 and Settled.calls == 2  # the first crop and one re-crop, not three passes
    Settled.calls = 0
    analyzer.converged_px = 0.0  # nothing counts as settled: every step runs
    analyzer.align(image, [seed])
    assert Settled.calls == 3
