import { api, toast } from "./api.js";
import { createAnalyzer, drawSkeleton, geometry, greyPng, uncertainty } from "./inference.js";
import { Recorder, analyzeVideo, argmax, classColour, drawTimeline, fileChecksum, framesToLabel, iou, matchTracks, measureRate, pointsBox, rowsAt } from "./video.js";

const $ = (id) => document.getElementById(id);
const view = $("view");
const context = view.getContext("2d");
const video = $("video");
const state = { analyzer: null, models: null, source: null, live: false, last: null, busy: false, frame: null, zoom: null, recording: null, liveRecorder: null };
window.studio = state; // read by the browser tests and handy in the console

function setStatus(text, kind = "muted") {
  $("status").textContent = text;
  $("status").className = kind;
}

// The picture fills the drop area: a large photo is scaled down, a small one (a 191x174 crop) scaled up, so faces and
// their points are drawn at a size people can see. On a phone it takes at most 55 % of the screen's height, so the
// list of faces starts just below it.
function fitCanvas(width, height) {
  const maxWidth = Math.min(960, view.parentElement.clientWidth || 640);
  const maxHeight = window.innerWidth <= 600 ? Math.max(240, Math.min(640, Math.round(0.55 * window.innerHeight))) : 640;
  const scale = Math.min(maxWidth / width, maxHeight / height);
  view.width = Math.round(width * scale);
  view.height = Math.round(height * scale);
  return scale;
}

function renderFaces(faces, labels) {
  const box = $("faces");
  if (!faces.length) {
    box.innerHTML = state.source === "camera"
      ? '<p class="muted">No face found. Face the camera, with light on your face.</p>'
      : '<p class="muted">No face found in this photo. Faces turned far away, covered or only a few pixels high are missed; try a photo where the face looks toward the camera.</p>';
    return;
  }
  // the class names are the served version's (its manifest): data, so built as text, never as markup
  const el = (tag, attrs = {}, text = "") => Object.assign(document.createElement(tag), attrs, text ? { textContent: text } : {});
  box.replaceChildren(...faces.map((face, i) => {
    const top = face.probabilities.indexOf(Math.max(...face.probabilities));
    const sure = face.probabilities[top] >= LOW_CONFIDENCE;
    const card = el("div", { className: "face" });
    card.dataset.face = String(i);
    const title = el("h3", {}, `Face ${i + 1}: ${sure ? labels[top] : `${labels[top]}? (low confidence)`} `);
    const zoomed = state.zoom === i;
    const zoom = el("button", { type: "button", className: "link zoom", title: zoomed ? "Show the whole picture" : `Show face ${i + 1} large` },
      zoomed ? "whole picture" : "zoom");
    zoom.addEventListener("click", () => setZoom(zoomed ? null : i));
    title.append(zoom);
    card.append(title);
    if (!sure) {
      const why = labels.includes("neutral")
        ? "no class stands out, so this is a guess."
        : "no class fits well. The served model knows no neutral, so a calm face is read as its nearest class.";
      card.append(el("p", { className: "muted" }, `Under ${100 * LOW_CONFIDENCE} %: ${why}`));
    }
    face.probabilities.forEach((p, j) => {
      const bar = el("div", { className: `bar${j === top ? " top" : ""}` });
      bar.append(el("span", {}, labels[j]), el("meter", { min: 0, max: 1, value: p.toFixed(3) }), el("b", {}, `${(100 * p).toFixed(0)}%`));
      card.append(bar);
    });
    return card;
  }));
}

// Below this top probability a face's emotion is shown as a guess, whatever classes the served version has.
const LOW_CONFIDENCE = 0.5;

// The crop the keypoint model read: its four corners in the picture, turned with the head where the model reads it
// levelled.
const cropCorners = (face) => geometry.apply(geometry.invert(face.crop.matrix), CROP_CORNERS);

function bounds(points) {
  const xs = points.map(([x]) => x), ys = points.map(([, y]) => y);
  const x = Math.min(...xs), y = Math.min(...ys);
  return { x, y, width: Math.max(...xs) - x, height: Math.max(...ys) - y };
}

// The part of the picture in view: all of it, or one face large (its crop with a margin, in the canvas's shape).
function viewRect(frame) {
  const whole = { x: 0, y: 0, width: frame.width, height: frame.height };
  const face = state.zoom === null ? null : frame.faces[state.zoom];
  if (!face) return whole;
  const box = bounds(cropCorners(face));
  const aspect = view.width / view.height;
  const side = Math.max(box.width, box.height) * 1.5;
  const width = Math.max(side, side * aspect), height = width / aspect;
  if (width >= frame.width && height >= frame.height) return whole;
  const clamp = (v, lo, hi) => Math.min(Math.max(v, lo), Math.max(lo, hi));
  return {
    x: clamp(box.x + box.width / 2 - width / 2, 0, frame.width - width),
    y: clamp(box.y + box.height / 2 - height / 2, 0, frame.height - height),
    width, height,
  };
}

