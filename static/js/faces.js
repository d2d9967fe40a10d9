// The Faces page: every filter lives in the URL (shareable; Back and Forward walk through them), the grid shows one
// page of faces with their label and the model's guess, and each filter's values carry how many faces they would show.
import { api, toast } from "./api.js";

const PAGE = 60;
const $ = (id) => document.getElementById(id);
const form = $("filters");
const FIELDS = [...form.elements].filter((el) => el.name).map((el) => el.name);
const STATES = { unlabeled: "unlabeled", labeled: "labeled", review: "waiting for review", disputed: "disputed" };
let offset = 0;
let requestNo = 0;
let total = 0;
const bulk = $("bulk");
const selected = new Set();

function params() {
  const query = new URLSearchParams();
  const q = $("q").value.trim();
  if (q) query.set("q", q);
  for (const name of FIELDS) {
    const value = form.elements[name].value.trim();
    if (value) query.set(name, value);
  }
  if ($("ordering").value !== "-id") query.set("ordering", $("ordering").value);
  return query;
}

function readUrl() {
  const query = new URLSearchParams(location.search);
  $("q").value = query.get("q") || "";
  for (const name of FIELDS) {
    const el = form.elements[name];
    const value = query.get(name) || "";
    if (el.tagName === "SELECT" && value && ![...el.options].some((o) => o.value === value)) {
      el.append(new Option(value, value)); // a shared link may name a value this page has not counted yet
    }
    el.value = value;
  }
  $("ordering").value = query.get("ordering") || "-id";
  offset = Math.max(0, parseInt(query.get("offset") || "0", 10) || 0);
}

function writeUrl() {
  const query = params();
  if (offset) query.set("offset", String(offset));
  const url = `${location.pathname}${query.toString() ? `?${query}` : ""}`;
  if (url !== `${location.pathname}${location.search}`) history.pushState(null, "", url);
}

function label(value, facet) {
  if (facet === "state") return STATES[value] || value;
  if (value === "none") return facet === "guess" ? "no guess" : "no label";
  return value;
}

function renderFacets(facets) {
  for (const select of form.querySelectorAll("select[data-facet]")) {
    const facet = select.dataset.facet;
    const counts = facets[facet] || {};
    const chosen = select.value;
    const values = Object.keys(counts);
    if (chosen && !values.includes(chosen)) values.push(chosen);
    select.replaceChildren(new Option("all", ""), ...values.map((value) => {
      const option = new Option(`${label(value, facet)} (${(counts[value] ?? 0).toLocaleString()})`, value);
      return option;
    }));
    select.value = chosen;
  }
}

function tile(face) {
  const li = document.createElement("li");
  const link = document.createElement("a");
  link.href = `/faces/${face.id}/`;
  link.className = "tile";
  link.dataset.face = face.id;
  const img = document.createElement("img");
  Object.assign(img, { src: face.image_url, width: 96, height: 96, loading: "lazy", alt: `Face ${face.id}` });
  const id = document.createElement("span");
  id.className = "id";
  id.textContent = `#${face.id}`;
  const emotion = document.createElement("span");
  emotion.className = "label";
  const value = face.labels.emotion;
  emotion.textContent = value ? value : "no label";
  if (value) emotion.title = `label from ${face.label_sources.emotion}`;
  const guess = document.createElement("span");
  guess.className = "guess muted";
  guess.textContent = face.guess ? `guess ${face.guess} ${Math.round(face.guess_probability * 100)}%` : "";
  if (face.guess && value && face.guess !== value) guess.classList.add("differs");
  const check = document.createElement("span");
  check.className = "check";
  if (face.emotion_suspicion !== null && face.emotion_suspicion !== undefined) {
    // the label check: how unlikely models that never saw this person find the label, and what they would say
    check.textContent = `check ${Math.round(face.emotion_suspicion * 100)}%${face.emotion_suggestion && face.emotion_suggestion !== value ? ` → ${face.emotion_suggestion}` : ""}`;
    check.title = "1 − the probability that models which never saw this person give this label";
    if (face.emotion_suspicion > 0.5) check.classList.add("suspect");
  }
  const flags = document.createElement("span");
  flags.className = "flags";
  for (const [on, text] of [[face.disputed, "disputed"], [face.split === "val", "val"],
    [face.labels.keypoints, "points"]]) {
    if (!on) continue;
    const badge = document.createElement("span");
    badge.className = text === "disputed" ? "badge warn" : "badge quiet";
    badge.textContent = text;
    flags.append(badge);
  }
  if (face.excluded) {
    const badge = document.createElement("span");
    badge.className = "badge warn";
    badge.textContent = "excluded";
    flags.append(badge);
  }
  link.append(img, id, emotion, guess, check, flags);
  li.append(link);
  if (bulk) { // staff pick faces for a bulk action
    const pick = document.createElement("input");
    Object.assign(pick, { type: "checkbox", className: "pick", checked: selected.has(face.id) });
    pick.setAttribute("aria-label", `Select face ${face.id}`);
    pick.addEventListener("change", () => {
      if (pick.checked) selected.add(face.id); else selected.delete(face.id);
      showSelection();
    });
    li.append(pick);
  }
  return li;
}

