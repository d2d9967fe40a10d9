// MediaPipe's BlazeFace (full range) in TF.js: the npm package's model rebuilt by `python -m ml detector`, decoded as
// ml/detect.py decodes it (SSD anchors, sigmoid scores, weighted non-maximum suppression at IoU 0.3). The picture is
// letterboxed into a square first, as MediaPipe does.
import * as tf from "@tensorflow/tfjs";

// TensorFlow resizes with half-pixel centres; TF.js's own UpSampling2D does not (see ml/detect.py).
class HalfPixelUpSampling2D extends tf.layers.Layer {
  static className = "HalfPixelUpSampling2D";

  constructor(config) {
    super({ name: config.name, trainable: false });
    this.size = config.size || [2, 2];
  }

  computeOutputShape(shape) {
    return [shape[0], shape[1] * this.size[0], shape[2] * this.size[1], shape[3]];
  }

  call(inputs) {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    return tf.image.resizeBilinear(x, [x.shape[1] * this.size[0], x.shape[2] * this.size[1]], false, true);
  }

  getConfig() {
    return { ...super.getConfig(), size: this.size };
  }
}
tf.serialization.registerClass(HalfPixelUpSampling2D);

function anchors({ input, strides, anchors_per_layer: perLayer }) {
  const out = [];
  for (let layer = 0; layer < strides.length;) {
    const stride = strides[layer];
    let same = 0;
    while (layer + same < strides.length && strides[layer + same] === stride) same++;
    const grid = input / stride;
    for (let y = 0; y < grid; y++) {
      for (let x = 0; x < grid; x++) {
        for (let k = 0; k < perLayer * same; k++) out.push([(x + 0.5) / grid, (y + 0.5) / grid]);
      }
    }
    layer += same;
  }
  return out;
}

export async function loadBlazeFace(modelUrl, specUrl) {
  const [model, spec] = await Promise.all([
    tf.loadLayersModel(modelUrl),
    fetch(specUrl).then((r) => r.json()),
  ]);
  return { model, spec, anchors: anchors(spec) };
}

const canvas = document.createElement("canvas");

function iou(a, b) {
  const w = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
  const h = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
  const inter = Math.max(0, w) * Math.max(0, h);
  const area = (r) => (r[2] - r[0]) * (r[3] - r[1]);
  return inter / Math.max(area(a) + area(b) - inter, 1e-9);
}

// -> [{x, y, width, height, score}] in the source's pixels, best first.
export function detectBlazeFace(detector, source, width, height, { pad = 0, minScore = 0.5 } = {}) {
  const size = detector.spec.input;
  const side = Math.round(Math.max(width, height) * (1 + 2 * pad));
  const ox = Math.floor((side - width) / 2);
  const oy = Math.floor((side - height) / 2);
  canvas.width = canvas.height = size;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.fillStyle = "black";
  context.fillRect(0, 0, size, size);
  context.imageSmoothingEnabled = true;
  context.imageSmoothingQuality = "high";
  const scale = size / side;
  context.drawImage(source, ox * scale, oy * scale, width * scale, height * scale);
  const [raw, logits] = tf.tidy(() => {
    const x = tf.browser.fromPixels(canvas).toFloat().div(127.5).sub(1).expandDims(0);
    return detector.model.predict(x).map((t) => t.dataSync());
  });
  const candidates = [];
  detector.anchors.forEach(([ax, ay], i) => {
    const score = 1 / (1 + Math.exp(-Math.max(-100, Math.min(100, logits[i]))));
    if (score < minScore) return;
    const r = raw.subarray(16 * i, 16 * i + 16);
    const cx = r[0] / size + ax;
    const cy = r[1] / size + ay;
    const w = r[2] / size;
    const h = r[3] / size;
    // six landmarks (right eye, left eye, nose tip, mouth centre, right ear, left ear), relative to the anchor
    const marks = [0, 1, 2, 3, 4, 5].map((k) => [r[4 + 2 * k] / size + ax, r[5 + 2 * k] / size + ay]);
    candidates.push({ score, box: [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], marks });
  });
  candidates.sort((a, b) => b.score - a.score);
  const faces = [];
  while (candidates.length) {
    const best = candidates[0];
    const group = candidates.filter((c) => iou(best.box, c.box) > 0.3);
    const total = group.reduce((s, c) => s + c.score, 0);
    const box = [0, 1, 2, 3].map((k) => group.reduce((s, c) => s + c.box[k] * c.score, 0) / total);
    const landmarks = [0, 1, 2, 3, 4, 5].map((k) => [0, 1].map((a) => group.reduce((s, c) => s + c.marks[k][a] * c.score, 0) / total * side - (a ? oy : ox)));
    faces.push({ x: box[0] * side - ox, y: box[1] * side - oy, width: (box[2] - box[0]) * side, height: (box[3] - box[1]) * side, score: best.score, landmarks });
    for (const c of group) candidates.splice(candidates.indexOf(c), 1);
  }
  return faces;
}