// Each face's number beside its crop (above it, else below, else inside its corner), never over the face, sized to
// the face: "Face 2: sad" in the list is the crop marked 2. Returns where each number and crop were drawn.
function numberFaces(boxes) {
  return boxes.map((box, i) => {
    const size = Math.round(Math.min(16, Math.max(10, box.height / 4)));
    context.font = `bold ${size}px system-ui, sans-serif`;
    context.textBaseline = "top";
    const text = String(i + 1);
    const w = Math.ceil(context.measureText(text).width) + 6, h = size + 4;
    const x = Math.min(Math.max(0, box.x), view.width - w);
    let y = box.y - h - 2;
    if (y < 0) y = box.y + box.height + 2;
    if (y + h > view.height) y = Math.max(0, box.y) + 2; // no room outside: the crop's own corner
    context.fillStyle = "rgba(0,0,0,0.65)";
    context.fillRect(x, y, w, h);
    context.fillStyle = "#ffffff";
    context.fillText(text, x + 3, y + 2);
    return { number: { x, y, width: w, height: h }, box };
  });
}

// Draws the frame last analysed (state.frame) as the view says: the picture, each face's crop and points, numbers.
function draw() {
  const frame = state.frame;
  if (!frame) return;
  const rect = viewRect(frame);
  const scale = view.width / rect.width;
  const mirrored = state.source === "camera";
  const toCanvas = ([x, y]) => [(x - rect.x) * scale, (y - rect.y) * scale];
  context.save();
  if (mirrored) {
    // a webcam preview is a mirror, as people expect of a selfie view; points and boxes are drawn in the same frame
    context.translate(view.width, 0);
    context.scale(-1, 1);
  }
  context.imageSmoothingQuality = "high";
  context.drawImage(frame.source, rect.x, rect.y, rect.width, rect.height, 0, 0, view.width, view.height);
  const { skeleton } = state.models.manifest.keypoints;
  const radii = [];
  const boxes = frame.faces.map((face) => {
    const corners = cropCorners(face).map(toCanvas);
    context.strokeStyle = "rgba(255,255,255,0.6)";
    context.lineWidth = 1;
    context.beginPath();
    corners.forEach(([x, y], k) => (k ? context.lineTo(x, y) : context.moveTo(x, y)));
    context.closePath();
    context.stroke();
    const side = Math.hypot(corners[1][0] - corners[0][0], corners[1][1] - corners[0][1]);
    // points sized to the face: a face a few dozen pixels high keeps its features visible between them
    const radius = Math.max(1.2, side / 60);
    drawSkeleton(context, face.points, skeleton, toCanvas, { radius });
    radii.push(radius);
    const box = bounds(corners);
    return mirrored ? { ...box, x: view.width - box.x - box.width } : box;
  });
  context.restore();
  state.drawn = numberFaces(boxes).map((drawn, i) => ({ ...drawn, radius: radii[i] }));
  $("unzoom").hidden = state.zoom === null;
}

function setZoom(index) {
  state.zoom = index;
  draw();
  if (state.frame) renderFaces(state.frame.faces, state.models.manifest.emotion.labels);
}

// A click (a tap) on a face shows it large; a click on the large face, or beside it, shows the whole picture again.
function zoomAt(event) {
  if (!state.drawn?.length) return;
  if (state.zoom !== null) {
    setZoom(null);
    return;
  }
  const r = view.getBoundingClientRect();
  const x = ((event.clientX - r.left) * view.width) / r.width, y = ((event.clientY - r.top) * view.height) / r.height;
  const hit = state.drawn.findIndex(({ box }) => x >= box.x && x <= box.x + box.width && y >= box.y && y <= box.y + box.height);
  if (hit >= 0) setZoom(hit);
}

async function analyse(source, width, height, { video = false } = {}) {
  const { faces, ms } = await state.analyzer.analyze(source, { video });
  state.faces = faces;
  if (state.zoom !== null && state.zoom >= faces.length) state.zoom = null;
  state.frame = { source, width, height, faces };
  draw();
  renderFaces(faces, state.models.manifest.emotion.labels);
  state.last = {
    faces: faces.map((f) => ({ box: f.box, points: f.points, probabilities: f.probabilities })),
    greys: faces.map((f) => Array.from(f.crop.grey)),
    cropPoints: faces.map((f) => f.crop.points),
    emotionGreys: faces.map((f) => Array.from(f.emotionCrop.grey)),
    stored: faces.map((f) => ({ grey: Array.from(f.stored.grey), points: f.stored.points })),
    // where each stored crop lies in the picture: its four corners, clockwise from its top left (kept with the picture)
    boxes: faces.map((f) => geometry.apply(geometry.invert(f.stored.matrix), CROP_CORNERS)
      .map(([x, y]) => [Math.round(x * 100) / 100, Math.round(y * 100) / 100])),
    ms,
  };
  $("ms-detect").textContent = ms.detect ? `${ms.detect.toFixed(1)} ms` : "followed";
  $("ms-keypoints").textContent = `${ms.keypoints.toFixed(1)} ms / face`;
  $("ms-emotion").textContent = `${ms.emotion.toFixed(1)} ms / face`;
  $("ms-frame").textContent = `${ms.frame.toFixed(1)} ms (${(1000 / ms.frame).toFixed(0)} fps)`;
  if ($("send")) $("send").disabled = !faces.length;
  return state.last;
}

