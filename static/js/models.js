import { api, esc, toast } from "./api.js";

const Chart = window.Chart;
const charts = {};
const state = { versions: [], runs: {} };
window.studio = state;

const fmt = (v, digits = 3) => (v == null ? "–" : Number(v).toFixed(digits));
const when = (iso) => new Date(iso).toLocaleString();

// An emotion version that predicts other classes than the label set: its figures are on its own classes, not
// comparable with a version of the set's (a five-class 0.78 beside a seven-class 0.62 invited a wrong promotion).
function otherClasses(version) {
  if (version.kind !== "emotion" || !version.labels || !labelSet.labels.length) return null;
  const same = version.labels.length === labelSet.labels.length && version.labels.every((l) => labelSet.labels.includes(l));
  return same ? null : version.labels;
}

function metricText(version) {
  const m = version.metrics || {};
  if (version.kind === "keypoints") return m.rmse_px != null ? `RMSE ${fmt(m.rmse_px, 2)} px · PCK ${fmt(m.pck, 3)}` : "–";
  const other = otherClasses(version);
  const on = other ? ` <span class="badge warn" title="measured on its own classes: ${esc(other.join(", "))}">on its ${other.length} classes, not the label set's ${labelSet.labels.length}</span>` : "";
  return m.accuracy != null ? `acc ${fmt(m.accuracy)} · F1 ${fmt(m.macro_f1)}${on}` : "–";
}

// Candidate and active scored on the same validation faces in the run that made the candidate: like with like.
function comparisonText(version) {
  const c = version.metrics?.comparison;
  if (!c) return "";
  const unit = c.metric === "rmse_px" ? " px" : "";
  const name = c.metric === "rmse_px" ? "RMSE" : "accuracy";
  const ci = `${Math.round(100 * c.confidence)} % CI [${c.ci_low >= 0 ? "+" : ""}${fmt(c.ci_low, 4)}, ${c.ci_high >= 0 ? "+" : ""}${fmt(c.ci_high, 4)}]`;
  if (version.metrics.slices?.user) return slicesTable(version);
  return `<div class="comparison muted">on the same ${c.n} validation faces: ${name} v${version.number} ${fmt(c.candidate, 4)}${unit}` +
    ` vs ${esc(c.against)} ${fmt(c.active, 4)}${unit}; ${c.improvement >= 0 ? "better" : "worse"} by ${fmt(Math.abs(c.improvement), 4)}${unit}, ${ci}</div>`;
}

const signed = (v) => `${v >= 0 ? "+" : "−"}${fmt(Math.abs(v), 4)}`;

// Where users labeled faces of their own, a version is judged per slice: theirs (each face scored by a model of the
// k-fold that never saw its person) and the reference set's fixed validation faces. Candidate and the model it would
// replace, side by side, with the decision.
function slicesTable(version) {
  const { user, reference } = version.metrics.slices;
  const c = version.metrics.comparison;
  const unit = c.metric === "rmse_px" ? " px" : "";
  // a slice the candidate does worse on is flagged (beyond noise: its whole interval below zero)
  const worse = (s) => (s.ci_high < 0 ? ' <span class="badge warn" title="worse on this slice beyond noise">worse</span>'
    : s.improvement < 0 ? ' <span class="muted" title="worse on this slice, within noise">(lower)</span>' : "");
  const row = (label, s, detail) => `<tr><td>${label}</td><td>${s.n} faces${s.groups ? ` of ${s.groups} people` : ""}${detail}</td>
    <td>${fmt(s.candidate, 4)}${unit}</td><td>${fmt(s.active, 4)}${unit}</td>
    <td>${signed(s.improvement)} [${signed(s.ci_low)}, ${signed(s.ci_high)}]${worse(s)}</td></tr>`;
  const datasets = Object.entries(user.datasets || {}).map(([name, d]) =>
    `<tr class="muted"><td>· ${esc(name)}</td><td>${d.n} faces of ${d.groups} people</td><td>${fmt(d.candidate, 4)}${unit}</td><td>${fmt(d.active, 4)}${unit}</td><td></td></tr>`).join("");
  return `<table class="slices"><tr><th>slice</th><th></th><th>v${version.number}</th><th>${esc(c.against)}</th><th>change, ${Math.round(100 * c.confidence)} % CI</th></tr>
    ${row("your faces", user, ` (${esc(user.method)})`)}${datasets}
    ${row(`reference: ${esc(reference.dataset)}`, reference, " (validation)")}</table>
    <div class="comparison muted">${esc(c.decision)}</div>`;
}

