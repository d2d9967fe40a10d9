import { api, toast } from "./api.js";
import { FRAME, createAnalyzer, drawSkeleton, uncertainty } from "./inference.js";

const $ = (id) => document.getElementById(id);
const board = $("board");
const context = board.getContext("2d");
const SCALE = board.width / FRAME;
const state = {
  ready: false, models: null, face: null, image: null, points: [], emotion: null, selected: 0,
  undo: [], redo: [], skipped: [], predictionIds: {}, saving: false,
};
window.studio = state;

const snapshot = () => JSON.stringify({ points: state.points, emotion: state.emotion });
function remember() {
  state.undo.push(snapshot());
  state.redo = [];
  updateButtons();
}
function restore(text) {
  const s = JSON.parse(text);
  state.points = s.points;
  state.emotion = s.emotion;
  render();
}
function undo() {
  if (!state.undo.length) return;
  state.redo.push(snapshot());
  restore(state.undo.pop());
}
function redo() {
  if (!state.redo.length) return;
  state.undo.push(snapshot());
  restore(state.redo.pop());
}

function updateButtons() {
  const loaded = Boolean(state.face) && !state.saving;
  $("save").disabled = !loaded;
  $("skip").disabled = !loaded;
  $("reject").disabled = !loaded;
  $("undo").disabled = !state.undo.length;
  $("redo").disabled = !state.redo.length;
}

function render() {
  context.imageSmoothingEnabled = false; // crisp, pixel-exact scaling of the 96x96 face
  context.clearRect(0, 0, board.width, board.height);
  if (state.image) context.drawImage(state.image, 0, 0, board.width, board.height);
  if (state.points.length) {
    const manifest = state.models.manifest.keypoints;
    const toCanvas = ([x, y]) => [(x + 0.5) * SCALE, (y + 0.5) * SCALE];
    drawSkeleton(context, state.points.map((p) => [p[0], p[1]]), manifest.skeleton, toCanvas, { selected: state.selected, radius: 5 });
    state.points.forEach((p, i) => {
      if (p[2]) return;
      const [x, y] = toCanvas(p);
      context.strokeStyle = "#ff6b6b";
      context.beginPath();
      context.moveTo(x - 6, y - 6); context.lineTo(x + 6, y + 6); context.moveTo(x + 6, y - 6); context.lineTo(x - 6, y + 6);
      context.stroke();
    });
    const [x, y, visible] = state.points[state.selected];
    $("selected").textContent = `${manifest.keypoint_names[state.selected].replaceAll("_", " ")}: (${x.toFixed(1)}, ${y.toFixed(1)})${visible ? "" : " hidden"}`;
  }
  document.querySelectorAll("#emotions button").forEach((b, i) => b.setAttribute("aria-pressed", String(i === state.emotion)));
  updateButtons();
}

function setMessage(text, kind = "error") {
  $("message").textContent = text;
  $("message").className = `message ${kind}`;
}

async function recordPredictions(face, analyzed) {
  const manifest = state.models.manifest;
  // uncertainty is measured in the crop the keypoint model read
  const unsure = uncertainty(state.models, analyzed.crop.grey, { points: analyzed.crop.points, probabilities: analyzed.probabilities });
  const posts = [
    ["keypoints", { version: manifest.keypoints.id, points: analyzed.points.map(([x, y]) => ({ x: clamp(x), y: clamp(y), visible: true })), uncertainty: unsure.keypoints }],
    ["emotion", { version: manifest.emotion.id, probabilities: analyzed.probabilities, uncertainty: unsure.emotion }],
  ];
  for (const [kind, json] of posts) {
    try {
      const { data } = await api(`/api/faces/${face.id}/predictions/`, { method: "POST", json });
      state.predictionIds[kind] = data.id;
    } catch (err) {
      console.warn(`prediction not recorded: ${err.message}`);
    }
  }
}

async function next() {
  setMessage("");
  state.face = null;
  updateButtons();
  const task = $("task").value;
  let data;
  try {
    ({ data } = await api(`/api/queue/next/?task=${task}&exclude=${state.skipped.join(",")}`));
  } catch (err) {
    setMessage(`Could not load the next face: ${err.message}`);
    return;
  }
  if (!data.face) {
    state.image = null;
    state.points = [];
    render();
    $("face-info").textContent = "The queue is empty. Import or send more faces.";
    return;
  }
  const face = data.face;
  const image = new Image();
  image.src = face.image_url;
  try {
    await image.decode();
  } catch {
    setMessage(`The image of face ${face.id} could not be loaded.`);
    return;
  }
  const analyzed = state.analyzer.analyzeCrop(image);
  const prediction = { points: analyzed.points, probabilities: analyzed.probabilities };
  Object.assign(state, {
    face, image, undo: [], redo: [], selected: 0, predictionIds: {}, prediction,
    points: prediction.points.map(([x, y]) => [clamp(x), clamp(y), true]),
    emotion: prediction.probabilities.indexOf(Math.max(...prediction.probabilities)),
  });
  const manifest = state.models.manifest;
  const labels = manifest.emotion.labels;
  const top = state.emotion;
  $("face-info").textContent = `Face ${face.id} · ${face.source} ${face.source_name || ""} · ${data.remaining} without a human ${task} label`;
  $("model").textContent = `Model said: ${labels[top]} ${(100 * prediction.probabilities[top]).toFixed(0)}% (emotion v${manifest.emotion.version}), points from keypoints v${manifest.keypoints.version}.`;
  const current = face.labels || {};
  $("current").textContent = current.emotion != null ? `Current label: ${labels[current.emotion]}${face.human_emotion ? " (by a person)" : " (imported)"}.` : "";
  render();
  board.focus();
  recordPredictions(face, analyzed);
}

