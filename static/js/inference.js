// Manifest -> models -> predictions, all in the browser. Everything about the models (URLs, labels, keypoint names,
// skeleton, input size, normalization) comes from /api/models/active/; nothing is hard-coded here.
import * as tf from "@tensorflow/tfjs";
import { setWasmPaths } from "@tensorflow/tfjs-backend-wasm";
import * as faceapi from "face-api";

import { api } from "./api.js";

import { detectBlazeFace, loadBlazeFace } from "./blazeface.js";
import * as geometry from "./geometry.js";

export { tf, faceapi, geometry };
const VENDOR = window.STUDIO.vendor;
export const FRAME = 96;

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

// The detector and its settings come from the manifest's `pipeline` (ml/align.py), like the models' framing.
export async function loadDetector(pipeline) {
  const settings = pipeline.detector;
  if (settings.name !== "blazeface") throw new Error(`unknown detector ${settings.name}`);
  return { settings, blazeface: await loadBlazeFace(settings.model_url, settings.spec_url) };
}

// Faces that fill the picture are found more often inside a black border, small ones less often: the detector runs on
// the picture as it is and, when it finds nothing, once more inside a border of `pad` x its longer side.
export async function detectFaces(source, detector) {
  const { width, height } = sourceSize(source);
  const { settings } = detector;
  const run = (pad) => detectBlazeFace(detector.blazeface, source, width, height, { pad, minScore: settings.score_threshold });
  const plain = run(0);
  return plain.length || settings.pad <= 0 ? plain : run(settings.pad);
}

export function sourceSize(source) {
  return {
    width: source.videoWidth || source.naturalWidth || source.width,
    height: source.videoHeight || source.naturalHeight || source.height,
  };
}

const cropCanvas = document.createElement("canvas");
cropCanvas.width = cropCanvas.height = FRAME;
const cropContext = cropCanvas.getContext("2d", { willReadFrequently: true });