function card(kind) {
  return document.querySelector(`.card[data-kind="${kind}"]`);
}

async function loadVersions() {
  const { data } = await api("/api/models/");
  state.versions = data;
  for (const kind of ["keypoints", "emotion"]) {
    const rows = data.filter((v) => v.kind === kind);
    const body = card(kind).querySelector(".versions");
    body.innerHTML = rows.length ? rows.map((v) => `
      <tr class="${v.active ? "active" : ""}" data-id="${v.id}">
        <td><a href="#" class="show" data-id="${v.id}">v${v.number}</a> ${v.active ? '<span class="badge">active</span>' : ""}
          <div class="muted">${esc(v.note)}${v.parent_number ? ` · from v${v.parent_number}` : ""}</div></td>
        <td>${metricText(v)}${comparisonText(v)}</td>
        <td>${v.trained_on.faces ?? "–"} faces${v.trained_on.human_labels != null ? ` · ${v.trained_on.human_labels} human` : ""}</td>
        <td>${when(v.created_at)}</td>
        <td>${v.active ? "" : `<button class="promote" data-id="${v.id}" data-number="${v.number}">Promote</button>`}</td>
      </tr>`).join("") : '<tr><td colspan="5" class="muted">No version yet.</td></tr>';
    const served = rows.find((v) => v.active);
    const button = card(kind).querySelector(".rollback");
    button.disabled = !served?.rolls_back_to;
    button.title = served?.rolls_back_to
      ? `Serve v${served.rolls_back_to} again, the version active before v${served.number}`
      : "Nothing to roll back to: no other version has been served";
    const active = served || rows[0];
    if (active) showVersion(active.id);
  }
}

