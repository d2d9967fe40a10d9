import { api, csrfToken, toast } from "./api.js";
import { FRAME, createAnalyzer, drawSkeleton, uncertainty } from "./inference.js";

const $ = (id) => document.getElementById(id);
// The select says which queue: "keypoints" / "emotion" for labelers, "review-<task>" for staff reviewing disagreements.
const reviewing = () => $("task").value.startsWith("review-");
const taskOf = () => $("task").value.replace("review-", "");
const board = $("board");
const context = board.getContext("2d");
const SCALE = board.width / FRAME;
// Zoom and pan: the board shows the frame square [view.x, view.x + FRAME / view.zoom) (same for y) at its full size.
const view = { zoom: 1, x: 0, y: 0 };
const MAX_ZOOM = 6;
function setView(zoom, cx = view.x + FRAME / view.zoom / 2, cy = view.y + FRAME / view.zoom / 2) {
  view.zoom = Math.min(MAX_ZOOM, Math.max(1, zoom));
  const side = FRAME / view.zoom;
  view.x = Math.min(FRAME - side, Math.max(0, cx - side / 2));
  view.y = Math.min(FRAME - side, Math.max(0, cy - side / 2));
  render();
}
const state = {
  ready: false, models: null, face: null, image: null, points: [], emotion: null, selected: 0,
  undo: [], redo: [], skipped: [], predictionIds: {}, saving: false,
  // what the labeler confirmed on this face: a save stores only these tasks (an untouched guess is not a label)
  confirmed: { keypoints: false, emotion: false },
  saved: { keypoints: false, emotion: false }, // the face starts from a label already saved (going back)
  lease: null, leaseTimer: null, done: 0, history: [], hover: null, names: false,
};
window.studio = state;

const snapshot = () => JSON.stringify({ points: state.points, emotion: state.emotion, confirmed: state.confirmed });
function remember() {
  state.undo.push(snapshot());
  state.redo = [];
  updateButtons();
}
function restore(text) {
  const s = JSON.parse(text);
  state.points = s.points;
  state.emotion = s.emotion;
  state.confirmed = s.confirmed;
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
  $("accept").disabled = !loaded || state.confirmed[taskOf()];
  $("skip").disabled = !loaded;
  $("reject").disabled = !loaded;
  $("undo").disabled = !state.undo.length;
  $("back").disabled = !state.history.length || state.saving;
  $("redo").disabled = !state.redo.length;
}

function render() {
  context.imageSmoothingEnabled = false; // crisp, pixel-exact scaling of the 96x96 face
  context.clearRect(0, 0, board.width, board.height);
  const side = FRAME / view.zoom;
  if (state.image) context.drawImage(state.image, view.x, view.y, side, side, 0, 0, board.width, board.height);
  if (state.points.length) {
    const manifest = state.models.manifest.keypoints;
    const toCanvas = ([x, y]) => [(x + 0.5 - view.x) * SCALE * view.zoom, (y + 0.5 - view.y) * SCALE * view.zoom];
    (state.others || []).forEach((points) => {
      context.fillStyle = "rgba(255, 170, 60, 0.8)"; // each labeler's points, under the decision
      points.forEach((p) => { const [cx, cy] = toCanvas(p); context.fillRect(cx - 2, cy - 2, 4, 4); });
    });
    drawSkeleton(context, state.points.map((p) => [p[0], p[1]]), manifest.skeleton, toCanvas, { selected: state.selected, radius: 5 });
    state.points.forEach((p, i) => {
      if (p[2]) return;
      const [x, y] = toCanvas(p);
      context.strokeStyle = "#ff6b6b";
      context.beginPath();
      context.moveTo(x - 6, y - 6); context.lineTo(x + 6, y + 6); context.moveTo(x + 6, y - 6); context.lineTo(x - 6, y + 6);
      context.stroke();
    });
    // point names: the hovered one, or all of them (N); "left" is the subject's left
    const names = manifest.keypoint_names;
    const shown = state.names ? names.map((_, i) => i) : state.hover != null ? [state.hover] : [];
    context.font = "12px system-ui, sans-serif";
    shown.forEach((i) => {
      const [px, py] = toCanvas(state.points[i]);
      const text = names[i].replaceAll("_", " ");
      context.fillStyle = "rgba(0,0,0,0.65)";
      context.fillRect(px + 7, py - 9, context.measureText(text).width + 6, 16);
      context.fillStyle = "#fff";
      context.fillText(text, px + 10, py + 3);
    });
    const [x, y, visible] = state.points[state.selected];
    $("selected").textContent = `${manifest.keypoint_names[state.selected].replaceAll("_", " ")}: (${x.toFixed(1)}, ${y.toFixed(1)})${visible ? "" : " hidden"}`;
  }
  document.querySelectorAll("#emotions button").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.emotion === state.emotion)));
  // a label a person saved, shown untouched, is neither the model's guess nor a new confirmation
  const says = (task, name) => `${name}: ${state.confirmed[task] ? "confirmed"
    : state.saved[task] ? "saved earlier (the current label; change it to save again)" : "not confirmed (the model's guess)"}`;
  $("confirmed").textContent = state.face ? `${says("keypoints", "Points")} · ${says("emotion", "Emotion")}` : "";
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

