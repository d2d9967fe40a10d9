// Recorded video in the browser: a file's frames (seeked one by one, never uploaded) -> analyze(..., {video: true})
// -> face tracks -> per-frame rows -> the timeline and the two CSVs. The twin of ml/video.py: the same tracker, the
// same One Euro filter, the same columns (tests/e2e/test_video.py checks the files against the server's).

// The tracker's settings (gap_s, min_iou, max_shift, velocity_weight, confirm_score, redetect_s) come from the served
// manifest's pipeline.tracking (ml.video.tracking_manifest): one place for both paths.
export const DEFAULT_FPS = 10;

// Stable colours for the classes people know; others from the palette in their order.
const KNOWN = { anger: "#e5484d", disgust: "#8e4ec6", fear: "#f5a524", happiness: "#35e0a1", sad: "#3e8ef7", surprise: "#f76ac8", neutral: "#a3b1bf", contempt: "#c2833d" };
const PALETTE = ["#46a758", "#e54666", "#0090ff", "#ffb224", "#7c66dc", "#12a594", "#d6409f", "#978365"];
export const classColour = (name, i) => KNOWN[name] || PALETTE[i % PALETTE.length];

// The One Euro filter (Casiez et al. 2012) on every coordinate of a face's points; speed in training-frame pixels
// per second (38 / eye-to-lip distance), as ml.video.OneEuro.
export class OneEuro {
  constructor(minCutoff = 1.0, beta = 0.5, dCutoff = 1.0) {
    Object.assign(this, { minCutoff, beta, dCutoff, x: null, dx: null, t: null });
  }

  static alpha(cutoff, dt) {
    const tau = 1 / (2 * Math.PI * cutoff);
    return 1 / (1 + tau / dt);
  }

  filter(t, points) {
    const flat = points.flat();
    if (this.x === null || t <= this.t) {
      this.x = flat.slice();
      this.dx = flat.map(() => 0);
      this.t = t;
      return points.map((p) => p.slice());
    }
    const dt = t - this.t;
    const scale = points.length === 15 ? 38 / eyeLip(points) : 1;
    const aD = OneEuro.alpha(this.dCutoff, dt);
    this.x = flat.map((v, i) => {
      const d = ((v - this.x[i]) / dt) * scale;
      this.dx[i] = aD * d + (1 - aD) * this.dx[i];
      const a = OneEuro.alpha(this.minCutoff + this.beta * Math.abs(this.dx[i]), dt);
      return a * v + (1 - a) * this.x[i];
    });
    this.t = t;
    return points.map((_, j) => [this.x[2 * j], this.x[2 * j + 1]]);
  }
}

// eye-centre midpoint to lip-centre midpoint (Kaggle order: eyes 0, 1; lips 13, 14)
function eyeLip(p) {
  const ex = (p[0][0] + p[1][0]) / 2, ey = (p[0][1] + p[1][1]) / 2;
  const lx = (p[13][0] + p[14][0]) / 2, ly = (p[13][1] + p[14][1]) / 2;
  return Math.max(1e-6, Math.hypot(lx - ex, ly - ey));
}

export function pointsBox(points) {
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const x = Math.min(...xs), y = Math.min(...ys);
  return [x, y, Math.max(...xs) - x, Math.max(...ys) - y];
}

export function iou(a, b) {
  const w = Math.min(a[0] + a[2], b[0] + b[2]) - Math.max(a[0], b[0]);
  const h = Math.min(a[1] + a[3], b[1] + b[3]) - Math.max(a[1], b[1]);
  if (w <= 0 || h <= 0) return 0;
  return (w * h) / (a[2] * a[3] + b[2] * b[3] - w * h);
}