const clamp = (v) => Math.min(FRAME - 0.01, Math.max(0, v));

async function save({ skip = false } = {}) {
  if (!state.face || state.saving) return;
  state.saving = true;
  updateButtons();
  const json = skip ? { skip: true } : {
    points: state.points.map(([x, y, visible]) => ({ x, y, visible })),
    emotion: state.emotion,
  };
  if (!skip && state.predictionIds.keypoints) json.prediction = state.predictionIds.keypoints;
  try {
    await api(`/api/faces/${state.face.id}/annotations/`, { method: "POST", json });
    toast(skip ? `Face ${state.face.id} marked as not a face.` : `Saved face ${state.face.id}.`, "ok");
    state.saving = false;
    await next();
  } catch (err) {
    state.saving = false;
    setMessage(`Not saved: ${err.message}. Your edits are kept; try again.`);
    updateButtons();
  }
}

function skipFace() {
  if (!state.face) return;
  state.skipped.push(state.face.id);
  next();
}

function pointerToFrame(event) {
  const rect = board.getBoundingClientRect();
  return [((event.clientX - rect.left) / rect.width) * FRAME - 0.5, ((event.clientY - rect.top) / rect.height) * FRAME - 0.5];
}

let dragging = null;
board.addEventListener("pointerdown", (event) => {
  if (!state.points.length) return;
  const [x, y] = pointerToFrame(event);
  let best = -1;
  let bestDistance = 3; // frame pixels (15 screen px at 480)
  state.points.forEach(([px, py], i) => {
    const d = Math.hypot(px - x, py - y);
    if (d < bestDistance) { best = i; bestDistance = d; }
  });
  if (best < 0) return;
  state.selected = best;
  dragging = { index: best, before: snapshot(), moved: false };
  board.setPointerCapture(event.pointerId);
  render();
});
board.addEventListener("pointermove", (event) => {
  if (!dragging) return;
  const [x, y] = pointerToFrame(event);
  state.points[dragging.index] = [clamp(x), clamp(y), state.points[dragging.index][2]];
  dragging.moved = true;
  render();
});
board.addEventListener("pointerup", () => {
  if (dragging?.moved) {
    state.undo.push(dragging.before);
    state.redo = [];
  }
  dragging = null;
  render();
});

document.addEventListener("keydown", (event) => {
  if (event.target.tagName === "SELECT" || !state.face) return;
  const key = event.key;
  const ctrl = event.ctrlKey || event.metaKey;
  if (ctrl && key.toLowerCase() === "z") {
    event.preventDefault();
    event.shiftKey ? redo() : undo();
  } else if (ctrl && key.toLowerCase() === "y") {
    event.preventDefault();
    redo();
  } else if (key === "Tab") {
    event.preventDefault();
    const n = state.points.length;
    state.selected = (state.selected + (event.shiftKey ? n - 1 : 1)) % n;
    render();
  } else if (key.startsWith("Arrow")) {
    event.preventDefault();
    const step = event.shiftKey ? 2 : 0.5;
    const [dx, dy] = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] }[key];
    remember();
    const [x, y, v] = state.points[state.selected];
    state.points[state.selected] = [clamp(x + dx), clamp(y + dy), v];
    render();
  } else if (/^[1-9]$/.test(key) && Number(key) <= state.models.manifest.emotion.labels.length && !ctrl) {
    remember();
    state.emotion = Number(key) - 1;
    render();
  } else if (key === "v" || key === "V") {
    remember();
    state.points[state.selected][2] = !state.points[state.selected][2];
    render();
  } else if (key === "Enter") {
    event.preventDefault();
    save();
  } else if ((key === "s" || key === "S") && !ctrl) {
    skipFace();
  }
});

async function main() {
  $("save").addEventListener("click", () => save());
  $("skip").addEventListener("click", skipFace);
  $("reject").addEventListener("click", () => save({ skip: true }));
  $("undo").addEventListener("click", undo);
  $("redo").addEventListener("click", redo);
  $("task").addEventListener("change", () => { state.skipped = []; next(); });
  try {
    state.analyzer = await createAnalyzer({ backend: "wasm", detector: false });
    state.models = state.analyzer.models;
  } catch (err) {
    setMessage(`The models could not load: ${err.message}`);
    return;
  }
  $("emotions").innerHTML = state.models.manifest.emotion.labels
    .map((label, i) => `<button type="button" data-emotion="${i}"><kbd>${i + 1}</kbd> ${label}</button>`).join("");
  $("emotions").addEventListener("click", (e) => {
    const button = e.target.closest("button");
    if (!button) return;
    remember();
    state.emotion = Number(button.dataset.emotion);
    render();
  });
  state.ready = true;
  await next();
}

main();