async function loop() {
  if (!state.live) return;
  if (video.readyState >= 2 && !state.busy) {
    state.busy = true;
    try {
      await analyse(video, video.videoWidth, video.videoHeight, { video: true });
      if (state.liveRecorder) recordLive();
    } catch (err) {
      console.error(err);
      setStatus(`Could not analyse the frame: ${err.message}`, "error");
    } finally {
      state.busy = false;
    }
  }
  requestAnimationFrame(loop);
}

async function startCamera() {
  if (state.live) {
    stopCamera();
    return;
  }
  if (!navigator.mediaDevices?.getUserMedia) {
    setStatus("This browser cannot use a camera here (it needs https or localhost). Open a photo instead.", "error");
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
    video.srcObject = stream;
    await video.play();
  } catch (err) {
    const message = {
      NotAllowedError: "Camera permission was refused. Allow the camera in the address bar, or open a photo instead.",
      NotFoundError: "No camera was found on this computer. Open a photo instead.",
      NotReadableError: "The camera is in use by another program. Close it, or open a photo instead.",
    }[err.name] || `The camera could not start (${err.message}). Open a photo instead.`;
    setStatus(message, "error");
    return;
  }
  fitCanvas(video.videoWidth, video.videoHeight);
  $("hint").hidden = true;
  state.analyzer.reset();
  state.zoom = null;
  state.live = true;
  state.source = "camera";
  state.name = `camera-${new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-")}.png`;
  $("camera").textContent = "Stop webcam";
  $("record").hidden = false;
  setStatus("Live", "ok");
  requestAnimationFrame(loop);
}

function stopCamera() {
  if (state.liveRecorder) stopRecording();
  $("record").hidden = true;
  state.live = false;
  video.srcObject?.getTracks().forEach((t) => t.stop());
  video.srcObject = null;
  $("camera").textContent = "Start webcam";
  setStatus("Camera stopped");
}

async function openPhoto(file) {
  if (!file) return;
  if (isVideo(file)) return openVideo(file);
  stopVideo();
  if (!/^image\/(jpeg|png|webp)$/.test(file.type)) {
    setStatus(`${file.name} is not a JPEG, PNG or WEBP image.`, "error");
    return;
  }
  stopCamera();
  const image = new Image();
  const url = URL.createObjectURL(file);
  try {
    image.src = url;
    await image.decode();
  } catch {
    setStatus(`${file.name} could not be read as an image.`, "error");
    return;
  } finally {
    URL.revokeObjectURL(url);
  }
  fitCanvas(image.naturalWidth, image.naturalHeight);
  $("hint").hidden = true;
  state.zoom = null;
  state.source = "photo";
  state.name = file.name;
  state.file = file;
  const last = await analyse(image, image.naturalWidth, image.naturalHeight);
  setStatus(last.faces.length ? `${last.faces.length} face(s) in ${file.name}` : `No face found in ${file.name}.`,
    last.faces.length ? "ok" : "error");
}

// Every face of the picture goes to the queue, each as the crop stored faces have (the face framing), with what
// both models said about it.
async function sendForLabeling() {
  if (!state.last?.faces.length) return;
  $("send").disabled = true;
  try {
    // the picture itself, which the person chose to send: kept once on the server with each face's box, shown to
    // labelers beside the face (a webcam's or a video's is the frame in view as they click)
    const picture = state.source === "photo" ? state.file : await frameJpeg();
    const ids = await queueFaces(state.last, { name: state.name || "picture.png", picture });
    toast(`${ids.length === 1 ? `Face ${ids[0]} is` : `Faces ${ids.join(", ")} are`} in the labeling queue.`, "ok");
  } catch (err) {
    toast(`Could not send the face: ${err.message}`, "error");
  } finally {
    $("send").disabled = false;
  }
}