const centre = (b) => [b[0] + b[2] / 2, b[1] + b[3] / 2];
// how far b's centre lies from a's, in a's face sizes (the mean of its sides)
const shift = (a, b) => Math.hypot(centre(b)[0] - centre(a)[0], centre(b)[1] - centre(a)[1]) / Math.max(1e-6, (a[2] + a[3]) / 2);
// a track's expected move by time t; none under min_move face sizes (a still face's wobble is not a motion)
function expectedMove(lv, t, minMove) {
  const dx = lv.velocity[0] * (t - lv.lastT), dy = lv.velocity[1] * (t - lv.lastT);
  return Math.hypot(dx, dy) >= (minMove * (lv.box[2] + lv.box[3])) / 2 ? [dx, dy] : [0, 0];
}
const boxAt = (lv, t, minMove) => { const [dx, dy] = expectedMove(lv, t, minMove); return [lv.box[0] + dx, lv.box[1] + dy, lv.box[2], lv.box[3]]; };

// Each face keeps its track number while it is followed (ml.video.Tracker): each track moves on at its velocity; a
// face continues the track whose moved box it overlaps most (greedy, at least min_iou), failing that the
// nearest within max_shift face sizes. expected(track, t): where the follower seeds that face's next crop.
export class Tracker {
  constructor(tracking, { smooth = true } = {}) {
    Object.assign(this, { tracking, smooth, live: [], next: 1 });
  }

  // whether any of these tracks was seen once only: its velocity is unknown, so the detector finds it again next frame
  isNew(tracks) {
    return this.live.some((lv) => lv.seen === 1 && tracks.includes(lv.track));
  }

  expected(track, t) {
    const lv = this.live.find((l) => l.track === track);
    return lv ? expectedMove(lv, t, this.tracking.min_move) : [0, 0];
  }

  update(t, facesPoints) {
    const { gap_s: gapS, min_iou: minIou, max_shift: maxShift, velocity_weight: weight } = this.tracking;
    this.live = this.live.filter((lv) => t - lv.lastT <= gapS + 1e-9);
    const boxes = facesPoints.map(pointsBox);
    const moved = this.live.map((lv) => boxAt(lv, t, this.tracking.min_move));
    const overlaps = [], near = [];
    moved.forEach((m, i) => boxes.forEach((box, j) => { overlaps.push([iou(m, box), i, j]); near.push([shift(m, box), i, j]); }));
    overlaps.sort((a, b) => b[0] - a[0] || b[1] - a[1] || b[2] - a[2]);
    near.sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]);
    const candidates = [...overlaps.filter(([o]) => o >= minIou), ...near.filter(([d]) => d <= maxShift)];
    const takenLive = new Set(), match = new Map();
    for (const [, i, j] of candidates) {
      if (takenLive.has(i) || match.has(j)) continue;
      takenLive.add(i);
      match.set(j, this.live[i]);
    }
    return facesPoints.map((points, j) => {
      let lv = match.get(j);
      if (!lv) {
        lv = { track: this.next++, box: boxes[j], lastT: t, filter: new OneEuro(), velocity: [0, 0], seen: 1 };
        this.live.push(lv);
      } else if (t > lv.lastT) {
        const [c, c0] = [centre(boxes[j]), centre(lv.box)];
        const w = lv.seen === 1 ? 1 : weight;
        lv.velocity = [0, 1].map((k) => w * ((c[k] - c0[k]) / (t - lv.lastT)) + (1 - w) * lv.velocity[k]);
        lv.seen += 1;
      }
      lv.box = boxes[j];
      lv.lastT = t;
      return { track: lv.track, points: this.smooth ? lv.filter.filter(t, points) : points.map((p) => p.slice()) };
    });
  }
}

// Collects one analysis (a file's or the webcam's): rows {frame, time_s, track, score, box, points, raw_points,
// probabilities}, and a row with track null for a frame with no face.
export class Recorder {
  constructor({ name, labels, fps, width, height, versions, tracking }) {
    Object.assign(this, { name, labels, fps, width, height, versions, tracking, rows: [], framesAnalysed: 0, tracker: new Tracker(tracking), names: {}, lastTracks: [] });
  }

  // how far each face of the last frame added is expected to have moved by time t: analyze's {moves}
  moves(t) {
    return this.lastTracks.map((track) => this.tracker.expected(track, t));
  }

