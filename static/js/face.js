// One face: the crop with its points, the picture it was found in with its box (and the other faces of that picture),
// its whole history, the models' predictions; a face the detector missed can be boxed on the picture and added.
import { api, toast } from "./api.js";
import { drawSkeleton } from "./inference.js";

const $ = (id) => document.getElementById(id);
const faceId = Number(document.querySelector("[data-face]").dataset.face);
const CROP = 96;
let photo = null; // { image, scale, faces: [{id, box}], drag: {x0, y0, x1, y1} | null }

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

const when = (iso) => new Date(iso).toLocaleString();

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error(`could not load ${url}`));
    image.src = url;
  });
}

async function drawCrop(face, skeleton) {
  const canvas = $("crop");
  const context = canvas.getContext("2d");
  const image = await loadImage(face.image_url);
  context.imageSmoothingEnabled = false;
  context.drawImage(image, 0, 0, canvas.width, canvas.height);
  const points = face.labels.keypoints;
  if (points && skeleton) {
    const k = canvas.width / CROP;
    drawSkeleton(context, points.map((p) => [p.x, p.y]), skeleton, ([x, y]) => [x * k, y * k], { radius: 3 });
  }
}

function facts(face) {
  const rows = [
    ["Dataset", face.dataset + (face.source_line ? `, line ${face.source_line}` : "")],
    ["File", face.source_name || "—"],
    ["Group", face.group || "— (its own)"],
    ["Split", face.split === "val" ? "validation (held out)" : "training"],
    ["Added", `${when(face.created_at)}`],
    ["Emotion", face.labels.emotion ? `${face.labels.emotion} (${face.label_sources.emotion})` : "no label"],
    ["Points", face.labels.keypoints ? `labeled (${face.label_sources.keypoints})` : "no label"],
    ["Model's guess", face.guess ? `${face.guess} ${Math.round(face.guess_probability * 100)} %` : "none yet"],
  ];
  if (face.disputed) rows.push(["Disputed", "its labels name more than one emotion"]);
  if (face.excluded) rows.push(["Training", "excluded (staff): left out of training and exports"]);
  // the label check: models that never saw this person
  if (face.emotion_suspicion !== null && face.emotion_suspicion !== undefined) {
    rows.push(["Label check", `${Math.round(face.emotion_suspicion * 100)} % suspicious${face.emotion_suggestion ? `; they say ${face.emotion_suggestion}` : ""}`]);
  }
  if (face.keypoints_suspicion !== null && face.keypoints_suspicion !== undefined) {
    rows.push(["Points check", `${face.keypoints_suspicion.toFixed(1)} px from where they put them`]);
  }
  $("facts").replaceChildren(...rows.flatMap(([k, v]) => {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    return [dt, dd];
  }));
}

function drawPhoto() {
  const { image, scale, faces, drag } = photo;
  const canvas = $("photo");
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0, canvas.width, canvas.height);
  context.lineWidth = 2;
  // this face's box last, so it is on top of a face boxed again around it
  const order = faces.map((f, i) => [f, i]).sort(([a], [b]) => (a.id === faceId) - (b.id === faceId));
  order.forEach(([f, i]) => {
    if (!f.box) return;
    const mine = f.id === faceId;
    context.strokeStyle = mine ? "#35e0a1" : "rgba(255, 204, 0, 0.9)";
    context.beginPath();
    f.box.forEach(([x, y], j) => (j ? context.lineTo(x * scale, y * scale) : context.moveTo(x * scale, y * scale)));
    context.closePath();
    context.stroke();
    if (!mine) {
      context.fillStyle = "rgba(255, 204, 0, 0.9)";
      context.font = "bold 14px system-ui";
      context.fillText(String(i + 1), f.box[0][0] * scale + 4, f.box[0][1] * scale + 16);
    }
  });
  if (drag) {
    context.setLineDash([6, 4]);
    context.strokeStyle = "#ffffff";
    context.strokeRect(drag.x0, drag.y0, drag.x1 - drag.x0, drag.y1 - drag.y0);
    context.setLineDash([]);
  }
}

function siblings(faces) {
  $("siblings").replaceChildren(...faces.map((f, i) => {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = `/faces/${f.id}/`;
    a.textContent = f.id === faceId ? `#${f.id} (this face)` : `${i + 1}: face #${f.id}`;
    li.append(a);
    return li;
  }));
}

async function showPhoto(face) {
  if (!face.original_url) {
    $("no-photo").hidden = false;
    return;
  }
  const [image, others] = await Promise.all([
    loadImage(face.original_url),
    api(`/api/faces/?photo=${faceId}&ordering=id&limit=100`),
  ]);
  const canvas = $("photo");
  const width = Math.min(image.naturalWidth, 900);
  const scale = width / image.naturalWidth;
  canvas.width = Math.round(image.naturalWidth * scale);
  canvas.height = Math.round(image.naturalHeight * scale);
  photo = { image, scale, faces: others.data.results, drag: null };
  $("photo-part").hidden = false;
  drawPhoto();
  siblings(photo.faces);
}