// One request for the whole picture (the upload throttle counts pictures), its faces kept under its name, then both
// models' predictions for each face. `group`: the person (a video track's participant). Returns the faces' ids.
async function queueFaces(last, { name, picture, group = "" }) {
  const manifest = state.models.manifest;
  const form = new FormData();
  for (let i = 0; i < last.faces.length; i++) {
    form.append("crops", await greyPng(Float32Array.from(last.stored[i].grey)), `face-${i + 1}.png`);
  }
  form.append("name", name);
  form.append("picture", picture, picture.name || "picture.jpg");
  form.append("boxes", JSON.stringify(last.boxes));
  if (group) form.append("group", group);
  const { data } = await api("/api/faces/upload/", { method: "POST", form });
  const ids = [];
  for (let i = 0; i < last.faces.length; i++) {
    const face = data.faces[i];
    const unsure = uncertainty(state.models, Float32Array.from(last.greys[i]), { points: last.cropPoints[i], probabilities: last.faces[i].probabilities });
    const points = last.stored[i].points.map(([x, y]) => ({ x: clampFrame(x), y: clampFrame(y), visible: true }));
    await api(`/api/faces/${face.id}/predictions/`, { method: "POST", json: {
      version: manifest.keypoints.id, points, uncertainty: unsure.keypoints } });
    await api(`/api/faces/${face.id}/predictions/`, { method: "POST", json: {
      version: manifest.emotion.id, probabilities: last.faces[i].probabilities, uncertainty: unsure.emotion } });
    ids.push(face.id);
  }
  return ids;
}

const clampFrame = (v) => Math.min(95.99, Math.max(0, v));
const CROP_CORNERS = [[0, 0], [96, 0], [96, 96], [0, 96]];

function frameJpeg() {
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
}

// --- recorded video: open a file, analyse it here, follow its faces, the timeline, the files, the session --------

const VIDEO_TYPES = /^video\//;
const VIDEO_NAMES = /\.(mp4|m4v|webm|mov|mkv|ogv|avi)$/i;
const isVideo = (file) => VIDEO_TYPES.test(file.type) || VIDEO_NAMES.test(file.name);
const playhead = { raf: 0 };

function stopVideo() {
  state.abort?.abort();
  video.pause();
  cancelAnimationFrame(playhead.raf);
  if (state.videoUrl) {
    video.removeAttribute("src");
    video.load();
    URL.revokeObjectURL(state.videoUrl);
    state.videoUrl = null;
  }
}

// Loads the file into the page's <video>; resolves once its first frame can be drawn, or says why it cannot.
function loadVideo(file) {
  return new Promise((resolve, reject) => {
    const done = (err) => {
      video.removeEventListener("loadeddata", ok);
      video.removeEventListener("error", bad);
      err ? reject(err) : resolve();
    };
    const ok = () => done();
    const bad = () => done(new Error("decode"));
    video.addEventListener("loadeddata", ok);
    video.addEventListener("error", bad);
    state.videoUrl = URL.createObjectURL(file);
    video.srcObject = null;
    video.src = state.videoUrl;
    video.load();
  });
}

async function openVideo(file) {
  if (!file || !(await prepareVideo(file))) return;
  state.previous = null;
  state.saved = null;
  const recorder = await analyseFile(file, Number($("rate").value) || null);
  if (recorder) fileChecksum(file).then((sum) => { recorder.checksum = sum; }).catch(() => {});
}

// Loads a video file into the page's <video>, or says why it cannot: true when it can be stepped through.
async function prepareVideo(file) {
  if (!isVideo(file)) {
    setStatus(`${file.name} is not a video file (mp4, webm, mov…).`, "error");
    return false;
  }
  if (!state.ready) return false;
  stopCamera();
  stopVideo();
  if (!file.size) {
    setStatus(`${file.name} is empty (0 bytes): nothing to analyse.`, "error");
    return false;
  }
  try {
    await loadVideo(file);
  } catch {
    const staff = document.querySelector(".demo").dataset.staff === "true";
    setStatus(`This browser cannot decode ${file.name} (its codec, often HEVC/H.265 from phones, or a damaged file). `
      + (staff ? "Upload it on the Recordings page: the server's workers can analyse it." : "Convert it to H.264 mp4 or webm, or ask staff to analyse it on the server."), "error");
    return false;
  }
  if (!video.videoWidth || !video.videoHeight) {
    setStatus(`${file.name} has no picture (audio only?): open a video.`, "error");
    return false;
  }
  if (!Number.isFinite(video.duration) || video.duration <= 0) {
    setStatus(`${file.name} does not say how long it is, so it cannot be stepped through here. Re-encode it (or upload it for the server).`, "error");
    return false;
  }
  $("hint").hidden = true;
  state.zoom = null;
  state.source = "video";
  state.name = file.name;
  state.file = file;
  fitCanvas(video.videoWidth, video.videoHeight);
  return true;
}