async function load() {
  const mine = ++requestNo;
  const query = params();
  const listQuery = new URLSearchParams(query);
  listQuery.set("limit", String(PAGE));
  listQuery.set("offset", String(offset));
  const facetQuery = new URLSearchParams(query);
  facetQuery.delete("ordering");
  $("grid").setAttribute("aria-busy", "true");
  try {
    const [list, facets] = await Promise.all([api(`/api/faces/?${listQuery}`), api(`/api/faces/facets/?${facetQuery}`)]);
    if (mine !== requestNo) return; // a newer filter was chosen meanwhile
    $("problem").hidden = true;
    renderFacets(facets.data);
    const { count, results } = list.data;
    $("grid").replaceChildren(...results.map(tile));
    total = count;
    showSelection();
    $("count").textContent = `${count.toLocaleString()} face${count === 1 ? "" : "s"}`;
    const last = Math.min(offset + results.length, count);
    $("page").textContent = count ? `${(offset + 1).toLocaleString()}–${last.toLocaleString()} of ${count.toLocaleString()}` : "no face matches these filters";
    $("prev").disabled = offset === 0;
    $("next").disabled = offset + PAGE >= count;
  } catch (err) {
    if (mine !== requestNo) return;
    $("problem").textContent = err.body ? Object.entries(err.body).map(([k, v]) => `${k}: ${[].concat(v).join(" ")}`).join("; ") : err.message;
    $("problem").hidden = false;
    toast(`Could not load faces: ${err.message}`, "error");
  } finally {
    if (mine === requestNo) $("grid").removeAttribute("aria-busy");
  }
}

function showSelection() {
  if (!bulk) return;
  const whole = $("whole-filter").checked;
  const n = whole ? total : selected.size;
  $("selected").textContent = whole ? `all ${n.toLocaleString()} faces of this filter` : (n ? `${n} selected` : "none selected");
  bulk.querySelectorAll("button[data-action], #export").forEach((b) => { b.disabled = n === 0; });
}

// The selection's labeled faces as a download: the picked ids, or the whole filter (the excluded ones left out).
function exportSelection() {
  const query = $("whole-filter").checked ? params() : new URLSearchParams({ ids: [...selected].join(",") });
  query.delete("ordering");
  const format = $("export-format").value;
  const n = $("whole-filter").checked ? total : selected.size;
  // Label Studio's tasks carry the served models' reading of each face: 3,004 faces took 31.7 s on the 2-core
  // development machine (10.6 ms a face, docs/faces.md); the browser shows nothing until the file starts.
  if (format === "label-studio" && n > 200) {
    toast(`Preparing ${n.toLocaleString()} faces for Label Studio: the served models read each one first (about ${Math.ceil((n * 10.6) / 1000)} s here). The download starts when it is ready.`, "ok");
  }
  window.location.assign(`/api/datasets/export/${format}/?${query}`);
}