async function showVersion(id) {
  const { data: v } = await api(`/api/models/${id}/`);
  const el = card(v.kind);
  el.querySelectorAll("tr").forEach((tr) => tr.classList.toggle("selected", tr.dataset.id === String(id)));
  const history = v.history || {};
  const epochs = (history.loss || []).map((_, i) => i + 1);
  charts[`${v.kind}-loss`]?.destroy();
  const lossCanvas = el.querySelector("canvas.loss");
  lossCanvas.hidden = !epochs.length;
  let note = lossCanvas.parentElement.querySelector(".no-curves");
  if (!note) {
    note = document.createElement("p");
    note.className = "muted no-curves";
    note.textContent = "No training curves: this version was trained outside the app (see models/baseline/README.md).";
    lossCanvas.after(note);
  }
  note.hidden = Boolean(epochs.length);
  // a validation loss far above the training loss: what it means, in words
  let gap = lossCanvas.parentElement.querySelector(".loss-gap");
  if (!gap) {
    gap = Object.assign(document.createElement("p"), { className: "muted loss-gap" });
    lossCanvas.parentElement.append(gap);
  }
  const last = (xs) => (xs && xs.length ? xs[xs.length - 1] : null);
  const [trainLoss, valLoss] = [last(history.loss), last(history.val_loss)];
  gap.hidden = !(trainLoss && valLoss && valLoss > 1.5 * trainLoss);
  gap.textContent = gap.hidden ? "" : `Validation loss ${fmt(valLoss, 3)} is far above the training loss ${fmt(trainLoss, 3)}: ` +
    "the model fits the faces it trained on better than new ones (it over-fits them). More faces, more people, " +
    "or a shorter or gentler run narrow the gap; the version is judged on validation faces either way.";
  // no curves, no chart: Chart.js would set the canvas visible again and draw empty axes
  if (epochs.length) charts[`${v.kind}-loss`] = new Chart(el.querySelector("canvas.loss"), {
    type: "line",
    data: { labels: epochs, datasets: [
      { label: "train", data: history.loss || [], borderColor: "#35e0a1", pointRadius: 0 },
      { label: "validation", data: history.val_loss || [], borderColor: "#ffcc00", pointRadius: 0 },
    ] },
    options: { animation: false, scales: { y: { type: "logarithmic" } }, plugins: { title: { display: !epochs.length, text: "no curves recorded" } } },
  });
  const second = el.querySelector(".second");
  const m = v.metrics || {};
  if (v.kind === "emotion" && m.confusion_matrix) {
    const max = Math.max(...m.confusion_matrix.flat());
    second.innerHTML = `<h3>Confusion (v${v.number}; rows true, columns predicted)</h3><table class="confusion"><tr><th></th>${m.labels.map((l) => `<th>${esc(l)}</th>`).join("")}</tr>` +
      m.confusion_matrix.map((row, i) => `<tr><th>${esc(m.labels[i])}</th>${row.map((n) => `<td style="background: rgba(53,224,161,${(0.85 * n / max).toFixed(2)})">${n}</td>`).join("")}</tr>`).join("") + "</table>" +
      recallTable(m);
  } else if (v.kind === "keypoints" && m.per_point_error_px) {
    // one row per point, every label shown: 15 points need the height
    second.innerHTML = `<h3>Error per point (v${v.number}, px)</h3><div class="points-box"><canvas class="points"></canvas></div>`;
    charts[`${v.kind}-points`]?.destroy();
    charts[`${v.kind}-points`] = new Chart(second.querySelector("canvas"), {
      type: "bar",
      data: { labels: Object.keys(m.per_point_error_px).map((n) => n.replaceAll("_", " ")), datasets: [{ label: "mean error (px)", data: Object.values(m.per_point_error_px), backgroundColor: "#35e0a1" }] },
      options: {
        animation: false, indexAxis: "y", maintainAspectRatio: false,
        // one label per point, small enough not to overlap; the value axis with a few round ticks
        scales: { y: { ticks: { autoSkip: false, font: { size: 10 } } }, x: { ticks: { maxTicksLimit: 6 } } },
        plugins: { legend: { display: false } },
      },
    });
  } else {
    second.innerHTML = '<p class="muted">No detailed metrics for this version.</p>';
  }
}

function renderRun(run) {
  const el = card(run.kind).querySelector(".run");
  el.hidden = false;
  // a run that stopped early (patience) is still done: the bar is full once it has finished
  const finished = !["pending", "running"].includes(run.status);
  const pct = finished ? 100 : run.epochs ? Math.round((100 * run.epoch) / run.epochs) : 0;
  const eta = run.eta_seconds != null && run.status === "running" ? ` · ETA ${Math.ceil(run.eta_seconds)} s` : "";
  const loss = run.loss != null ? ` · loss ${fmt(run.loss, 5)} · val ${fmt(run.val_loss, 5)}` : "";
  el.innerHTML = `<div><b>Run ${run.id}: ${esc(run.status)}</b> · epoch ${run.epoch}/${run.epochs || "?"}${loss}${eta}</div>
    <progress max="100" value="${pct}"></progress>
    ${run.decision ? `<div>${esc(run.decision)}</div>` : ""}${run.error ? `<div class="error">${esc(run.error)}</div>` : ""}
    ${["pending", "running"].includes(run.status) ? `<button class="cancel" data-id="${run.id}">Cancel</button>` : ""}
    <pre>${esc((run.log || "").split("\n").slice(-8).join("\n"))}</pre>`;
}