function holdLease(lease) {
  clearInterval(state.leaseTimer);
  state.lease = lease;
  if (!lease) return;
  // renew well before it runs out; if someone else holds the face now, move on instead of saving over them
  state.leaseTimer = setInterval(async () => {
    if (!state.face) return;
    try {
      const { status } = await api(`/api/faces/${state.face.id}/lease/?task=${lease.task}`, { method: "POST" });
      if (status === 409) {
        toast(`Face ${state.face.id} went to another labeler while this page was idle; here is the next one.`);
        next();
      }
    } catch (err) {
      setMessage(`Could not keep this face reserved: ${err.message}`);
    }
  }, Math.max(5, lease.seconds / 3) * 1000);
}

function releaseLease() {
  if (!state.face || !state.lease) return;
  // keepalive: the request outlives the page when it is being closed
  fetch(`/api/faces/${state.face.id}/lease/`, {
    method: "DELETE", keepalive: true, credentials: "same-origin",
    headers: { "X-CSRFToken": csrfToken() },
  });
}

let askedFace = /^\d+$/.test(new URLSearchParams(location.search).get("face") || "") ? new URLSearchParams(location.search).get("face") : null;

async function next() {
  setMessage("");
  state.face = null;
  updateButtons();
  const task = taskOf();
  const path = reviewing() ? "/api/review/next/" : "/api/queue/next/";
  let data;
  try {
    // skipped faces, and the faces this session saved (the newest few hundred): once every face has a label the queue
    // serves labeled ones by uncertainty, and the face just saved came straight back
    const exclude = [...new Set([...state.skipped, ...state.history.slice(-300)])];
    // "Label this face" (a face's page opens /label/?face=<id>): that face first, then the queue as usual
    const asked = !reviewing() && askedFace ? `&face=${askedFace}` : "";
    askedFace = null;
    let status;
    ({ status, data } = await api(`${path}?task=${task}&exclude=${exclude.join(",")}${asked}`));
    if (status === 409) { // another labeler holds the face asked for: say so, and serve the queue
      const held = data?.detail || "Another labeler holds that face now.";
      ({ data } = await api(`${path}?task=${task}&exclude=${exclude.join(",")}`));
      setMessage(held);
    }
  } catch (err) {
    setMessage(`Could not load the next face: ${err.message}`);
    return;
  }
  if (!data.face) {
    state.image = null;
    state.points = [];
    state.others = [];
    render();
    $("face-info").textContent = reviewing() ? "Nothing to review: the labelers agree." : "The queue is empty. Import or send more faces.";
    return;
  }
  if (reviewing()) {
    state.queue = null;
    await show(data.face, null, `${data.remaining} waiting for review`, { review: data });
  } else {
    state.queue = { task, remaining: data.remaining, capped: data.remaining_capped };
    await show(data.face, data.lease, queueLine());
  }
}

// "N without a human keypoints label": kept with the page's own additions (Add photos) until the next face
const queueLine = () => `${state.queue.remaining.toLocaleString("en")}${state.queue.capped ? "+" : ""} without a human ${state.queue.task} label`;

function showInfo() {
  const face = state.face;
  if (face) $("face-info").textContent = `Face ${face.id} · ${face.source} ${face.source_name || ""} · ${state.where} · ${state.done} saved this session`;
}

const SOURCES = { import: "imported", human: "by a person", labelers: "the labelers' consensus", review: "a reviewer's decision" };