// The crop a 2x3 source->crop matrix describes, as the 96x96 grey frame of integers 0..255 (ITU-R 601 luma, as the
// server computes it); outside the source is black.
export function greyFrame(source, matrix) {
  cropContext.setTransform(1, 0, 0, 1, 0, 0);
  cropContext.fillStyle = "black";
  cropContext.fillRect(0, 0, FRAME, FRAME);
  cropContext.imageSmoothingEnabled = true;
  cropContext.imageSmoothingQuality = "high";
  cropContext.setTransform(...geometry.canvasTransform(matrix));
  cropContext.drawImage(source, 0, 0);
  cropContext.setTransform(1, 0, 0, 1, 0, 0);
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

function run(model, greys, scale) {
  const n = greys.length;
  const input = new Float32Array(n * FRAME * FRAME);
  greys.forEach((g, i) => input.set(g, i * FRAME * FRAME));
  return tf.tidy(() => model.predict(tf.tensor4d(input, [n, FRAME, FRAME, 1]).mul(scale)).dataSync());
}

// Keypoint model on a batch of grey frames -> per face 15 [x, y] in the 96 frame.
export function predictPoints(models, greys) {
  const { keypoints } = models.manifest;
  const flat = run(models.keypoints, greys, keypoints.normalization.pixel_scale);
  const count = keypoints.keypoint_names.length;
  const k = keypoints.keypoint_scale;
  return greys.map((_, i) => Array.from({ length: count }, (_, j) => [flat[i * 2 * count + 2 * j] * k, flat[i * 2 * count + 2 * j + 1] * k]));
}

// Emotion model on a batch of grey frames -> per face the probabilities in the manifest's label order.
export function predictEmotion(models, greys) {
  const { emotion } = models.manifest;
  const probs = run(models.emotion, greys, emotion.normalization.pixel_scale);
  const labels = emotion.labels.length;
  return greys.map((_, i) => Array.from(probs.slice(i * labels, (i + 1) * labels)));
}

// The one path every picture takes: detector -> first crop from the detector box -> keypoint model -> re-crop on the
// predicted anchors (pipeline.detector.align_steps times) -> keypoints in source pixels -> the emotion model's own
// crop from the same anchors. Framings, detector settings and the box prior come from the manifest (ml/align.py).
export async function createAnalyzer({ backend = "wasm", detector: withDetector = true } = {}) {
  const backendName = await initBackend(backend);
  const manifest = await loadManifest();
  const [models, detector] = await Promise.all([
    loadModels(manifest), withDetector ? loadDetector(manifest.pipeline) : null,
  ]);
  const indices = geometry.anchorIndices(manifest.keypoints.keypoint_names);
  const { pipeline } = manifest;
  const kpFraming = manifest.keypoints.framing;
  const emFraming = manifest.emotion.framing;
  const faceFraming = pipeline.face_framing; // how stored faces are cut
  let tracks = []; // the previous video frame's faces: their points seed the next frame's crops
  let framesSinceDetection = Infinity;

  // Crops from seed matrices -> aligned faces. Batches every face of the frame through each model call.
  function align(source, matrices, ms, steps) {
    let points = [];
    let greys = [];
    for (let step = 0; step <= steps; step++) {
      if (step > 0) {
        const following = points.map((p) => geometry.matrixFromPoints(p, indices, kpFraming));
        // after the first re-crop, another only while it would still move some face's crop (ml/pipeline.py)
        const converged = pipeline.detector.converged_px ?? 0;
        if (step > 1 && following.every((f, i) => geometry.cropShift(matrices[i], f) < converged)) break;
        matrices = following;
      }
      greys = matrices.map((m) => greyFrame(source, m));
      const t = performance.now();
      const crop = matrices.length ? predictPoints(models, greys) : [];
      ms.keypoints += performance.now() - t;
      points = crop.map((p, i) => geometry.apply(geometry.invert(matrices[i]), p));
    }
    return { points, greys, matrices };
  }

  function finish(source, aligned, boxes, ms) {
    const emMatrices = aligned.points.map((p) => geometry.matrixFromPoints(p, indices, emFraming));
    const emGreys = emMatrices.map((m) => greyFrame(source, m));
    const t = performance.now();
    const probabilities = emGreys.length ? predictEmotion(models, emGreys) : [];
    ms.emotion += performance.now() - t;
    return aligned.points.map((points, i) => {
      const stored = geometry.matrixFromPoints(points, indices, faceFraming);
      return {
        box: boxes[i],
        points,
        probabilities: probabilities[i],
        crop: { matrix: aligned.matrices[i], grey: aligned.greys[i], points: geometry.apply(aligned.matrices[i], points) },
        emotionCrop: { matrix: emMatrices[i], grey: emGreys[i] },
        stored: { matrix: stored, grey: greyFrame(source, stored), points: geometry.apply(stored, points) },
      };
    });
  }

  function carryBox(box, before, after) {
    const k = (after.width + after.height) / Math.max(1e-6, before.width + before.height);
    const cx = after.x + after.width / 2 + (box.x + box.width / 2 - before.x - before.width / 2) * k;
    const cy = after.y + after.height / 2 + (box.y + box.height / 2 - before.y - before.height / 2) * k;
    const width = box.width * k, height = box.height * k;
    return { x: cx - width / 2, y: cy - height / 2, width, height, score: box.score };
  }

  function boxOf(points) {
    const xs = points.map((p) => p[0]);
    const ys = points.map((p) => p[1]);
    const x = Math.min(...xs);
    const y = Math.min(...ys);
    return { x, y, width: Math.max(...xs) - x, height: Math.max(...ys) - y };
  }

  // analyze(source, {video: true}) reuses the previous frame's faces and runs the detector only every
  // pipeline.redetect_every frames (or when no face is being followed); `detect` decides instead (a recording's
  // schedule, in seconds of video). `moves`: how far each followed face is expected to have moved since its frame
  // ([dx, dy] px, its track's velocity: video.js Tracker.expected); its points and box move so before they seed or match.
  async function analyze(source, { video = false, detect: wanted, moves } = {}) {
    const t0 = performance.now();
    const ms = { detect: 0, keypoints: 0, emotion: 0 };
    const { width, height } = sourceSize(source);
    let seeds = [];
    let boxes = [];
    let seedPoints = [];
    const detect = !video || !tracks.length || (wanted ?? framesSinceDetection + 1 >= pipeline.redetect_every);
    if (video && moves?.length === tracks.length) {
      tracks = tracks.map((t, i) => {
        const [dx, dy] = moves[i];
        return { points: t.points.map(([x, y]) => [x + dx, y + dy]), box: { ...t.box, x: t.box.x + dx, y: t.box.y + dy } };
      });
    }
    if (detect) {
      const found = await detectFaces(source, detector);
      ms.detect = performance.now() - t0;
      framesSinceDetection = 0;
      // A detection that lies on a followed face keeps that face's alignment (it is better than a box guess).
      for (const box of found) {
        const cx = box.x + box.width / 2;
        const cy = box.y + box.height / 2;
        // ... unless the two centres lie further apart than follow_seed_shift of the detection's size: that face
        // slipped (fast, between detector runs) and its points would seed the crop where it was (ml.pipeline._near)
        const near = (t) => Math.hypot(cx - t.box.x - t.box.width / 2, cy - t.box.y - t.box.height / 2) <= (pipeline.follow_seed_shift * (box.width + box.height)) / 2;
        const track = video && tracks.find((t) => cx > t.box.x && cx < t.box.x + t.box.width && cy > t.box.y && cy < t.box.y + t.box.height && near(t));
        seeds.push(track ? geometry.matrixFromPoints(track.points, indices, kpFraming) : geometry.matrixFromBox(box, pipeline.detector.box_prior, kpFraming));
        boxes.push(box);
      }
    } else {
      framesSinceDetection += 1;
      seeds = tracks.map((t) => geometry.matrixFromPoints(t.points, indices, kpFraming));
      boxes = tracks.map((t) => t.box);
      seedPoints = tracks.map((t) => t.points);
    }
    // A followed face's seed is last frame's alignment: one pass refines it (each frame is another step).
    const aligned = align(source, seeds, ms, detect ? pipeline.detector.align_steps : pipeline.follow_align_steps);
    const all = finish(source, aligned, boxes, ms);
    // a followed face's box: its last detector box carried along with its points (ml.pipeline.carry_box)
    if (!detect) all.forEach((f, i) => { f.box = carryBox(boxes[i], boxOf(seedPoints[i]), boxOf(f.points)); });
    const faces = all.filter((face) => {
      // A followed face that left the picture (or collapsed) is dropped; the detector finds it again.
      const b = boxOf(face.points);
      return b.width > 2 && b.x + b.width > 0 && b.y + b.height > 0 && b.x < width && b.y < height;
    });
    tracks = video ? faces.map((f) => ({ points: f.points, box: f.box })) : [];
    const n = Math.max(1, faces.length);
    return { faces, detected: detect, ms: { ...ms, keypoints: ms.keypoints / n, emotion: ms.emotion / n, frame: performance.now() - t0 } };
  }

  // For a picture that is already a face cut in the face framing (the label page's stored faces): the same
  // alignment, seeded with that framing instead of a detector box. Points come back in the stored crop's pixels.
  function analyzeCrop(source) {
    const ms = { detect: 0, keypoints: 0, emotion: 0 };
    const seed = geometry.cropMatrix(faceFraming.center, faceFraming.distance, 0, kpFraming);
    const steps = pipeline.detector.align_steps;
    return finish(source, align(source, [seed], ms, steps), [{ x: 0, y: 0, width: FRAME, height: FRAME }], ms)[0];
  }

  function reset() {
    tracks = [];
    framesSinceDetection = Infinity;
  }

  return { backend: backendName, manifest, models, detector, analyze, analyzeCrop, reset };
}

// How unsure the models are about one face: emotion = 1 - top probability; keypoints = mean distance (px) between
// the prediction and the un-mirrored prediction on the mirrored face (a confident model agrees with itself).
export function uncertainty(models, grey, face) {
  const perm = models.manifest.keypoints.flip_permutation;
  const mirrored = predictPoints(models, [mirror(grey)])[0];
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
  context.lineWidth = Math.max(Math.min(1.5, radius), radius / 2); // thin on a small face, never over its features
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
    context.lineWidth = Math.min(1, radius / 2);
    context.stroke();
  });
  context.restore();
}