// While a run of a kind is pending or running, its Retrain button is off (a second press would only get a 409).
function retrainEnabled(kind, enabled) {
  const button = card(kind).querySelector("button.retrain");
  button.disabled = !enabled;
  button.title = enabled ? "" : "A run of this kind is going; wait for it or cancel it.";
}

async function follow(runId) {
  if (state.runs[runId]) return;
  state.runs[runId] = true;
  for (;;) {
    let run;
    try {
      ({ data: run } = await api(`/api/training-runs/${runId}/`));
    } catch (err) {
      toast(`Lost track of run ${runId}: ${err.message}`, "error");
      break;
    }
    renderRun(run);
    retrainEnabled(run.kind, !["pending", "running"].includes(run.status));
    if (!["pending", "running"].includes(run.status)) {
      await loadVersions();
      showPlan(run.kind);
      toast(`Run ${run.id} ${run.status}.`, run.status === "succeeded" ? "ok" : "error");
      break;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  delete state.runs[runId];
}

// What a retrain would do now (faces, recipe, estimated time), shown before anyone presses Retrain.
async function showPlan(kind) {
  const fromScratch = card(kind).querySelector(".scratch").checked;
  const el = card(kind).querySelector(".plan");
  try {
    const { data: p } = await api(`/api/training-runs/plan/?kind=${kind}&from_scratch=${fromScratch}`);
    el.textContent =
      `${p.mode === "fine-tune" ? "Fine-tune the active version" : "Train from scratch (the full recipe)"}: ` +
      `${p.faces.train} training / ${p.faces.val} validation faces, up to ${p.epochs} epoch${p.epochs === 1 ? "" : "s"} — about ${p.estimate} ` +
      `(${p.basis}).`;
    // a run that would fail at once is not offered: the reason is said here, before, not in a failed run after
    const button = card(kind).querySelector(".retrain");
    button.disabled = Boolean(p.blocked);
    button.title = p.blocked || "";
    if (p.blocked) el.textContent = `Retraining is not possible yet. ${p.blocked}`;
    return p;
  } catch (err) {
    el.textContent = `Could not estimate a retrain: ${err.message}`;
    return null;
  }
}

async function retrain(kind) {
  const fromScratch = card(kind).querySelector(".scratch").checked;
  if (fromScratch) {
    const plan = await showPlan(kind);
    if (plan && !confirm(`Train ${kind} from scratch? ${card(kind).querySelector(".plan").textContent}`)) return;
  }
  try {
    const { status, data } = await api("/api/training-runs/", { method: "POST", json: { kind, from_scratch: fromScratch } });
    if (status === 409) toast(data.detail);
    follow(data.id);
  } catch (err) {
    toast(err.message, "error");
  }
}

async function promote(id, number, kind) {
  const version = state.versions.find((v) => String(v.id) === String(id));
  const c = version?.metrics?.comparison;
  const figures = c ? `\n\n${c.decision || ""}` : "";
  const other = version && otherClasses(version);
  const classes = other ? `\n\nv${number} predicts ${other.length} classes (${other.join(", ")}), not the label set's ${labelSet.labels.length} (${labelSet.labels.join(", ")}): its accuracy is on its own classes and cannot be compared with a version of the set's, and faces of the other classes will read as one of its ${other.length}.` : "";
  if (!confirm(`Serve ${kind} v${number} to every user from now on?${figures}${classes}`)) return;
  try {
    await api(`/api/models/${id}/promote/`, { method: "POST" });
    toast(`${kind} v${number} is now active.`, "ok");
    await loadVersions();
  } catch (err) {
    toast(err.message, "error");
  }
}

async function rollback(kind) {
  const served = state.versions.find((v) => v.kind === kind && v.active);
  if (!served?.rolls_back_to) {
    toast(`Nothing to roll back to: ${kind} v${served?.number ?? "?"} is the only version ever served.`);
    return;
  }
  if (!confirm(`Roll ${kind} back from v${served.number} to v${served.rolls_back_to}?`)) return;
  try {
    const { data } = await api("/api/models/rollback/", { method: "POST", json: { kind } });
    toast(`${kind} rolled back to v${data.to_number}.`, "ok");
    await loadVersions();
  } catch (err) {
    toast(err.message, "error");
  }
}

document.addEventListener("change", (event) => {
  if (event.target.matches(".scratch")) showPlan(event.target.closest(".card").dataset.kind);
});

document.addEventListener("click", (event) => {
  const t = event.target;
  if (t.matches(".retrain")) retrain(t.dataset.kind);
  else if (t.matches(".rollback")) rollback(t.dataset.kind);
  else if (t.matches(".promote")) promote(t.dataset.id, t.dataset.number, t.closest(".card").dataset.kind);
  else if (t.matches(".cancel")) api(`/api/training-runs/${t.dataset.id}/cancel/`, { method: "POST" }).catch((e) => toast(e.message, "error"));
  else if (t.matches("a.show")) { event.preventDefault(); showVersion(t.dataset.id); }
});

// Per class: recall on faces the version never trained on, with its interval by person where the run measured one
// (a new class's few faces say how sure that figure is).
function recallTable(m) {
  const ci = m.per_class_recall_ci;
  const plain = m.per_class_recall;
  if (!ci && !plain) return "";
  const added = new Set(m.classes_added || []);
  const rows = Object.entries(ci || plain).map(([name, r]) => {
    const figure = ci ? `${fmt(r.recall, 3)} <span class="muted">[${fmt(r.ci_low, 3)}, ${fmt(r.ci_high, 3)}]</span>` : fmt(r, 3);
    const who = ci ? `${r.n} faces · ${r.groups} ${r.groups === r.n ? "faces" : "people"}` : "";
    return `<tr><th>${esc(name)}${added.has(name) ? ' <span class="badge">new</span>' : ""}</th><td>${figure}</td><td class="muted">${who}</td></tr>`;
  }).join("");
  const title = ci ? "Recall per class (95 % interval by person)" : "Recall per class";
  return `<h3>${title}</h3><table class="recall">${rows}</table>`;
}

// The emotion label set: the classes labelers see and a retrain learns. Staff add, reorder, retire or pick a preset;
// a retired class keeps its stored labels (they are stored by name) and comes back when added again.
const labelSet = { labels: [], retired: [], presets: {} };

function renderLabelSet() {
  const card = document.getElementById("labelset");
  if (!card) return;
  const list = card.querySelector(".classes");
  list.replaceChildren(...labelSet.labels.map((key, i) => {
    const li = document.createElement("li");
    const name = Object.assign(document.createElement("span"), { textContent: `${i + 1}. ${key}` });
    const button = (text, action, disabled = false) => {
      const b = Object.assign(document.createElement("button"), { type: "button", textContent: text, disabled });
      b.dataset.action = action;
      b.dataset.index = String(i);
      return b;
    };
    li.append(name, button("↑", "up", i === 0), button("↓", "down", i === labelSet.labels.length - 1), button("Retire", "retire", labelSet.labels.length <= 2));
    return li;
  }));
  card.querySelector(".retired").textContent = labelSet.retired.length
    ? `Retired (their labels are kept): ${labelSet.retired.join(", ")}` : "";
  const presets = card.querySelector(".preset");
  if (!presets.options.length) {
    presets.append(new Option("Apply a preset…", ""), ...Object.entries(labelSet.presets).map(([name, labels]) => new Option(`${name}: ${labels.join(", ")}`, name)));
  }
}

async function loadLabelSet() {
  Object.assign(labelSet, (await api("/api/labelsets/emotion/")).data);
  renderLabelSet();
}

async function saveLabelSet(json, what) {
  try {
    Object.assign(labelSet, (await api("/api/labelsets/emotion/", { method: "PUT", json })).data);
    renderLabelSet();
    toast(`Label set: ${what}. A retrain teaches the model the set as it is now.`, "ok");
    showPlan("emotion");
    loadVersions(); // which versions predict other classes than the set changed with it
  } catch (err) {
    toast(err.message, "error");
    loadLabelSet();
  }
}

document.getElementById("labelset")?.addEventListener("click", (event) => {
  const t = event.target;
  const i = Number(t.dataset.index);
  const labels = [...labelSet.labels];
  if (t.dataset.action === "up" || t.dataset.action === "down") {
    const j = t.dataset.action === "up" ? i - 1 : i + 1;
    [labels[i], labels[j]] = [labels[j], labels[i]];
    saveLabelSet({ labels }, `${labelSet.labels[i]} moved`);
  } else if (t.dataset.action === "retire") {
    saveLabelSet({ labels: labels.filter((_, k) => k !== i) }, `${labelSet.labels[i]} retired`);
  }
});
document.getElementById("labelset")?.addEventListener("submit", (event) => {
  event.preventDefault();
  const input = event.target.querySelector("input[name=class]");
  const name = input.value.trim();
  if (!name) return;
  saveLabelSet({ labels: [...labelSet.labels, name] }, `${name} added`).then(() => { input.value = ""; });
});
document.getElementById("labelset")?.addEventListener("change", (event) => {
  if (!event.target.matches(".preset") || !event.target.value) return;
  saveLabelSet({ preset: event.target.value }, `preset ${event.target.value}`);
  event.target.value = "";
});

async function loadAgreement() {
  const el = document.getElementById("agreement");
  const { data: a } = await api("/api/labeling/agreement/");
  const kp = a.keypoints.faces ? `${fmt(a.keypoints.mean_distance_px, 2)} px apart on average` : "no shared faces yet";
  const em = a.emotion.faces
    ? `Fleiss' kappa ${fmt(a.emotion.fleiss_kappa, 2)}, unanimous on ${(100 * a.emotion.unanimous_share).toFixed(0)} %`
    : "no shared faces yet";
  el.querySelector(".summary").textContent =
    `Keypoints: ${a.keypoints.faces} shared faces, ${kp}. Emotion: ${a.emotion.faces} shared faces, ${em}.`;
  const share = (v, n) => (v == null ? "–" : `${(100 * v).toFixed(0)} % of ${n}`);
  el.querySelector(".labelers").innerHTML = a.labelers.map((l) => `<tr><td>${esc(l.labeler)}</td><td>${l.faces}</td>
    <td>${l.median_seconds_per_save ?? "–"}</td><td>${share(l.emotion_agreement_with_others, l.emotion_shared_faces)}</td>
    <td>${l.keypoints_distance_to_others_px == null ? "–" : `${fmt(l.keypoints_distance_to_others_px, 2)} on ${l.keypoints_shared_faces}`}</td></tr>`).join("")
    || '<tr><td colspan="5" class="muted">No human labels yet.</td></tr>';
}

async function main() {
  try {
    // the label set first: a version of other classes is marked against it
    await loadLabelSet().catch((err) => toast(`Could not load the label set: ${err.message}`, "error"));
    await loadVersions();
    loadAgreement().catch((err) => toast(`Could not load the agreement figures: ${err.message}`, "error"));
    document.querySelectorAll(".card[data-kind]").forEach((c) => showPlan(c.dataset.kind));
    const { data } = await api("/api/training-runs/?limit=10");
    (data.results || []).filter((r) => ["pending", "running"].includes(r.status)).forEach((r) => follow(r.id));
    state.ready = true;
  } catch (err) {
    toast(`Could not load the models: ${err.message}`, "error");
  }
}

main();