// Put a face on the board: the model's guess, or (going back) the labels it has now, so a saved face shows what was saved.
async function show(face, lease, where, { current = false, review = null } = {}) {
  holdLease(lease);
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
  const labelsNow = face.labels || {};
  // a label a person gave (this labeler's, or the labelers' or a reviewer's) is where the face starts, whichever
  // queue served it: the queue serves a face again once the unlabeled ones run out, or for the other task, and
  // showing the model's guess over a person's saved label read as if it had been lost (the import's label does
  // not start it: the model's guess does, as before). Going back (current) shows whatever label it has.
  const byPerson = (task) => ["human", "labelers", "review"].includes(face.label_sources?.[task]);
  const starts = (task) => labelsNow[task] != null && (current || byPerson(task));
  const startPoints = starts("keypoints") ? labelsNow.keypoints.map((p) => [p.x, p.y, p.visible])
    : prediction.points.map(([x, y]) => [clamp(x), clamp(y), true]);
  const labels = state.models.manifest.emotion.labels; // the served version's classes, in its output order
  const top = prediction.probabilities.indexOf(Math.max(...prediction.probabilities));
  // the model's guess starts the emotion where the label set has its class (a class of an older set does not)
  const guess = state.classes.includes(labels[top]) ? labels[top] : null;
  // reviewing: start from the labelers' consensus, and show what each of them said
  const byLabeler = review ? Object.entries(review.labels) : [];
  const task = taskOf();
  if (review && review.consensus != null && task === "keypoints") {
    labelsNow.keypoints = review.consensus;
  } else if (review && review.consensus != null) {
    labelsNow.emotion = review.consensus;
  }
  Object.assign(state, {
    others: byLabeler.filter(([, v]) => Array.isArray(v)).map(([, v]) => v.map((p) => [p.x, p.y])),
    face, image, undo: [], redo: [], selected: 0, predictionIds: {}, prediction,
    confirmed: { keypoints: false, emotion: false },
    saved: { keypoints: !review && starts("keypoints"), emotion: !review && starts("emotion") },
    points: review && task === "keypoints" && review.consensus ? review.consensus.map((p) => [p.x, p.y, p.visible]) : startPoints,
    view: Object.assign(view, { zoom: 1, x: 0, y: 0 }),
    emotion: (starts("emotion") || review) && labelsNow.emotion != null ? labelsNow.emotion : guess,
  });
  const manifest = state.models.manifest;
  state.where = where;
  showInfo();
  $("model").textContent = `Model said: ${labels[top]} ${(100 * prediction.probabilities[top]).toFixed(0)}% (emotion v${manifest.emotion.version}), points from keypoints v${manifest.keypoints.version}.`;
  $("current").textContent = review
    ? `Labelers: ${byLabeler.map(([who, v]) => `${who}: ${v == null ? "not a face" : Array.isArray(v) ? "points" : v}`).join(" · ")}. Your decision is the label.`
    : labelsNow.emotion != null ? `Current label: ${labelsNow.emotion} (${SOURCES[face.label_sources?.emotion] || "imported"}).` : "";
  render();
  board.focus();
  if (!current && !review) recordPredictions(face, analyzed);
}

// Back to the face before this one (saved or skipped): it is leased again, and shows the labels it has now.
async function back() {
  const previous = state.history.at(-1);
  if (previous == null || state.saving || reviewing()) return;
  const task = taskOf();
  try {
    const { status, data: lease } = await api(`/api/faces/${previous}/lease/?task=${task}`, { method: "POST" });
    if (status === 409) {
      setMessage(`Face ${previous} is being labeled by someone else now.`);
      return;
    }
    const { data: face } = await api(`/api/faces/${previous}/`);
    state.history.pop();
    state.skipped = state.skipped.filter((id) => id !== previous);
    if (state.face) releaseLease();
    await show(face, lease, "going back", { current: true });
  } catch (err) {
    setMessage(`Could not go back to face ${previous}: ${err.message}`);
  }
}

const clamp = (v) => Math.min(FRAME - 0.01, Math.max(0, v));