// Analyses the loaded video at `fps` (null: every frame) with the served models: the new recording, or null.
async function analyseFile(file, fps) {
  state.abort = new AbortController();
  $("analysing").hidden = false;
  $("recording").hidden = true;
  const t0 = performance.now();
  setStatus(`Analysing ${file.name}…`);
  try {
    const recorder = await analyzeVideo(state.analyzer, video, {
      name: file.name, fps, signal: state.abort.signal,
      onFrame: (i, count, rows, t) => {
        const elapsed = (performance.now() - t0) / 1000;
        const left = (elapsed / (i + 1)) * (count - i - 1);
        $("progress").value = (i + 1) / count;
        $("progress-text").textContent = `frame ${i + 1} of ${count} · ${t.toFixed(1)} s · about ${Math.ceil(left)} s left`;
        if (i % 3 === 0) drawRows(rows);
      },
    });
    const seconds = (performance.now() - t0) / 1000;
    recorder.checksum = "";
    state.recording = recorder;
    state.analysisSeconds = seconds;
    const tracks = recorder.tracks.length;
    const frames = recorder.framesAnalysed;
    setStatus(`${recorder.cancelled ? "Cancelled: kept the first " : ""}${frames} frames of ${file.name} in ${seconds.toFixed(1)} s `
      + `(${(frames / seconds).toFixed(1)} frames/s, ${(recorder.duration / seconds).toFixed(1)}× real time): `
      + (tracks ? `${tracks} face track(s).` : "no face found in this video."), tracks ? "ok" : "error");
    video.currentTime = 0;
    showRecording();
    return recorder;
  } catch (err) {
    console.error(err);
    setStatus(`Could not analyse ${file.name}: ${err.message}`, "error");
    return null;
  } finally {
    $("analysing").hidden = true;
    state.abort = null;
  }
}

// --- a saved recording: opened from the Recordings page (/?recording=N), replayed with its local file, analysed again

async function openSaved(id) {
  try {
    const [{ data: saved }, { data: frames }] = await Promise.all([api(`/api/recordings/${id}/`), api(`/api/recordings/${id}/frames/?empty_frames=1`)]);
    state.recording = Recorder.fromSaved(saved, frames, state.analyzer.manifest.pipeline.tracking);
    state.saved = saved;
    state.previous = null;
    state.source = "saved";
    state.name = saved.name;
    showRecording();
    setStatus(saved.source === "camera"
      ? `Recording ${saved.id}: a webcam session (${saved.name}), its results only.`
      : `Recording ${saved.id}: ${saved.name}. Choose that video on this computer to replay it (it is matched by its contents).`);
  } catch (err) {
    setStatus(`Could not open recording ${id}: ${err.message}`, "error");
  }
}

// The saved recording's own video, chosen again: checked against the checksum taken when it was analysed.
async function replayWith(file) {
  const recorder = state.recording;
  if (!file || !recorder || !state.saved) return;
  setStatus(`Checking ${file.name}…`);
  const sum = await fileChecksum(file);
  if (recorder.checksum && sum !== recorder.checksum) {
    setStatus(`${file.name} is not the video of recording ${state.saved.id}: its contents differ from the file ${state.saved.name} that was analysed.`, "error");
    return;
  }
  const saved = state.saved, before = state.recording;
  if (!(await prepareVideo(file))) return;
  state.recording = before;
  state.saved = saved;
  recorder.rate = await measureRate(video);
  video.currentTime = 0;
  showRecording();
  video.addEventListener("seeked", drawPlayback, { once: true });
  setStatus(`Replaying recording ${saved.id} with ${file.name}: play it, or click a timeline to move there.`, "ok");
}

// Reruns the replayed recording with the served versions at its own rate; the old timelines stay above the new.
async function analyseAgain() {
  const before = state.recording, saved = state.saved;
  if (!before || !saved || state.source !== "video") return;
  const recorder = await analyseFile(state.file, before.fps);
  if (!recorder) {
    state.recording = before;
    return;
  }
  recorder.checksum = before.checksum;
  const match = matchTracks(before, recorder);
  for (const [track, old] of match) if (before.names[old]) recorder.names[track] = before.names[old];
  state.previous = { recorder: before, saved, match };
  state.saved = null; // the new analysis is this page's until it is saved (as a re-analysis of the old one)
  showRecording();
}

// The video's current picture with the given rows' points and track names.
function drawRows(rows) {
  const scale = view.width / video.videoWidth;
  context.drawImage(video, 0, 0, view.width, view.height);
  const { skeleton } = state.models.manifest.keypoints;
  const raw = !$("filter").checked;
  for (const r of rows) {
    const points = raw ? r.raw_points : r.points;
    const box = pointsBox(points).map((v) => v * scale);
    drawSkeleton(context, points, skeleton, ([x, y]) => [x * scale, y * scale], { radius: Math.max(1.2, box[2] / 40) });
    const name = state.recording?.trackName(r.track) ?? `Face ${r.track}`;
    context.font = "bold 13px system-ui, sans-serif";
    context.fillStyle = "rgba(0,0,0,0.65)";
    const w = context.measureText(name).width + 8;
    const y = Math.max(0, box[1] - 40);
    context.fillRect(box[0], y, w, 18);
    context.fillStyle = "#ffffff";
    context.fillText(name, box[0] + 4, y + 14);
  }
}

