// Staff import page: the file goes to POST /api/datasets/import/ with upload progress, and the report comes back.
import { csrfToken, esc } from "./api.js";

const $ = (id) => document.getElementById(id);

function guessFormat(name, firstLine) {
  if (name.endsWith(".json") || /^\s*[[{]/.test(firstLine)) return "label-studio";
  if (/left_eye_center_x/.test(firstLine)) return "kaggle-keypoints";
  if (/^\s*emotion\s*,\s*pixels/.test(firstLine)) return "fer2013";
  if (/^\s*emotion\s*,\s*Usage/.test(firstLine)) return "icml";
  return null;
}

// The file's first line, a .gz's too (the browser's own gzip stream, reading no more than the header needs).
async function firstLine(file) {
  if (!file.name.endsWith(".gz")) return (await file.slice(0, 4096).text()).split("\n")[0];
  if (!("DecompressionStream" in window)) return ""; // the server tells the format from the header anyway
  const reader = file.stream().pipeThrough(new DecompressionStream("gzip")).pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  try {
    while (!text.includes("\n") && text.length < 65536) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
  } catch {
    return ""; // not gzip after all: the server's report says what is wrong
  } finally {
    reader.cancel().catch(() => {});
  }
  return text.split("\n")[0];
}

$("file").addEventListener("change", async () => {
  const file = $("file").files[0];
  if (!file) return;
  const guess = guessFormat(file.name.replace(/\.gz$/, ""), await firstLine(file));
  if (guess) $("format").value = guess;
  $("format").dataset.guessed = guess || "";
});

$("import-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const file = $("file").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("file", file);
  form.append("format", $("format").value);
  form.append("relabel", $("relabel").checked ? "true" : "false");
  form.append("add_classes", $("add-classes").checked ? "true" : "false");
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/api/datasets/import/");
  xhr.setRequestHeader("X-CSRFToken", csrfToken());
  xhr.setRequestHeader("Accept", "application/json");
  $("progress").hidden = false;
  $("start").disabled = true;
  $("report").hidden = true;
  xhr.upload.onprogress = (e) => {
    if (e.lengthComputable) $("progress").value = (100 * e.loaded) / e.total;
    $("import-status").textContent = `Uploading ${file.name}: ${(e.loaded / 1e6).toFixed(1)} of ${(e.total / 1e6).toFixed(1)} MB`;
  };
  xhr.upload.onload = () => { $("import-status").textContent = "Uploaded; reading the rows and storing the faces…"; };
  xhr.onerror = () => {
    $("import-status").textContent = "The server cannot be reached. Check your connection and try again.";
    $("start").disabled = false;
  };
  xhr.onload = () => {
    $("start").disabled = false;
    let body = null;
    try { body = JSON.parse(xhr.responseText); } catch { body = null; }
    if (xhr.status >= 400) {
      $("progress").hidden = true; // the upload's bar said 100 %: nothing was imported
      $("progress").value = 0;
      $("import-status").textContent = `Not imported: ${(body && body.detail) || `${xhr.status} ${xhr.statusText}`}`;
      $("import-status").className = "error";
      return;
    }
    $("progress").value = 100;
    $("import-status").textContent = "Done.";
    $("import-status").className = "ok";
    const report = $("report");
    report.hidden = false;
    report.querySelector(".summary").textContent = body.summary;
    const unit = form.get("format") === "label-studio" ? "tasks" : "rows";
    report.querySelector(".bad-count").textContent = `${body.errors.length} bad ${unit}`;
    report.querySelector(".errors").innerHTML = body.errors.map((e) => `<li>${esc(e)}</li>`).join("");
  };
  xhr.send(form);
});