async function save({ skip = false } = {}) {
  if (!state.face || state.saving) return;
  const json = {};
  if (skip) json.skip = true;
  if (!skip && state.confirmed.keypoints) json.points = state.points.map(([x, y, visible]) => ({ x, y, visible }));
  if (!skip && state.confirmed.emotion) json.emotion = state.emotion;
  if (!Object.keys(json).length) {
    const task = taskOf() === "keypoints" ? "points" : "emotion";
    setMessage(`Nothing confirmed yet: move a point or pick an emotion, or press A to accept the model's ${task} as they are.`);
    return;
  }
  if (reviewing()) json.review = true;
  state.saving = true;
  updateButtons();
  if (json.points && state.predictionIds.keypoints) json.prediction = state.predictionIds.keypoints;
  else if (json.emotion != null && state.predictionIds.emotion) json.prediction = state.predictionIds.emotion;
  try {
    const { status, data } = await api(`/api/faces/${state.face.id}/annotations/`, { method: "POST", json });
    if (status === 409) { // another labeler holds this face: nothing was stored
      state.saving = false;
      setMessage(`Not saved: ${data.detail}`);
      updateButtons();
      return;
    }
    const what = [json.points && "points", json.emotion != null && "emotion"].filter(Boolean).join(" and ");
    const queueTask = taskOf() === "keypoints" ? "points" : "emotion";
    const open = !skip && !reviewing() && !(queueTask === "points" ? json.points : json.emotion != null);
    // saved, but not for the queue's task: the face still needs that label, and would come straight back
    if (open) state.skipped.push(state.face.id);
    toast(skip ? `Face ${state.face.id} marked as not a face.`
      : `Saved the ${what} of face ${state.face.id}.${open ? ` It still needs its ${queueTask}: it stays in the queue for later.` : ""}`, "ok");
    state.done += 1;
    state.history.push(state.face.id);
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
  state.skipped.push(state.face.id); // the server lets go of its lease when the next face is served
  state.history.push(state.face.id);
  next();
}

function accept() {
  const task = taskOf();
  if (!state.face || state.confirmed[task]) return;
  if (task === "emotion" && state.emotion == null) {
    setMessage("The model's class is not in the label set: pick one of the buttons.");
    return;
  }
  remember();
  state.confirmed = { ...state.confirmed, [task]: true };
  render();
}

function chooseEmotion(key) {
  if (state.emotion === key && state.confirmed.emotion) return; // nothing changes: no empty undo step
  remember();
  state.emotion = key;
  state.confirmed = { ...state.confirmed, emotion: true };
  render();
}

const touchPoints = () => { state.confirmed = { ...state.confirmed, keypoints: true }; };

function pointerToFrame(event) {
  const rect = board.getBoundingClientRect();
  const side = FRAME / view.zoom;
  return [
    view.x + ((event.clientX - rect.left) / rect.width) * side - 0.5,
    view.y + ((event.clientY - rect.top) / rect.height) * side - 0.5,
  ];
}

// Wheel: zoom about the pointer, so what is under it stays there.
board.addEventListener("wheel", (event) => {
  if (!state.image) return;
  event.preventDefault();
  const [fx, fy] = pointerToFrame(event);
  const rect = board.getBoundingClientRect();
  const zoom = Math.min(MAX_ZOOM, Math.max(1, view.zoom * (event.deltaY < 0 ? 1.25 : 0.8)));
  const side = FRAME / zoom;
  const u = (event.clientX - rect.left) / rect.width;
  const v = (event.clientY - rect.top) / rect.height;
  setView(zoom, fx + 0.5 - u * side + side / 2, fy + 0.5 - v * side + side / 2);
}, { passive: false });

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
  if (best < 0) {
    if (view.zoom > 1) { // drag the background: pan
      dragging = { pan: true, from: [event.clientX, event.clientY], at: [view.x, view.y] };
      board.setPointerCapture(event.pointerId);
    }
    return;
  }
  state.selected = best;
  dragging = { index: best, before: snapshot(), moved: false };
  board.setPointerCapture(event.pointerId);
  render();
});
board.addEventListener("pointermove", (event) => {
  if (!dragging) {
    const [x, y] = pointerToFrame(event);
    let near = null;
    state.points.forEach(([px, py], i) => { if (Math.hypot(px - x, py - y) < 3) near = i; });
    if (near !== state.hover) { state.hover = near; render(); }
    return;
  }
  if (dragging.pan) {
    const rect = board.getBoundingClientRect();
    const perPixel = FRAME / view.zoom / rect.width;
    const side = FRAME / view.zoom;
    const x0 = dragging.at[0] - (event.clientX - dragging.from[0]) * perPixel;
    const y0 = dragging.at[1] - (event.clientY - dragging.from[1]) * perPixel;
    setView(view.zoom, x0 + side / 2, y0 + side / 2);
    return;
  }
  const [x, y] = pointerToFrame(event);
  state.points[dragging.index] = [clamp(x), clamp(y), state.points[dragging.index][2]];
  dragging.moved = true;
  touchPoints();
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
  } else if (key === "]" || key === "[") {
    // next / previous point; Tab keeps moving focus between the page's controls
    const n = state.points.length;
    state.selected = (state.selected + (key === "[" ? n - 1 : 1)) % n;
    render();
  } else if (key.startsWith("Arrow") && document.activeElement === board) {
    event.preventDefault();
    const step = event.shiftKey ? 2 : 0.5;
    const [dx, dy] = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] }[key];
    remember();
    const [x, y, v] = state.points[state.selected];
    state.points[state.selected] = [clamp(x + dx), clamp(y + dy), v];
    touchPoints();
    render();
  } else if (/^[1-9]$/.test(key) && Number(key) <= state.classes.length && !ctrl) {
    chooseEmotion(state.classes[Number(key) - 1]);
  } else if (key === "v" || key === "V") {
    remember();
    state.points[state.selected][2] = !state.points[state.selected][2];
    touchPoints();
    render();
  } else if ((key === "a" || key === "A") && !ctrl) {
    accept();
  } else if ((key === "+" || key === "=") && !ctrl) {
    setView(view.zoom * 1.5);
  } else if (key === "-" && !ctrl) {
    setView(view.zoom / 1.5);
  } else if (key === "0" && !ctrl) {
    setView(1);
  } else if ((key === "n" || key === "N") && !ctrl) {
    state.names = !state.names;
    render();
  } else if ((key === "b" || key === "B") && !ctrl) {
    back();
  } else if (key === "?") {
    const help = $("help");
    help.open ? help.close() : help.showModal();
  } else if (key === "Enter" && (!["BUTTON", "A"].includes(event.target.tagName) || event.target.closest("#emotions"))) {
    // an emotion button keeps the focus after a click: picking it again would do nothing, so Enter saves there too
    event.preventDefault();
    save();
  } else if ((key === "s" || key === "S") && !ctrl) {
    skipFace();
  }
});