function drawPlayback() {
  if (!state.recording || state.source !== "video") return;
  drawRows(rowsAt(state.recording, video.currentTime));
  drawTimelines();
}

function togglePlay() {
  if (video.paused) {
    video.play();
    $("play").textContent = "Pause";
    const tick = () => {
      drawPlayback();
      if (!video.paused && !video.ended) playhead.raf = requestAnimationFrame(tick);
      else $("play").textContent = "Play";
    };
    playhead.raf = requestAnimationFrame(tick);
  } else {
    video.pause();
  }
}

function drawTimelines() {
  const recorder = state.recording;
  if (!recorder) return;
  const smooth = Number($("smooth").value) || 1;
  const now = state.source === "video" ? video.currentTime : null;
  const duration = recorder.duration || Math.max(1, ...recorder.rows.map((r) => r.time_s));
  document.querySelectorAll("#tracks canvas[data-track]").forEach((canvas) => {
    drawTimeline(canvas, recorder, Number(canvas.dataset.track), { duration, now, smooth });
  });
  document.querySelectorAll("#tracks canvas[data-before]").forEach((canvas) => {
    drawTimeline(canvas, state.previous.recorder, Number(canvas.dataset.before), { duration, now, smooth });
  });
}

function seekFromTimeline(event, canvas) {
  if (state.source !== "video" || !state.recording) return;
  const r = canvas.getBoundingClientRect();
  const t = Math.min(1, Math.max(0, (event.clientX - r.left) / r.width)) * state.recording.duration;
  video.pause();
  video.currentTime = t;
  video.addEventListener("seeked", drawPlayback, { once: true });
}

const el = (tag, attrs = {}, text = "") => Object.assign(document.createElement(tag), attrs, text ? { textContent: text } : {});

// The recording's panel: a legend, per track its timeline, summary and actions (rename, merge, delete).
function showRecording() {
  const recorder = state.recording;
  $("recording").hidden = false;
  $("recording-title").textContent = recorder.name;
  $("play").hidden = state.source !== "video";
  $("legend").replaceChildren(...recorder.labels.map((name, i) => {
    const span = el("span", {}, name);
    span.style.setProperty("--c", classColour(name, i));
    return span;
  }));
  const summaries = recorder.summaries();
  const previous = state.previous;
  $("recording-status").textContent = `${recorder.framesAnalysed} frames analysed, ${recorder.framesWithoutFace} with no face found`
    + (state.saved ? ` · saved as recording ${state.saved.id}` : "")
    + (previous ? ` · analysed again with keypoints ${recorder.versions[0]}, emotion ${recorder.versions[1]}: each track's earlier timeline `
      + `(recording ${previous.saved.id}: keypoints ${previous.recorder.versions[0]}, emotion ${previous.recorder.versions[1]}) is drawn above its new one` : "");
  const replayable = Boolean(state.saved) && state.source === "saved" && state.saved.source !== "camera";
  $("replay").hidden = !replayable;
  $("analyse-again").hidden = !(state.saved && state.source === "video" && state.saved.source !== "camera");
  $("tracks").replaceChildren(...(summaries.length ? summaries.map((s) => trackCard(recorder, s, summaries)) : [el("p", { className: "muted" }, "No face was found in this recording.")]));
  refreshDownloads();
  drawTimelines();
}