async function act(action) {
  const whole = $("whole-filter").checked;
  const body = { action };
  if (whole) body.filter = Object.fromEntries(params()); else body.ids = [...selected];
  if (body.filter) delete body.filter.ordering; // the order does not change which faces a filter shows
  const words = { review: "sent for review", exclude: "excluded from training", include: "included again", queue_first: "put first in the queue" };
  // a whole filter can be thousands of faces: said before it is done (a picked few are in sight already)
  if (whole && !confirm(`All ${total.toLocaleString()} faces of this filter will be ${words[action]}. Go on?`)) return;
  try {
    const { data } = await api("/api/faces/bulk/", { method: "POST", json: body });
    toast(`${data.changed} of ${data.selected} faces ${words[action]}.`, "ok");
    selected.clear();
    $("whole-filter").checked = false;
    load();
  } catch (err) {
    toast(`Nothing changed: ${err.message}`, "error");
  }
}

if (bulk) {
  $("select-page").addEventListener("click", () => {
    document.querySelectorAll(".grid .pick").forEach((box) => { box.checked = true; selected.add(Number(box.closest("li").querySelector(".tile").dataset.face)); });
    showSelection();
  });
  $("whole-filter").addEventListener("change", showSelection);
  $("export").addEventListener("click", exportSelection);
  bulk.querySelectorAll("button[data-action]").forEach((b) => b.addEventListener("click", () => act(b.dataset.action)));
}

function changed() {
  selected.clear();
  if (bulk) $("whole-filter").checked = false;
  offset = 0;
  writeUrl();
  load();
}

let typing;
form.addEventListener("change", changed);
form.addEventListener("input", (e) => {
  if (e.target.tagName !== "INPUT") return;
  clearTimeout(typing);
  typing = setTimeout(changed, 400);
});
$("search").addEventListener("submit", (e) => { e.preventDefault(); changed(); });
$("q").addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(changed, 400); });
$("ordering").addEventListener("change", changed);
$("clear").addEventListener("click", () => { form.reset(); $("q").value = ""; changed(); });
$("prev").addEventListener("click", () => { offset = Math.max(0, offset - PAGE); writeUrl(); load(); });
$("next").addEventListener("click", () => { offset += PAGE; writeUrl(); load(); });
window.addEventListener("popstate", () => { readUrl(); load(); });

// The label check runs on the workers (k models by person, minutes): follow it here, then show the suspects first.
async function followCheck(runId) {
  const status = $("check-status");
  for (;;) {
    const { data: run } = await api(`/api/training-runs/${runId}/`);
    if (run.status === "succeeded") {
      status.textContent = run.decision;
      $("ordering").value = "-emotion_suspicion";
      changed();
      return;
    }
    if (run.status === "failed" || run.status === "cancelled") {
      status.textContent = `Label check ${run.status}: ${run.error || ""}`;
      $("check").disabled = false;
      return;
    }
    status.textContent = run.status === "pending" ? "Label check waiting for a worker…"
      : `Checking labels: epoch ${run.epoch}/${run.epochs || "?"}${run.eta_seconds ? `, about ${Math.ceil(run.eta_seconds / 60)} min left` : ""}`;
    await new Promise((resolve) => setTimeout(resolve, 3000));
  }
}

$("check")?.addEventListener("click", async () => {
  $("check").disabled = true;
  try {
    const { status, data } = await api("/api/label-check/", { method: "POST", json: { kind: "emotion" } });
    if (status === 409 && data.job !== "label_check") {
      $("check-status").textContent = data.detail;
      $("check").disabled = false;
      return;
    }
    await followCheck(data.id);
  } catch (err) {
    $("check-status").textContent = `Not started: ${err.message}`;
    $("check").disabled = false;
  }
});

readUrl();
load();