// Drop a whole photo (or several) anywhere on the page: the server finds every face (BlazeFace + alignment, the
// pipeline's path), stores each as its own face, and they join the queue.
// Every photo's outcome in one message (several photos once left only the last one's), and the queue's count
// grows by the new faces at once.
async function queuePhotos(files) {
  const said = [];
  let created = 0, failed = 0;
  for (const file of files) {
    if (!file.type.startsWith("image/")) {
      said.push(`${file.name}: not a picture (JPEG, PNG or WEBP)`);
      failed += 1;
      continue;
    }
    const form = new FormData();
    form.append("image", file);
    try {
      const { data } = await api("/api/faces/upload/", { method: "POST", form });
      const n = data.faces.length;
      said.push(`${file.name}: ${n} face${n === 1 ? "" : "s"} found, ${data.created} new`);
      created += data.created;
    } catch (err) {
      said.push(`${file.name}: ${err.message}`);
      failed += 1;
    }
  }
  const total = `${created} new face${created === 1 ? "" : "s"} in the queue from ${files.length} photo${files.length === 1 ? "" : "s"}`;
  setMessage(`${total}. ${said.join(" · ")}`, failed ? "error" : "ok");
  if (state.queue && state.queue.task === taskOf()) {
    state.queue.remaining += created;
    state.where = queueLine();
    showInfo();
  }
  if (!state.face) next();
}

document.addEventListener("dragover", (e) => { e.preventDefault(); document.body.classList.add("dropping"); });
document.addEventListener("dragleave", () => document.body.classList.remove("dropping"));
document.addEventListener("drop", (e) => {
  e.preventDefault();
  document.body.classList.remove("dropping");
  queuePhotos([...e.dataTransfer.files]);
});

async function main() {
  $("save").addEventListener("click", () => save());
  $("accept").addEventListener("click", accept);
  $("back").addEventListener("click", back);
  $("help-open").addEventListener("click", () => $("help").showModal());
  $("photos").addEventListener("change", () => queuePhotos([...$("photos").files]));
  window.addEventListener("pagehide", releaseLease);
  $("skip").addEventListener("click", skipFace);
  $("reject").addEventListener("click", () => save({ skip: true }));
  $("undo").addEventListener("click", undo);
  $("redo").addEventListener("click", redo);
  $("task").addEventListener("change", () => { state.skipped = []; next(); });
  try {
    state.analyzer = await createAnalyzer({ backend: "wasm", detector: false });
    state.models = state.analyzer.models;
    // the buttons are the label set's classes (a class the served model lacks can be labeled too: that is how it
    // learns it); the set is data, so each name becomes text, never markup
    state.classes = (await api("/api/labelsets/emotion/")).data.labels;
  } catch (err) {
    setMessage(`The models could not load: ${err.message}`);
    return;
  }
  $("emotions").replaceChildren(...state.classes.map((key, i) => {
    const button = Object.assign(document.createElement("button"), { type: "button" });
    button.dataset.emotion = key;
    if (i < 9) button.append(Object.assign(document.createElement("kbd"), { textContent: String(i + 1) }), " ");
    button.append(key);
    return button;
  }));
  $("emotions").addEventListener("click", (e) => {
    const button = e.target.closest("button");
    if (!button) return;
    chooseEmotion(button.dataset.emotion);
  });
  state.ready = true;
  await next();
}

main();
