import { api, toast } from "./api.js";
import {
  FRAME, cropSquare, detectFaces, drawSkeleton, greyFrame, greyPng, initBackend, loadDetector, loadManifest,
  loadModels, predict, uncertainty,
} from "./inference.js";

const $ = (id) => document.getElementById(id);
const view = $("view");
const context = view.getContext("2d");
const video = $("video");
const state = { models: null, detector: null, source: null, live: false, last: null, busy: false };
window.studio = state; // read by the browser tests and handy in the console

function setStatus(text, kind = "muted") {
  $("status").textContent = text;
  $("status").className = kind;
}

function fitCanvas(width, height) {
  const maxWidth = Math.min(960, view.parentElement.clientWidth || 640);
  const scale = Math.min(1, maxWidth / width);
  view.width = Math.round(width * scale);
  view.height = Math.round(height * scale);
  return scale;
}

function renderFaces(faces, labels) {
  const box = $("faces");
  if (!faces.length) {
    box.innerHTML = '<p class="muted">No face found. Face the camera, with light on your face.</p>';
    return;
  }
  box.innerHTML = faces.map((face, i) => {
    const top = face.probabilities.indexOf(Math.max(...face.probabilities));
    const bars = face.probabilities.map((p, j) => `
      <div class="bar${j === top ? " top" : ""}"><span>${labels[j]}</span>
        <meter min="0" max="1" value="${p.toFixed(3)}"></meter><b>${(100 * p).toFixed(0)}%</b></div>`).join("");
    return `<div class="face" data-face="${i}"><h3>Face ${i + 1}: ${labels[top]}</h3>${bars}</div>`;
  }).join("");
}

async function analyse(source, width, height) {
  const t0 = performance.now();
  const boxes = await detectFaces(source, state.detector);
  const t1 = performance.now();
  const crops = boxes.map(cropSquare);
  const greys = crops.map((crop) => greyFrame(source, crop));
  const result = greys.length ? predict(state.models, greys) : { faces: [], ms: { keypoints: 0, emotion: 0 } };
  const scale = view.width / width;
  context.drawImage(source, 0, 0, view.width, view.height);
  const { skeleton } = state.models.manifest.keypoints;
  result.faces.forEach((face, i) => {
    const crop = crops[i];
    const toCanvas = ([x, y]) => [(crop.x + (x / FRAME) * crop.side) * scale, (crop.y + (y / FRAME) * crop.side) * scale];
    context.strokeStyle = "rgba(255,255,255,0.6)";
    context.strokeRect(crop.x * scale, crop.y * scale, crop.side * scale, crop.side * scale);
    drawSkeleton(context, face.points, skeleton, toCanvas, { radius: Math.max(2, (crop.side * scale) / 60) });
  });
  renderFaces(result.faces, state.models.manifest.emotion.labels);
  const total = performance.now() - t0;
  state.last = { boxes, crops, greys: greys.map((g) => Array.from(g)), faces: result.faces, ms: { ...result.ms, detect: t1 - t0, frame: total } };
  $("ms-detect").textContent = `${(t1 - t0).toFixed(1)} ms`;
  $("ms-keypoints").textContent = `${result.ms.keypoints.toFixed(1)} ms / face`;
  $("ms-emotion").textContent = `${result.ms.emotion.toFixed(1)} ms / face`;
  $("ms-frame").textContent = `${total.toFixed(1)} ms (${(1000 / total).toFixed(0)} fps)`;
  if ($("send")) $("send").disabled = !result.faces.length;
  return state.last;
}

async function loop() {
  if (!state.live) return;
  if (video.readyState >= 2 && !state.busy) {
    state.busy = true;
    try {
      await analyse(video, video.videoWidth, video.videoHeight);
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
  state.live = true;
  state.source = "camera";
  $("camera").textContent = "Stop webcam";
  setStatus("Live", "ok");
  requestAnimationFrame(loop);
}

function stopCamera() {
  state.live = false;
  video.srcObject?.getTracks().forEach((t) => t.stop());
  video.srcObject = null;
  $("camera").textContent = "Start webcam";
  setStatus("Camera stopped");
}

async function openPhoto(file) {
  if (!file) return;
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
  state.source = "photo";
  const last = await analyse(image, image.naturalWidth, image.naturalHeight);
  setStatus(last.faces.length ? `${last.faces.length} face(s) in ${file.name}` : `No face found in ${file.name}.`,
    last.faces.length ? "ok" : "error");
}

async function sendForLabeling() {
  const last = state.last;
  if (!last?.faces.length) return;
  $("send").disabled = true;
  try {
    const grey = Float32Array.from(last.greys[0]);
    const form = new FormData();
    form.append("image", await greyPng(grey), "browser-crop.png");
    const { data: face } = await api("/api/faces/upload/", { method: "POST", form });
    const unsure = uncertainty(state.models, grey, last.faces[0]);
    const manifest = state.models.manifest;
    await api(`/api/faces/${face.id}/predictions/`, { method: "POST", json: {
      version: manifest.keypoints.id, points: last.faces[0].points.map(([x, y]) => ({ x, y, visible: true })),
      uncertainty: unsure.keypoints } });
    await api(`/api/faces/${face.id}/predictions/`, { method: "POST", json: {
      version: manifest.emotion.id, probabilities: last.faces[0].probabilities, uncertainty: unsure.emotion } });
    toast(`Face ${face.id} is in the labeling queue.`, "ok");
  } catch (err) {
    toast(`Could not send the face: ${err.message}`, "error");
  } finally {
    $("send").disabled = false;
  }
}

async function main() {
  $("camera").addEventListener("click", startCamera);
  $("photo").addEventListener("change", (e) => openPhoto(e.target.files[0]));
  $("send")?.addEventListener("click", sendForLabeling);
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); openPhoto(e.dataTransfer.files[0]); });
  try {
    const backend = await initBackend(new URLSearchParams(location.search).get("backend") || "wasm");
    $("backend").textContent = backend;
    const manifest = await loadManifest();
    [state.models, state.detector] = await Promise.all([loadModels(manifest), loadDetector()]);
    $("versions").textContent = `keypoints v${manifest.keypoints.version}, emotion v${manifest.emotion.version}`;
    setStatus("Ready");
    state.ready = true;
  } catch (err) {
    console.error(err);
    setStatus(`The models could not load: ${err.message}`, "error");
  }
}

main();