  add(frame, t, faces) {
    this.framesAnalysed += 1;
    if (!faces.length) {
      this.rows.push({ frame, time_s: t, track: null });
      this.lastTracks = [];
      return [];
    }
    const tracked = this.tracker.update(t, faces.map((f) => f.points));
    this.lastTracks = tracked.map((x) => x.track);
    const rows = faces.map((f, i) => ({
      frame, time_s: t, track: tracked[i].track, score: f.box.score ?? 0,
      box: [f.box.x, f.box.y, f.box.width, f.box.height], points: tracked[i].points,
      raw_points: f.points.map((p) => p.slice()), probabilities: Array.from(f.probabilities),
    }));
    this.rows.push(...rows);
    return rows;
  }

  // only the tracks the detector was sure of once, renumbered in order of first appearance (ml.video.confirmed)
  finish() {
    const best = new Map();
    for (const r of this.rows) if (r.track !== null) best.set(r.track, Math.max(best.get(r.track) ?? 0, r.score));
    const kept = new Map([...best.entries()].filter(([, s]) => s >= this.tracking.confirm_score).map(([t]) => t).sort((a, b) => a - b).map((t, i) => [t, i + 1]));
    const rows = [], seen = new Set();
    for (const r of this.rows) {
      if (r.track === null || kept.has(r.track)) {
        rows.push(r.track === null ? r : { ...r, track: kept.get(r.track) });
        seen.add(r.time_s);
      }
    }
    for (const r of this.rows) {
      if (!seen.has(r.time_s)) {
        rows.push({ frame: r.frame, time_s: r.time_s, track: null });
        seen.add(r.time_s);
      }
    }
    rows.sort((a, b) => a.time_s - b.time_s || (a.track ?? 0) - (b.track ?? 0));
    this.rows = rows;
    return this;
  }

  // A saved recording (GET /api/recordings/N/ and its frames/) as a Recorder: its timelines, summaries and files.
  static fromSaved(recording, frames, tracking) {
    const r = new Recorder({
      name: recording.name, labels: recording.labels, fps: recording.fps, width: recording.width, height: recording.height,
      versions: [`v${recording.keypoints_version ?? ""}`, `v${recording.emotion_version ?? ""}`], tracking,
    });
    r.rows = frames.map((f) => ({ ...f }));
    r.framesAnalysed = recording.frames_analysed;
    r.savedWithoutFace = recording.frames_without_face;
    r.duration = recording.duration_s;
    r.checksum = recording.checksum;
    r.names = Object.fromEntries(recording.tracks.filter((t) => t.name).map((t) => [t.number, t.name]));
    return r;
  }

  // analysed frames where no face was found (a saved recording stores their count, not their rows)
  get framesWithoutFace() {
    return this.savedWithoutFace ?? this.rows.filter((r) => r.track === null).length;
  }

  get tracks() {
    return [...new Set(this.rows.filter((r) => r.track !== null).map((r) => r.track))].sort((a, b) => a - b);
  }

  trackName(track) {
    return this.names[track] || `Face ${track}`;
  }

  // Why two tracks cannot be one person (both have a face at one moment), or null.
  clash(track, into) {
    const times = new Set(this.rows.filter((r) => r.track === into).map((r) => r.time_s));
    const both = this.rows.find((r) => r.track === track && times.has(r.time_s));
    return both ? `${this.trackName(track)} and ${this.trackName(into)} are both in the picture at ${both.time_s.toFixed(2)} s: two people, not one.` : null;
  }

  merge(track, into) {
    const clash = this.clash(track, into);
    if (clash) throw new Error(clash);
    this.rows.forEach((r) => { if (r.track === track) r.track = into; });
    if (!this.names[into] && this.names[track]) this.names[into] = this.names[track];
    delete this.names[track];
  }

  remove(track) {
    // a frame left with no face keeps its own number (a variable-rate video's frames are not time x rate)
    const frames = new Map(this.rows.filter((r) => r.track === track).map((r) => [r.time_s, r.frame]));
    this.rows = this.rows.filter((r) => r.track !== track);
    for (const [t, frame] of frames) if (!this.rows.some((r) => r.time_s === t)) this.rows.push({ frame, time_s: t, track: null });
    this.rows.sort((a, b) => a.time_s - b.time_s || (a.track ?? 0) - (b.track ?? 0));
    delete this.names[track];
  }