// Dragging a box: canvas pixels are turned into the picture's own when the box is sent.
function pointer(e) {
  const canvas = $("photo");
  const rect = canvas.getBoundingClientRect();
  return {
    x: Math.min(canvas.width, Math.max(0, ((e.clientX - rect.left) * canvas.width) / rect.width)),
    y: Math.min(canvas.height, Math.max(0, ((e.clientY - rect.top) * canvas.height) / rect.height)),
  };
}

function boxInPicture() {
  const { drag, scale } = photo;
  const x0 = Math.min(drag.x0, drag.x1) / scale;
  const y0 = Math.min(drag.y0, drag.y1) / scale;
  return [x0, y0, Math.abs(drag.x1 - drag.x0) / scale, Math.abs(drag.y1 - drag.y0) / scale].map((v) => Math.round(v * 10) / 10);
}

function wireDrawing() {
  const canvas = $("photo");
  let down = false;
  canvas.addEventListener("pointerdown", (e) => {
    if (!photo) return;
    down = true;
    canvas.setPointerCapture(e.pointerId);
    const p = pointer(e);
    photo.drag = { x0: p.x, y0: p.y, x1: p.x, y1: p.y };
    $("add-face").disabled = true;
    drawPhoto();
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!down) return;
    const p = pointer(e);
    Object.assign(photo.drag, { x1: p.x, y1: p.y });
    drawPhoto();
  });
  canvas.addEventListener("pointerup", () => {
    if (!down) return;
    down = false;
    const [, , w, h] = boxInPicture();
    $("add-face").disabled = w < 12 || h < 12;
    $("add-status").textContent = $("add-face").disabled ? "Draw a larger box (12 px a side at least)." : "";
  });
  $("add-face").addEventListener("click", async () => {
    $("add-face").disabled = true;
    $("add-status").textContent = "Cutting the face…";
    try {
      const { status, data } = await api(`/api/faces/${faceId}/photo-faces/`, { method: "POST", json: { box: boxInPicture() } });
      const message = status === 201 ? `Face #${data.id} added; it is in the labeling queue.` : `That is face #${data.id}, already stored.`;
      $("add-status").textContent = message;
      toast(message, "ok");
      photo.drag = null;
      const others = await api(`/api/faces/?photo=${faceId}&ordering=id&limit=100`);
      photo.faces = others.data.results;
      drawPhoto();
      siblings(photo.faces);
    } catch (err) {
      $("add-status").textContent = `Not added: ${err.message}`;
      toast(`Could not add the face: ${err.message}`, "error");
      $("add-face").disabled = false;
    }
  });
}

function empty(table, text) {
  const tr = document.createElement("tr");
  const td = cell(text);
  td.colSpan = 4;
  td.className = "muted";
  tr.append(td);
  $(table).tBodies[0].replaceChildren(tr);
}

function history(annotations) {
  if (!annotations.length) return empty("history", "No annotation yet: nobody has labeled this face.");
  $("history").tBodies[0].replaceChildren(...annotations.map((a) => {
    const tr = document.createElement("tr");
    const said = a.skip ? "skipped (unusable)" : [a.emotion, a.points ? "points" : ""].filter(Boolean).join(" + ");
    tr.append(cell(when(a.created_at)), cell(a.author || "—"), cell(a.origin), cell(said));
    return tr;
  }));
}

function predictions(rows) {
  if (!rows.length) return empty("predictions", "No prediction stored: a model's guess is kept when a face is labeled or sent.");
  $("predictions").tBodies[0].replaceChildren(...rows.map((p) => {
    const tr = document.createElement("tr");
    let said = "points";
    if (p.probabilities) {
      const top = p.probabilities.indexOf(Math.max(...p.probabilities));
      said = `${p.labels[top]} ${Math.round(p.probabilities[top] * 100)} %`;
    }
    tr.append(cell(when(p.created_at)), cell(`${p.task} v${p.version_number}`), cell(said), cell(p.uncertainty.toFixed(3)));
    return tr;
  }));
}

async function main() {
  wireDrawing();
  // back to the filtered grid this face was opened from (its filters are in that page's URL)
  const from = document.referrer && new URL(document.referrer);
  if (from && from.origin === location.origin && from.pathname === "/faces/") $("back").href = from.pathname + from.search;
  try {
    const [{ data: face }, { data: manifest }] = await Promise.all([api(`/api/faces/${faceId}/`), api("/api/models/active/")]);
    $("where").textContent = `${face.dataset}${face.group ? ` · ${face.group}` : ""}`;
    facts(face);
    await drawCrop(face, manifest.keypoints?.skeleton);
    const [annotations, said] = await Promise.all([
      api(`/api/faces/${faceId}/annotations/`),
      api(`/api/faces/${faceId}/predictions/`),
    ]);
    history(annotations.data);
    predictions(said.data);
    await showPhoto(face);
  } catch (err) {
    toast(`Could not load face ${faceId}: ${err.message}`, "error");
  }
}

main();
