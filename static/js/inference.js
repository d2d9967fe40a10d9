// Manifest -> models -> predictions, all in the browser. Everything about the models (URLs, labels, keypoint names,
// skeleton, input size, normalization) comes from /api/models/active/; nothing is hard-coded here.
import * as tf from "@tensorflow/tfjs";
import { setWasmPaths } from "@tensorflow/tfjs-backend-wasm";
import * as faceapi from "face-api";

import { api } from "./api.js";

export { tf, faceapi };
const VENDOR = window.STUDIO.vendor;
export const FRAME = 96;
// Detector box -> the square crop the models were trained on (eyes near y=38, mouth near y=76 of 96).
const FRAMING = { scale: 1.45, dy: -0.08 };

export async function initBackend(preferred = "wasm") {
  setWasmPaths(`${VENDOR}@tensorflow/tfjs-backend-wasm/dist/`);
  for (const name of [...new Set([preferred, "wasm", "webgl", "cpu"])]) {
    try {
      if (await tf.setBackend(name)) {
        await tf.ready();
        return tf.getBackend();
      }
    } catch (err) {
      console.warn(`TF.js backend ${name} unavailable: ${err.message}`);
    }
  }
  throw new Error("No TF.js backend could start in this browser.");
}

export async function loadManifest() {
  const { data } = await api("/api/models/active/");
  if (!data.keypoints || !data.emotion) {
    throw new Error("No active model for " + (!data.keypoints ? "keypoints" : "emotion") + ": an admin must register one.");
  }
  return data;
}

export async function loadModels(manifest) {
  const [keypoints, emotion] = await Promise.all([
    tf.loadLayersModel(manifest.keypoints.model_url),
    tf.loadLayersModel(manifest.emotion.model_url),
  ]);
  // Warm up once so the first real frame is not the slow one.
  tf.tidy(() => {
    const x = tf.zeros([1, FRAME, FRAME, 1]);
    keypoints.predict(x).dataSync();
    emotion.predict(x).dataSync();
  });
  return { keypoints, emotion, manifest };
}

export async function loadDetector() {
  await faceapi.nets.tinyFaceDetector.loadFromUri(`${VENDOR}@vladmandic/face-api/model`);
  return new faceapi.TinyFaceDetectorOptions({ inputSize: 320, scoreThreshold: 0.45 });
}

export async function detectFaces(source, options) {
  const found = await faceapi.detectAllFaces(source, options);
  return found.map((d) => ({ x: d.box.x, y: d.box.y, width: d.box.width, height: d.box.height, score: d.score }));
}

export function cropSquare(box) {
  const side = FRAMING.scale * Math.max(box.width, box.height);
  const cx = box.x + box.width / 2;
  const cy = box.y + box.height / 2 + FRAMING.dy * box.height;
  return { x: cx - side / 2, y: cy - side / 2, side };
}

const cropCanvas = document.createElement("canvas");
cropCanvas.width = cropCanvas.height = FRAME;
const cropContext = cropCanvas.getContext("2d", { willReadFrequently: true });

// Source region -> the 96x96 grey frame as integers 0..255 (ITU-R 601 luma, as the server computes it).
export function greyFrame(source, crop) {
  cropContext.imageSmoothingEnabled = true;
  cropContext.imageSmoothingQuality = "high";
  cropContext.fillStyle = "black";
  cropContext.fillRect(0, 0, FRAME, FRAME);
  cropContext.drawImage(source, crop.x, crop.y, crop.side, crop.side, 0, 0, FRAME, FRAME);
  const rgba = cropContext.getImageData(0, 0, FRAME, FRAME).data;
  const grey = new Float32Array(FRAME * FRAME);
  for (let i = 0; i < grey.length; i++) {
    grey[i] = Math.round(0.299 * rgba[4 * i] + 0.587 * rgba[4 * i + 1] + 0.114 * rgba[4 * i + 2]);
  }
  return grey;
}

// A grey frame as a PNG blob, for "send for labeling".
export async function greyPng(grey) {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = FRAME;
  const context = canvas.getContext("2d");
  const image = context.createImageData(FRAME, FRAME);
  for (let i = 0; i < grey.length; i++) {
    image.data.set([grey[i], grey[i], grey[i], 255], 4 * i);
  }
  context.putImageData(image, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

function mirror(grey) {
  const out = new Float32Array(grey.length);
  for (let y = 0; y < FRAME; y++) {
    for (let x = 0; x < FRAME; x++) out[y * FRAME + x] = grey[y * FRAME + (FRAME - 1 - x)];
  }
  return out;
}

// Run both models on a batch of grey frames. Returns per face {points: [[x, y] x15] in the 96 frame, probabilities}.
export function predict(models, greys) {
  const { manifest } = models;
  const scale = manifest.keypoints.normalization.pixel_scale;
  const n = greys.length;
  const input = new Float32Array(n * FRAME * FRAME);
  greys.forEach((g, i) => input.set(g, i * FRAME * FRAME));
  const t0 = performance.now();
  const flat = tf.tidy(() => models.keypoints.predict(tf.tensor4d(input, [n, FRAME, FRAME, 1]).mul(scale)).dataSync());
  const t1 = performance.now();
  const probs = tf.tidy(() => models.emotion.predict(tf.tensor4d(input, [n, FRAME, FRAME, 1]).mul(scale)).dataSync());
  const t2 = performance.now();
  const k = manifest.keypoints.keypoint_scale;
  const count = manifest.keypoints.keypoint_names.length;
  const labels = manifest.emotion.labels.length;
  const faces = greys.map((_, i) => ({
    points: Array.from({ length: count }, (_, j) => [flat[i * 2 * count + 2 * j] * k, flat[i * 2 * count + 2 * j + 1] * k]),
    probabilities: Array.from(probs.slice(i * labels, (i + 1) * labels)),
  }));
  return { faces, ms: { keypoints: (t1 - t0) / n, emotion: (t2 - t1) / n } };
}

// How unsure the models are about one face: emotion = 1 - top probability; keypoints = mean distance (px) between
// the prediction and the un-mirrored prediction on the mirrored face (a confident model agrees with itself).
export function uncertainty(models, grey, face) {
  const perm = models.manifest.keypoints.flip_permutation;
  const mirrored = predict(models, [mirror(grey)]).faces[0].points;
  let total = 0;
  face.points.forEach(([x, y], j) => {
    const [mx, my] = mirrored[perm[j]];
    total += Math.hypot(x - (FRAME - 1 - mx), y - my);
  });
  return { keypoints: total / face.points.length, emotion: 1 - Math.max(...face.probabilities) };
}

// Draw the skeleton and points of one face; `toCanvas` maps a 96-frame point to canvas pixels.
export function drawSkeleton(context, points, skeleton, toCanvas, { color = "#35e0a1", selected = -1, radius = 3 } = {}) {
  context.save();
  context.lineWidth = Math.max(1.5, radius / 2);
  context.strokeStyle = color;
  context.beginPath();
  for (const [a, b] of skeleton) {
    const [ax, ay] = toCanvas(points[a]);
    const [bx, by] = toCanvas(points[b]);
    context.moveTo(ax, ay);
    context.lineTo(bx, by);
  }
  context.stroke();
  points.forEach((p, i) => {
    const [x, y] = toCanvas(p);
    context.beginPath();
    context.arc(x, y, i === selected ? radius * 1.8 : radius, 0, 2 * Math.PI);
    context.fillStyle = i === selected ? "#ffcc00" : color;
    context.fill();
    context.strokeStyle = "#0b1a12";
    context.lineWidth = 1;
    context.stroke();
  });
  context.restore();
}