function trackCard(recorder, s, all) {
  const card = el("div", { className: "track" });
  card.dataset.track = String(s.track);
  const canvas = el("canvas", { title: "Click or drag to move the video there" });
  canvas.dataset.track = String(s.track);
  const old = state.previous?.match.get(s.track);
  const before = old === undefined ? null : el("canvas", { className: "before", title: "Before: the earlier analysis of this face" });
  if (before) {
    before.dataset.before = String(old);
    before.setAttribute("aria-label", `${s.name} before: class probabilities over time (recording ${state.previous.saved.id})`);
  }
  canvas.setAttribute("aria-label", `${s.name}: class probabilities over time`);
  canvas.addEventListener("pointerdown", (e) => { canvas.setPointerCapture(e.pointerId); seekFromTimeline(e, canvas); });
  canvas.addEventListener("pointermove", (e) => { if (e.buttons) seekFromTimeline(e, canvas); });
  const summary = el("div", { className: "summary" });
  const name = el("input", { className: "name", value: recorder.names[s.track] || "", placeholder: `Face ${s.track}`, title: "The participant's name or code" });
  name.setAttribute("aria-label", `name of face ${s.track}`);
  name.addEventListener("change", () => renameTrack(s.track, name.value.trim()));
  const merge = el("select", { title: "This face is the same person as…" });
  merge.append(el("option", { value: "" }, "merge into…"), ...all.filter((o) => o.track !== s.track).map((o) => el("option", { value: String(o.track) }, o.name)));
  merge.disabled = all.length < 2;
  merge.addEventListener("change", () => merge.value && mergeTrack(s.track, Number(merge.value)));
  const remove = el("button", { type: "button", className: "danger", title: "Not a face: remove this track" }, "delete");
  remove.addEventListener("click", () => deleteTrack(s.track));
  const actions = el("div", { className: "actions" });
  actions.append(name, merge, remove);
  const table = el("table");
  const top = argmax(s.share);
  recorder.labels.forEach((label, i) => {
    const row = el("tr");
    row.append(el("td", {}, label), el("td", {}, `${(100 * s.share[i]).toFixed(0)} % of time`), el("td", { className: "muted" }, `mean ${(100 * s.mean[i]).toFixed(0)} %`));
    if (i === top) row.className = "ok";
    table.append(row);
  });
  summary.append(el("h3", {}, `${s.name}: ${s.first_s.toFixed(1)}–${s.last_s.toFixed(1)} s`), actions,
    el("p", { className: "muted" }, `${s.frames} frames with this face, ${s.frames_missing} without it in between`), table);
  const timelines = el("div", { className: "timelines" });
  if (before) timelines.append(el("span", { className: "muted" }, `before (recording ${state.previous.saved.id}, emotion ${state.previous.recorder.versions[1]})`), before, el("span", { className: "muted" }, `now (emotion ${recorder.versions[1]})`));
  timelines.append(canvas);
  card.append(before ? timelines : canvas, summary);
  return card;
}

async function trackCall(path, options) {
  if (!state.saved) return true;
  try {
    await api(`/api/recordings/${state.saved.id}/tracks/${path}`, options);
    return true;
  } catch (err) {
    toast(`Not changed on the server: ${err.message}`, "error");
    return false;
  }
}

async function renameTrack(track, name) {
  if (!(await trackCall(`${track}/`, { method: "PATCH", json: { name } }))) return;
  if (name) state.recording.names[track] = name;
  else delete state.recording.names[track];
  showRecording();
}

async function mergeTrack(track, into) {
  const clash = state.recording.clash(track, into);
  if (clash) {
    toast(clash, "error");
    showRecording();
    return;
  }
  if (!(await trackCall(`${track}/merge/`, { method: "POST", json: { into } }))) return;
  state.recording.merge(track, into);
  showRecording();
}

async function deleteTrack(track) {
  if (!confirm(`Delete ${state.recording.trackName(track)} and its ${state.recording.rows.filter((r) => r.track === track).length} results?`)) return;
  if (!(await trackCall(`${track}/`, { method: "DELETE" }))) return;
  state.recording.remove(track);
  showRecording();
}

function refreshDownloads() {
  const recorder = state.recording;
  if (!recorder) return;
  const stem = recorder.name.replace(/\.[^.]+$/, "") || "recording";
  for (const [id, text, suffix] of [["download-frames", recorder.framesCsv({ raw: !$("filter").checked }), "frames"], ["download-tracks", recorder.tracksCsv(), "tracks"]]) {
    const link = $(id);
    if (link.href) URL.revokeObjectURL(link.href);
    link.href = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
    link.download = `${stem}.${suffix}.csv`;
  }
}

async function saveSession() {
  const recorder = state.recording;
  if (!recorder) return;
  const manifest = state.models.manifest;
  $("save-session").disabled = true;
  try {
    const form = new FormData();
    const fields = {
      name: recorder.name, source: state.source === "video" ? "browser" : "camera", checksum: recorder.checksum || "",
      duration_s: (recorder.duration || 0).toFixed(3), width: recorder.width, height: recorder.height,
      frames_analysed: recorder.framesAnalysed, frames_without_face: recorder.framesWithoutFace,
      keypoints_version: manifest.keypoints.id, emotion_version: manifest.emotion.id,
    };
    if (recorder.fps) fields.fps = recorder.fps;
    if (state.previous) fields.reanalysis_of = state.previous.saved.id;
    Object.entries(fields).forEach(([k, v]) => form.append(k, String(v)));
    form.append("results", new Blob([JSON.stringify(recorder.results())], { type: "application/json" }), "results.json");
    const empty = recorder.rows.filter((r) => r.track === null).map((r) => [r.frame, r.time_s]);
    if (empty.length === recorder.framesWithoutFace) form.append("empty_frames", new Blob([JSON.stringify(empty)], { type: "application/json" }), "empty_frames.json");
    const { data } = await api("/api/recordings/", { method: "POST", form });
    state.saved = data;
    toast(`Saved as recording ${data.id}: see the Recordings page.`, "ok");
    showRecording();
  } catch (err) {
    toast(`Could not save the session: ${err.message}`, "error");
  } finally {
    $("save-session").disabled = false;
  }
}