  summaries() {
    const times = [...new Set(this.rows.map((r) => r.time_s))].sort((a, b) => a - b);
    const k = this.labels.length;
    return this.tracks.map((track) => {
      const rows = this.rows.filter((r) => r.track === track);
      const first = rows[0].time_s, last = rows[rows.length - 1].time_s;
      const span = times.filter((t) => t >= first && t <= last).length;
      const share = new Array(k).fill(0), mean = new Array(k).fill(0);
      for (const r of rows) {
        share[argmax(r.probabilities)] += 1 / rows.length;
        r.probabilities.forEach((p, i) => { mean[i] += p / rows.length; });
      }
      return { track, name: this.trackName(track), first_s: first, last_s: last, frames: rows.length, frames_missing: span - rows.length, share, mean };
    });
  }

  framesCsv({ emptyFrames = false, raw = false } = {}) {
    const lines = [csvLine(framesHeader(this.labels))];
    const blank = 6 + 30 + this.labels.length + 1;
    for (const r of this.rows) {
      const head = [this.name, r.frame, num(r.time_s, 3)];
      if (r.track === null) {
        if (emptyFrames) lines.push(csvLine([...head, ...new Array(blank).fill(""), ...this.versions]));
        continue;
      }
      const points = (raw ? r.raw_points : r.points).flat();
      lines.push(csvLine([...head, r.track, num(r.score, 3), ...r.box.map((v) => num(v)), ...points.map((v) => num(v)),
        ...r.probabilities.map((p) => num(p, 4)), this.labels[argmax(r.probabilities)], ...this.versions]));
    }
    return lines.join("");
  }

  tracksCsv() {
    const lines = [csvLine(tracksHeader(this.labels))];
    for (const s of this.summaries()) {
      lines.push(csvLine([this.name, s.track, s.name, num(s.first_s, 3), num(s.last_s, 3), s.frames, s.frames_missing,
        ...s.share.map((v) => num(v, 4)), ...s.mean.map((v) => num(v, 4))]));
    }
    return lines.join("");
  }

  // what POST /api/recordings/ takes as its results file
  results() {
    return this.tracks.map((track) => ({
      number: track, name: this.names[track] || "",
      frames: this.rows.filter((r) => r.track === track).map(({ track: _, ...r }) => r),
    }));
  }
}

export const KEYPOINT_COLUMNS = ["left_eye_center", "right_eye_center", "left_eye_inner_corner", "left_eye_outer_corner",
  "right_eye_inner_corner", "right_eye_outer_corner", "left_eyebrow_inner_end", "left_eyebrow_outer_end",
  "right_eyebrow_inner_end", "right_eyebrow_outer_end", "nose_tip", "mouth_left_corner", "mouth_right_corner",
  "mouth_center_top_lip", "mouth_center_bottom_lip"].flatMap((n) => [`${n}_x`, `${n}_y`]);

export const framesHeader = (labels) => ["video", "frame", "time_s", "track", "detector_score", "box_x", "box_y", "box_w", "box_h",
  ...KEYPOINT_COLUMNS, ...labels, "emotion", "keypoints_version", "emotion_version"];
export const tracksHeader = (labels) => ["video", "track", "name", "first_s", "last_s", "frames", "frames_missing",
  ...labels.map((c) => `share_${c}`), ...labels.map((c) => `mean_${c}`)];

export const argmax = (xs) => xs.reduce((best, v, i) => (v > xs[best] ? i : best), 0);
const num = (v, digits = 2) => Number(v).toFixed(digits);
function csvLine(values) {
  return values.map((v) => {
    const s = String(v ?? "");
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  }).join(",") + "\r\n";
}

