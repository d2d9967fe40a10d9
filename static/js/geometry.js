// Face alignment geometry, the same formulas as ml/align.py (tests/test_geometry_agreement.py checks they agree).
// A crop is a similarity transform from source pixels to crop pixels, kept as a 2x3 matrix [[a, b, c], [d, e, f]].
// No DOM here: it runs in the browser and under node alike.

// The anchors: the eye-centre midpoint and the lip-centre midpoint, found by keypoint name.
export function anchorIndices(names) {
  const at = (name) => {
    const i = names.indexOf(name);
    if (i < 0) throw new Error(`the keypoint model has no ${name}`);
    return i;
  };
  return {
    eyes: [at("left_eye_center"), at("right_eye_center")],
    lips: [at("mouth_center_top_lip"), at("mouth_center_bottom_lip")],
  };
}

const mean = (points, [i, j]) => [(points[i][0] + points[j][0]) / 2, (points[i][1] + points[j][1]) / 2];

export function anchors(points, indices) {
  return { eye: mean(points, indices.eyes), lip: mean(points, indices.lips) };
}

// framing: {center: [x, y], distance, rotate}; mid and distance in source pixels; angle of the eye-lip axis from
// vertical (radians), used only when the framing rotates.
export function cropMatrix(mid, distance, angle, framing) {
  const scale = framing.distance / distance;
  const theta = framing.rotate ? -angle : 0;
  const a = scale * Math.cos(theta);
  const s = scale * Math.sin(theta);
  return [
    [a, -s, framing.center[0] - (a * mid[0] - s * mid[1])],
    [s, a, framing.center[1] - (s * mid[0] + a * mid[1])],
  ];
}

export function matrixFromPoints(points, indices, framing) {
  const { eye, lip } = anchors(points, indices);
  const ax = lip[0] - eye[0];
  const ay = lip[1] - eye[1];
  const mid = [(eye[0] + lip[0]) / 2, (eye[1] + lip[1]) / 2];
  return cropMatrix(mid, Math.hypot(ax, ay), Math.atan2(-ax, ay), framing);
}

// prior: {dx, dy, k}: anchor midpoint = box centre + (dx, dy) * side, anchor distance = k * side, side = sqrt(w * h).
// box.landmarks (the detector's six, optional): a framing that levels the head takes the first crop's angle from the
// eye line, as ml.align.matrix_from_box does.
export function matrixFromBox(box, prior, framing) {
  const side = Math.sqrt(box.width * box.height);
  const mid = [box.x + box.width / 2 + prior.dx * side, box.y + box.height / 2 + prior.dy * side];
  return cropMatrix(mid, prior.k * side, landmarkAngle(box.landmarks), framing);
}

// the head's tilt: the line from the detector's right-eye landmark to its left-eye one (ml.align.landmark_angle)
export function landmarkAngle(landmarks) {
  if (!landmarks) return 0;
  return Math.atan2(landmarks[1][1] - landmarks[0][1], landmarks[1][0] - landmarks[0][0]);
}

const CROP_CORNERS = [[0, 0], [96, 0], [96, 96], [0, 96]];

// How far (crop pixels) re-cutting with `following` instead of `current` moves the crop's corners: the most a further
// alignment pass would change what the model reads (ml.align.crop_shift).
export function cropShift(current, following) {
  const moved = apply(following, apply(invert(current), CROP_CORNERS));
  return Math.max(...moved.map(([x, y], i) => Math.hypot(x - CROP_CORNERS[i][0], y - CROP_CORNERS[i][1])));
}

export function apply(m, points) {
  return points.map(([x, y]) => [m[0][0] * x + m[0][1] * y + m[0][2], m[1][0] * x + m[1][1] * y + m[1][2]]);
}

export function invert(m) {
  const det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
  const a = m[1][1] / det;
  const b = -m[0][1] / det;
  const d = -m[1][0] / det;
  const e = m[0][0] / det;
  return [
    [a, b, -(a * m[0][2] + b * m[1][2])],
    [d, e, -(d * m[0][2] + e * m[1][2])],
  ];
}

// The canvas transform that draws the source so that it lands in the crop (see ml.align.warp for the convention:
// crop pixel i covers crop coordinates [i - 0.5, i + 0.5], source coordinates are canvas coordinates).
export function canvasTransform(m) {
  // crop canvas coordinate = crop coordinate + 0.5
  return [m[0][0], m[1][0], m[0][1], m[1][1], m[0][2] + 0.5, m[1][2] + 0.5];
}

// Where the upright crop's square lies in the source (canvas coordinates), for drawing its outline.
export function sourceSquare(m, size) {
  const [[x0, y0], [x1, y1]] = apply(invert(m), [[-0.5, -0.5], [size - 0.5, size - 0.5]]);
  return { x: Math.min(x0, x1), y: Math.min(y0, y1), side: Math.abs(x1 - x0) };
}