async function sendFrames() {
  const recorder = state.recording;
  if (!recorder || state.source !== "video") {
    toast("Open the video file to send its frames (a webcam session keeps no pictures).", "error");
    return;
  }
  const k = Math.max(1, Math.min(100, Number($("label-k").value) || 10));
  $("send-frames").disabled = true;
  let sent = 0;
  try {
    for (const track of recorder.tracks) {
      const group = recorder.names[track] || `${recorder.name} · Face ${track}`;
      for (const row of framesToLabel(recorder, track, k)) {
        await new Promise((resolve) => { video.addEventListener("seeked", resolve, { once: true }); video.currentTime = (row.frame + 0.25) / recorder.rate; });
        const last = await analyse(video, video.videoWidth, video.videoHeight);
        const target = pointsBox(row.points);
        const best = last.faces.map((f, i) => [iou(pointsBox(f.points), target), i]).sort((a, b) => b[0] - a[0])[0];
        if (!best || best[0] < 0.3) continue;
        const one = pick(last, best[1]);
        const where = state.saved ? `recording ${state.saved.id}` : recorder.name;
        await queueFaces(one, { name: `frame ${row.frame} at ${row.time_s.toFixed(2)} s of ${where}`, picture: await frameJpeg(), group });
        sent += 1;
      }
    }
    toast(`${sent} frame(s) are in the labeling queue.`, "ok");
  } catch (err) {
    toast(`Could not send the frames: ${err.message}`, "error");
  } finally {
    $("send-frames").disabled = false;
  }
}

const pick = (last, i) => Object.fromEntries(Object.entries(last).map(([key, v]) => [key, Array.isArray(v) ? [v[i]] : v]));

// --- the webcam as a session: its results only, the timeline drawn while it runs -----------------------------------

function startRecording() {
  const manifest = state.models.manifest;
  state.liveRecorder = new Recorder({
    name: state.name.replace(/\.png$/, ".webcam"), labels: manifest.emotion.labels, fps: null,
    width: video.videoWidth, height: video.videoHeight, versions: [`v${manifest.keypoints.version}`, `v${manifest.emotion.version}`],
    tracking: manifest.pipeline.tracking,
  });
  state.liveRecorder.t0 = performance.now();
  state.liveRecorder.shown = 0;
  state.recording = state.liveRecorder;
  state.saved = null;
  $("record").textContent = "Stop recording";
  showRecording();
}

function recordLive() {
  const recorder = state.liveRecorder;
  const t = (performance.now() - recorder.t0) / 1000;
  recorder.add(recorder.framesAnalysed, t, state.faces);
  recorder.duration = t;
  if (t - recorder.shown > 1) {
    recorder.shown = t;
    showRecording();
  }
}

function stopRecording() {
  const recorder = state.liveRecorder;
  state.liveRecorder = null;
  $("record").textContent = "Record session";
  state.recording = recorder.finish();
  showRecording();
}

async function main() {
  $("camera").addEventListener("click", startCamera);
  $("photo").addEventListener("change", (e) => openPhoto(e.target.files[0]));
  $("send")?.addEventListener("click", sendForLabeling);
  $("video-file").addEventListener("change", (e) => openVideo(e.target.files[0]));
  $("cancel").addEventListener("click", () => state.abort?.abort());
  $("record").addEventListener("click", () => (state.liveRecorder ? stopRecording() : startRecording()));
  $("play").addEventListener("click", togglePlay);
  $("smooth").addEventListener("change", () => drawTimelines());
  $("filter").addEventListener("change", () => { drawPlayback(); refreshDownloads(); });
  $("save-session")?.addEventListener("click", saveSession);
  $("send-frames")?.addEventListener("click", sendFrames);
  $("replay-file").addEventListener("change", (e) => replayWith(e.target.files[0]));
  $("analyse-again").addEventListener("click", analyseAgain);
  $("unzoom").addEventListener("click", () => setZoom(null));
  view.addEventListener("click", zoomAt);
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); openPhoto(e.dataTransfer.files[0]); });
  try {
    state.analyzer = await createAnalyzer({ backend: new URLSearchParams(location.search).get("backend") || "wasm" });
    $("backend").textContent = state.analyzer.backend;
    state.models = state.analyzer.models;
    const { manifest } = state.analyzer;
    $("versions").textContent = `keypoints v${manifest.keypoints.version}, emotion v${manifest.emotion.version}`;
    setStatus("Ready");
    state.ready = true;
    const saved = new URLSearchParams(location.search).get("recording");
    if (saved) await openSaved(Number(saved));
  } catch (err) {
    console.error(err);
    setStatus(`The models could not load: ${err.message}`, "error");
  }
}

main();
