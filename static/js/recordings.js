// The Recordings page: the saved sessions with their filters and files; staff send a video to the workers.
import { api, toast } from "./api.js";

const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, text = "") => Object.assign(document.createElement(tag), attrs, text ? { textContent: text } : {});

function row(r) {
  const tr = el("tr");
  tr.dataset.recording = String(r.id);
  const names = r.tracks.map((t) => `${t.label} (${t.frames})`).join(", ") || "none";
  const state = r.status === "succeeded" ? "ready" : r.status === "failed" ? `failed: ${r.error}` : `${r.status} ${(100 * r.progress).toFixed(0)} %`;
  const files = el("td");
  if (r.status === "succeeded") {
    files.append(el("a", { href: `/?recording=${r.id}`, className: "open", title: "Its timelines on the demo page; replay it with its video" }, "open"), " ",
      el("a", { href: `/api/recordings/${r.id}/frames.csv` }, "frames.csv"), " ", el("a", { href: `/api/recordings/${r.id}/tracks.csv` }, "tracks.csv"));
  }
  const name = el("td", {}, r.name);
  if (r.reanalysis_of) name.append(el("div", { className: "muted" }, `analysed again from #${r.reanalysis_of}`));
  tr.append(el("td", {}, String(r.id)), name, el("td", {}, new Date(r.created_at).toLocaleString()),
    el("td", {}, r.created_by || "–"), el("td", {}, `${r.duration_s.toFixed(1)} s`), el("td", {}, r.fps ? `${r.fps} /s` : "every frame"),
    el("td", {}, names), el("td", {}, `keypoints v${r.keypoints_version ?? "–"}, emotion v${r.emotion_version ?? "–"}`),
    el("td", { className: r.status === "failed" ? "error" : "" }, state), files);
  return tr;
}

async function load() {
  const params = new URLSearchParams([...new FormData($("filters")).entries()].filter(([, v]) => v !== ""));
  try {
    const { data } = await api(`/api/recordings/?${params}`);
    $("recordings").tBodies[0].replaceChildren(...data.results.map(row));
    $("empty").hidden = data.results.length > 0;
    if (data.results.some((r) => r.status === "pending" || r.status === "running")) setTimeout(load, 2000);
  } catch (err) {
    toast(`Could not list the recordings: ${err.message}`, "error");
  }
}

async function upload(event) {
  event.preventDefault();
  const form = new FormData($("upload"));
  $("upload-button").disabled = true;
  try {
    const { data } = await api("/api/recordings/upload/", { method: "POST", form });
    toast(`${data.name} is queued for the workers (recording ${data.id}).`, "ok");
    load();
  } catch (err) {
    toast(`Could not send the video: ${err.message}`, "error");
  } finally {
    $("upload-button").disabled = false;
  }
}

$("filters").addEventListener("submit", (e) => { e.preventDefault(); load(); });
if ($("upload")) {
  $("upload").addEventListener("submit", upload);
  $("video").addEventListener("change", () => {
    const file = $("video").files[0];
    $("video-name").textContent = file ? file.name : "none chosen";
    $("upload-button").disabled = !file;
  });
}
load();