// A rate for stepping frame by frame: the file's own, measured from the frames the browser presents while it plays
// a moment muted (browsers do not expose it), snapped to the common rates.
const RATES = [12, 15, 23.976, 24, 25, 29.97, 30, 48, 50, 59.94, 60];
export async function measureRate(video) {
  if (!("requestVideoFrameCallback" in HTMLVideoElement.prototype)) return 30;
  const times = [];
  await new Promise((resolve) => {
    const done = setTimeout(resolve, 1500);
    const onFrame = (_, meta) => {
      times.push(meta.mediaTime);
      if (times.length >= 8) { clearTimeout(done); resolve(); return; }
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
    video.play().catch(resolve);
  });
  video.pause();
  const steps = times.slice(1).map((t, i) => t - times[i]).filter((d) => d > 0).sort((a, b) => a - b);
  if (!steps.length) return 30;
  const raw = 1 / steps[0]; // the shortest step: a frame the player skipped doubles a step, never halves it
  return RATES.reduce((best, r) => (Math.abs(r - raw) < Math.abs(best - raw) ? r : best), RATES[0]);
}

function seek(video, t) {
  return new Promise((resolve, reject) => {
    const ok = () => { cleanup(); resolve(); };
    const bad = () => { cleanup(); reject(new Error("the browser could not decode this part of the file")); };
    const cleanup = () => { video.removeEventListener("seeked", ok); video.removeEventListener("error", bad); };
    video.addEventListener("seeked", ok);
    video.addEventListener("error", bad);
    video.currentTime = t;
  });
}

// The frames to analyse: the first frame at or after each 1/fps step (ml.video.frames), or every frame (fps null).
export function frameSchedule(duration, rate, fps) {
  const count = Math.max(1, Math.floor(duration * rate + 1e-6));
  const frames = [];
  if (!fps) {
    for (let k = 0; k < count; k++) frames.push(k);
    return frames;
  }
  for (let j = 0; ; j++) {
    const k = Math.ceil((j * rate) / fps - 1e-6);
    if (k >= count) break;
    if (!frames.length || k > frames[frames.length - 1]) frames.push(k);
  }
  return frames;
}

// Analyses a loaded <video> frame by frame. onFrame(index, count, rows, t) after each; signal.aborted stops it (the
// rows so far are kept). Yields to the page between frames, so it stays responsive.
export async function analyzeVideo(analyzer, video, { name, fps = DEFAULT_FPS, onFrame, signal } = {}) {
  const rate = await measureRate(video);
  const { manifest } = analyzer;
  const recorder = new Recorder({
    name, labels: manifest.emotion.labels, fps, width: video.videoWidth, height: video.videoHeight,
    versions: [`v${manifest.keypoints.version}`, `v${manifest.emotion.version}`], tracking: manifest.pipeline.tracking,
  });
  recorder.rate = rate;
  recorder.duration = video.duration;
  const schedule = frameSchedule(video.duration, rate, fps);
  analyzer.reset();
  // the detector at least every redetect_s seconds of video, whatever the rate (ml.video.REDETECT_S)
  const redetectS = manifest.pipeline.tracking.redetect_s;
  let detectedT = -Infinity;
  for (let i = 0; i < schedule.length; i++) {
    if (signal?.aborted) break;
    const k = schedule[i];
    await seek(video, (k + 0.25) / rate);
    const t = k / rate;
    const detect = t - detectedT >= redetectS - 1e-6 || recorder.tracker.isNew(recorder.lastTracks);
    const { faces, detected } = await analyzer.analyze(video, { video: true, detect, moves: recorder.moves(t) });
    if (detected) detectedT = t;
    const rows = recorder.add(k, t, faces);
    onFrame?.(i, schedule.length, rows, t);
    if (i % 4 === 3) await new Promise((r) => setTimeout(r, 0));
  }
  recorder.cancelled = Boolean(signal?.aborted);
  return recorder.finish();
}

// Which track of `before` each track of `after` is (two analyses of one video): the one whose faces lie on its faces
// (points' bounds, IoU >= 0.3 at the same time) on most frames, each used once. Map(after's track -> before's).
export function matchTracks(before, after) {
  const at = new Map();
  for (const r of before.rows) if (r.track !== null) at.set(r.time_s.toFixed(3), [...(at.get(r.time_s.toFixed(3)) || []), r]);
  const votes = new Map();
  for (const r of after.rows) {
    if (r.track === null) continue;
    for (const b of at.get(r.time_s.toFixed(3)) || []) {
      if (iou(pointsBox(r.points), pointsBox(b.points)) < 0.3) continue;
      const key = `${r.track} ${b.track}`;
      votes.set(key, (votes.get(key) || 0) + 1);
    }
  }
  const match = new Map(), used = new Set();
  for (const [key] of [...votes.entries()].sort((a, b) => b[1] - a[1])) {
    const [a, b] = key.split(" ").map(Number);
    if (match.has(a) || used.has(b)) continue;
    match.set(a, b);
    used.add(b);
  }
  return match;
}

// Per track, the K frames where the model is least sure or changes its class: each goes to the labeling queue as
// the face found there, its group the track's name (the participant), so every split keeps a person on one side.
export function framesToLabel(recorder, track, k) {
  const rows = recorder.rows.filter((r) => r.track === track);
  const scored = rows.map((r, i) => {
    const top = argmax(r.probabilities);
    const changed = i > 0 && argmax(rows[i - 1].probabilities) !== top;
    return { r, score: 1 - r.probabilities[top] + (changed ? 1 : 0) };
  });
  return scored.sort((a, b) => b.score - a.score || a.r.time_s - b.r.time_s).slice(0, k).map((x) => x.r).sort((a, b) => a.time_s - b.time_s);
}

// sha256 of a file, hex: how a saved recording finds its local file again.
export async function fileChecksum(file) {
  const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// --- the timeline ----------------------------------------------------------------------------------------------

// The rows of one track as series: times, and each class's probabilities; `smooth` (display only) a centred moving
// mean over that many analysed frames.
export function series(recorder, track, smooth = 1) {
  const rows = recorder.rows.filter((r) => r.track === track);
  const times = rows.map((r) => r.time_s);
  const half = Math.floor(smooth / 2);
  const values = recorder.labels.map((_, c) => rows.map((_, i) => {
    const lo = Math.max(0, i - half), hi = Math.min(rows.length, i + half + 1);
    let s = 0;
    for (let j = lo; j < hi; j++) s += rows[j].probabilities[c];
    return s / (hi - lo);
  }));
  return { times, values };
}

// Draws one track's probabilities over time on a canvas (x: 0..duration), the playhead at `now`.
export function drawTimeline(canvas, recorder, track, { duration, now = null, smooth = 1 } = {}) {
  const context = canvas.getContext("2d");
  const dpr = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 600, height = canvas.clientHeight || 120;
  if (canvas.width !== Math.round(width * dpr)) { canvas.width = Math.round(width * dpr); canvas.height = Math.round(height * dpr); }
  context.setTransform(dpr, 0, 0, dpr, 0, 0);
  context.clearRect(0, 0, width, height);
  context.fillStyle = "#0b0f13";
  context.fillRect(0, 0, width, height);
  const x = (t) => (t / Math.max(1e-6, duration)) * width, y = (p) => height - 4 - p * (height - 8);
  context.strokeStyle = "#2a3642";
  context.lineWidth = 1;
  [0.5, 1].forEach((p) => { context.beginPath(); context.moveTo(0, y(p)); context.lineTo(width, y(p)); context.stroke(); });
  const { times, values } = series(recorder, track, smooth);
  const gap = 1.5 / Math.max(1, recorder.fps || recorder.rate || 10);
  values.forEach((vals, c) => {
    context.strokeStyle = classColour(recorder.labels[c], c);
    context.lineWidth = 1.5;
    context.beginPath();
    times.forEach((t, i) => {
      // a gap where the face was not found is left blank, not bridged
      if (i === 0 || t - times[i - 1] > Math.max(gap, 0.25)) context.moveTo(x(t), y(vals[i]));
      else context.lineTo(x(t), y(vals[i]));
    });
    context.stroke();
  });
  if (now !== null) {
    context.strokeStyle = "#ffffff";
    context.lineWidth = 1.5;
    context.beginPath();
    context.moveTo(x(now), 0);
    context.lineTo(x(now), height);
    context.stroke();
  }
}

// The rows at (or just before) time t: one per track, for drawing a playing video.
export function rowsAt(recorder, t) {
  const tol = 1 / Math.max(1, recorder.fps || recorder.rate || 10);
  const best = new Map();
  for (const r of recorder.rows) {
    if (r.track === null || r.time_s > t + 1e-6 || t - r.time_s > tol) continue;
    best.set(r.track, r);
  }
  return [...best.values()];
}
