// mmadfer web app: Analyze queue, Viewer, Live, Runs. Plain ES module, no build step, no outside resources.
const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...kids) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k === "style") {  // through the CSSOM: the CSP forbids inline style attributes
      for (const decl of v.split(";")) {
        const i = decl.indexOf(":");
        if (i > 0) node.style.setProperty(decl.slice(0, i).trim(), decl.slice(i + 1).trim());
      }
    } else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== false && v != null) node.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids) if (kid != null) node.append(kid);
  return node;
};
// matplotlib's tab10, so the page and chart.png speak the same colours
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const state = { info: null, jobs: [], uploads: new Map(), viewer: null, rows: [], tab: "analyze" };
const exposed = { live: { predictions: 0, tracks: () => [] } };
window.__mmadfer = exposed;  // read by the browser tests

async function api(path, options = {}) {
  const res = await fetch(path, { credentials: "same-origin", ...options });
  const body = res.headers.get("content-type")?.includes("json") ? await res.json() : await res.text();
  if (!res.ok) throw new Error(typeof body === "object" ? body.detail ?? res.statusText : body || res.statusText);
  return body;
}
const color = (label) => PALETTE[Math.max(0, state.info.labels.indexOf(label)) % PALETTE.length];
const fmt = (s) => `${Math.floor(s / 60)}:${(s % 60).toFixed(1).padStart(4, "0")}`;

// ---------------------------------------------------------------------------------------------------- tabs
function showTab(name) {
  state.tab = name;
  for (const b of document.querySelectorAll(".tabs button")) b.setAttribute("aria-selected", String(b.dataset.tab === name));
  for (const p of document.querySelectorAll(".panel")) p.hidden = p.id !== name;
  document.body.dataset.tab = name;
  if (name === "viewer") drawChart();
  if (name === "runs") loadRuns();
}
for (const b of document.querySelectorAll(".tabs button")) b.addEventListener("click", () => showTab(b.dataset.tab));

// ---------------------------------------------------------------------------------------------------- Analyze
const drop = $("#drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); uploadAll(e.dataTransfer.files); });
$("#files").addEventListener("change", (e) => { uploadAll(e.target.files); e.target.value = ""; });

function uploadAll(files) { for (const f of files) upload(f); }

function upload(file) {
  const key = `u${Date.now()}${Math.random()}`;
  const entry = { name: file.name, progress: 0, error: null };
  state.uploads.set(key, entry);
  const form = new FormData();
  form.append("file", file);
  form.append("anonymize", $("#opt-anon").checked ? "true" : "false");
  if ($("#opt-stride").value) form.append("stride", $("#opt-stride").value);
  if ($("#opt-window").value) form.append("window", $("#opt-window").value);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/api/jobs");
  xhr.upload.onprogress = (e) => { if (e.lengthComputable) { entry.progress = e.loaded / e.total; renderQueue(); } };
  xhr.onload = () => {
    let body = {};
    try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
    if (xhr.status === 201) { state.uploads.delete(key); refreshJobs(); }
    else { entry.error = body.detail || `upload failed (HTTP ${xhr.status})`; renderQueue(); }
  };
  xhr.onerror = () => { entry.error = "upload failed: the connection was closed (file too large?)"; renderQueue(); };
  xhr.send(form);
  renderQueue();
}

async function refreshJobs() {
  try { state.jobs = (await api("/api/jobs")).jobs; } catch { return; }
  renderQueue();
  renderViewerList();
}

function renderQueue() {
  const list = $("#queue");
  list.replaceChildren();
  for (const [key, u] of state.uploads) {
    list.append(el("li", { class: "upload", "data-name": u.name },
      el("div", {}, el("div", { class: "name", text: u.name }),
        el("div", { class: "status" }, el("span", { class: `badge ${u.error ? "failed" : ""}`, text: u.error ? "rejected" : "uploading" }))),
      u.error ? el("div") : el("progress", { max: 1, value: u.progress }),
      el("div", { class: "actions" }, u.error ? el("button", { text: "Dismiss", onclick: () => { state.uploads.delete(key); renderQueue(); } }) : null),
      u.error ? el("div", { class: "error", text: u.error }) : null));
  }
  for (const job of [...state.jobs].reverse()) {
    const total = job.windows_total ? ` · ${job.windows_done}/${job.windows_total} windows` : "";
    const stage = job.stage ? ` · ${job.stage}` : "";
    list.append(el("li", { "data-id": job.id, "data-status": job.status },
      el("div", {}, el("div", { class: "name", text: job.name, title: job.name }),
        el("div", { class: "status" }, el("span", { class: `badge ${job.status}`, text: job.status }), `${total}${stage}`)),
      el("progress", { max: 1, value: job.status === "done" ? 1 : job.progress }),
      el("div", { class: "actions" },
        job.status === "done" ? el("button", { class: "primary", text: "View", onclick: () => openInViewer(job.id) }) : null,
        ["queued", "running"].includes(job.status) ? el("button", { text: "Cancel", onclick: () => cancelJob(job.id) }) : null,
        el("button", { class: "danger", text: "Delete", title: "delete this job and its files", onclick: () => deleteJob(job.id) })),
      job.error ? el("div", { class: "error", text: job.error }) : null));
  }
  $("#queue-empty").hidden = list.children.length > 0;
}

async function cancelJob(id) { await api(`/api/jobs/${id}/cancel`, { method: "POST" }); refreshJobs(); }
async function deleteJob(id) {
  await api(`/api/jobs/${id}`, { method: "DELETE" });
  if (state.viewer === id) closeViewer();
  refreshJobs();
}

setInterval(() => {
  if (state.jobs.some((j) => ["queued", "running"].includes(j.status)) || state.uploads.size) refreshJobs();
}, 700);

// ---------------------------------------------------------------------------------------------------- Viewer
const video = $("#v-video");
const canvas = $("#v-chart");

function renderViewerList() {
  const select = $("#v-job");
  const done = state.jobs.filter((j) => j.status === "done");
  const ids = done.map((j) => j.id).join();
  if (select.dataset.ids !== ids) {
    select.replaceChildren(...done.map((j) => el("option", { value: j.id, text: j.name })));
    select.dataset.ids = ids;
    if (state.viewer && done.some((j) => j.id === state.viewer)) select.value = state.viewer;
  }
  $("#v-empty").hidden = done.length > 0;
  if (!state.viewer && done.length) loadViewer(done[done.length - 1].id);
}
$("#v-job").addEventListener("change", (e) => loadViewer(e.target.value));

function openInViewer(id) { loadViewer(id); showTab("viewer"); }

function closeViewer() {
  state.viewer = null; state.rows = [];
  video.removeAttribute("src"); video.load();
  $("#v-stage").hidden = $("#v-chart-wrap").hidden = true;
  $("#v-delete").disabled = true;
  $("#v-downloads").replaceChildren();
}

async function loadViewer(id) {
  const job = state.jobs.find((j) => j.id === id);
  if (!job) return;
  state.viewer = id;
  $("#v-job").value = id;
  const anon = $("#v-anon");
  anon.disabled = !job.files["anonymized.mp4"];
  anon.checked = false;
  video.src = job.files.video;
  $("#v-stage").hidden = $("#v-chart-wrap").hidden = false;
  $("#v-delete").disabled = false;
  const links = [["timeline.csv", "CSV"], ["timeline.json", "JSON"], ["chart.png", "chart PNG"], ["anonymized.mp4", "anonymised MP4"]];
  $("#v-downloads").replaceChildren("Download:", ...links.filter(([f]) => job.files[f]).map(([f, text]) =>
    el("a", { href: `${job.files[f]}?download=1`, download: "", "data-file": f, text })));
  const doc = await api(job.files["timeline.json"]);
  if (state.viewer !== id) return;
  state.rows = doc.windows;
  drawChart();
}

$("#v-anon").addEventListener("change", (e) => {
  const job = state.jobs.find((j) => j.id === state.viewer);
  if (!job) return;
  const t = video.currentTime;
  video.src = e.target.checked ? job.files["anonymized.mp4"] : job.files.video;
  video.addEventListener("loadedmetadata", () => { video.currentTime = Math.min(t, video.duration || t); }, { once: true });
});
$("#v-delete").addEventListener("click", () => { if (state.viewer) deleteJob(state.viewer); });

// chart geometry (CSS pixels): the plot spans [left, width - right]
const G = { left: 96, right: 14, top: 10, lane: 78, strip: 14, coverage: 34, audio: 12, axis: 22, gap: 8 };
let chartBase = null;  // the chart without the playhead

function timeSpan() {
  const end = Math.max(0, ...state.rows.map((r) => r.end_s));
  return Number.isFinite(video.duration) && video.duration > 0 ? Math.max(video.duration, 0.01) : Math.max(end, 0.01);
}

function drawChart() {
  if (!state.rows.length || $("#v-chart-wrap").hidden || canvas.clientWidth === 0) return;
  const rows = state.rows;
  const tracks = [...new Set(rows.map((r) => r.track_id ?? 0))].sort((a, b) => a - b);
  const labels = state.info.labels;
  const height = G.top + tracks.length * (G.lane + G.gap) + G.coverage + G.gap + G.audio + G.axis;
  const dpr = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  canvas.style.height = `${height}px`;
  canvas.width = Math.round(width * dpr); canvas.height = Math.round(height * dpr);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, width, height);
  const span = timeSpan();
  const x = (t) => G.left + (t / span) * (width - G.left - G.right);
  Object.assign(canvas.dataset, { left: G.left, right: width - G.right, t0: 0, t1: span });
  ctx.font = "12px system-ui, sans-serif"; ctx.textBaseline = "middle";
  let y = G.top;
  for (const track of tracks) {
    const mine = rows.filter((r) => (r.track_id ?? 0) === track).sort((a, b) => a.start_s - b.start_s);
    ctx.fillStyle = "#1d2330";
    ctx.fillText(tracks.length > 1 ? (track < 0 ? "no face" : `face ${track}`) : "expression", 8, y + G.lane / 2 - 6);
    ctx.fillStyle = "#667085"; ctx.fillText("top label", 8, y + G.strip / 2);
    mine.forEach((r, i) => {
      const x0 = x(r.start_s), x1 = x(i + 1 < mine.length ? Math.min(r.end_s, mine[i + 1].start_s) : r.end_s);
      ctx.fillStyle = color(r.label); ctx.fillRect(x0, y, Math.max(1, x1 - x0), G.strip - 2);
      let base = y + G.lane;
      for (const c of labels) {
        const h = (r[`p_${c}`] || 0) * (G.lane - G.strip);
        ctx.fillStyle = color(c); ctx.globalAlpha = 0.85;
        ctx.fillRect(x0, base - h, Math.max(1, x1 - x0), h); base -= h;
      }
      ctx.globalAlpha = 1;
    });
    ctx.strokeStyle = "#e3e6eb"; ctx.strokeRect(G.left, y + G.strip, width - G.left - G.right, G.lane - G.strip);
    y += G.lane + G.gap;
  }
  // face coverage (mean over tracks per window start) and audio presence
  ctx.fillStyle = "#1d2330"; ctx.fillText("face coverage", 8, y + G.coverage / 2);
  ctx.strokeStyle = "#e3e6eb"; ctx.strokeRect(G.left, y, width - G.left - G.right, G.coverage);
  const starts = [...new Set(rows.map((r) => r.start_s))].sort((a, b) => a - b);
  ctx.beginPath(); ctx.strokeStyle = "#2f5bd3"; ctx.lineWidth = 2;
  starts.forEach((s, i) => {
    const group = rows.filter((r) => r.start_s === s);
    const cov = group.reduce((a, r) => a + (r.face_coverage ?? 0), 0) / group.length;
    const end = i + 1 < starts.length ? Math.min(group[0].end_s, starts[i + 1]) : group[0].end_s;
    const yy = y + G.coverage - cov * (G.coverage - 4) - 2;
    if (i === 0) ctx.moveTo(x(s), yy); else ctx.lineTo(x(s), yy);
    ctx.lineTo(x(end), yy);
  });
  ctx.stroke(); ctx.lineWidth = 1;
  y += G.coverage + G.gap;
  ctx.fillStyle = "#1d2330"; ctx.fillText("audio", 8, y + G.audio / 2);
  for (const s of starts) {
    const r = rows.find((q) => q.start_s === s);
    ctx.fillStyle = r.has_audio ? "#1f8a4c" : "#d0d5dd";
    ctx.fillRect(x(s), y, Math.max(1, x(r.end_s) - x(s)), G.audio);
  }
  y += G.audio;
  // time axis
  const step = [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600].find((s) => span / s <= 12) || 1200;
  ctx.fillStyle = "#667085"; ctx.textAlign = "center";
  for (let t = 0; t <= span + 1e-6; t += step) {
    ctx.fillRect(x(t), y, 1, 4); ctx.fillText(`${+t.toFixed(1)} s`, x(t), y + 13);
  }
  ctx.textAlign = "left";
  chartBase = ctx.getImageData(0, 0, canvas.width, canvas.height);
  drawPlayhead();
  $("#v-legend").replaceChildren(...labels.map((c) => el("span", { style: `--c:${color(c)}`, text: c })),
    el("span", { style: "--c:#1f8a4c", text: "audio present" }));
}

function drawPlayhead() {
  if (!chartBase) return;
  const ctx = canvas.getContext("2d");
  ctx.putImageData(chartBase, 0, 0);
  const left = +canvas.dataset.left, right = +canvas.dataset.right, span = +canvas.dataset.t1;
  const px = left + (video.currentTime / span) * (right - left);
  ctx.fillStyle = "#d62728"; ctx.fillRect(px - 1, 0, 2, canvas.height);
  const now = state.rows.filter((r) => r.start_s <= video.currentTime && video.currentTime < r.end_s);
  $("#v-now").textContent = now.length ? now.map((r) => `${r.label} ${(r.confidence * 100).toFixed(0)}%`).join(" · ") : "";
}

canvas.addEventListener("click", (e) => {
  const rect = canvas.getBoundingClientRect();
  const left = +canvas.dataset.left, right = +canvas.dataset.right;
  const frac = Math.min(1, Math.max(0, (e.clientX - rect.left - left) / (right - left)));
  video.currentTime = frac * +canvas.dataset.t1;
  drawPlayhead();
});
video.addEventListener("timeupdate", drawPlayhead);
video.addEventListener("seeked", drawPlayhead);
video.addEventListener("loadedmetadata", drawChart);
const follow = () => { if (!video.paused) { drawPlayhead(); requestAnimationFrame(follow); } };
video.addEventListener("play", () => requestAnimationFrame(follow));
window.addEventListener("resize", drawChart);

// ---------------------------------------------------------------------------------------------------- Live
const live = { stream: null, ws: null, audio: null, timer: null };
const liveVideo = $("#l-video");
const FPS = 8;

function liveStatus(text) { $("#l-status").textContent = text; }

async function startLive() {
  $("#l-start").disabled = true;
  try {
    try { live.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240 }, audio: true }); }
    catch { live.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240 } }); }
  } catch (e) {
    liveStatus(`No camera: ${e.message}`); $("#l-start").disabled = false; return;
  }
  exposed.live.tracks = () => live.stream ? live.stream.getTracks().map((t) => t.readyState) : exposed.live.ended || [];
  liveVideo.srcObject = live.stream;
  $("#l-stop").disabled = false;
  $("#l-history").replaceChildren();
  exposed.live.predictions = 0;
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/live`);
  ws.binaryType = "arraybuffer";
  live.ws = ws;
  const hasAudio = live.stream.getAudioTracks().length > 0;
  ws.onopen = () => {
    const t0 = performance.now();
    const now = () => (performance.now() - t0) / 1000;
    let rate = 0;
    if (hasAudio) {
      const ctx = new AudioContext();
      const source = ctx.createMediaStreamSource(live.stream);
      const proc = ctx.createScriptProcessor(4096, 1, 1);
      let next = null;
      proc.onaudioprocess = (e) => {
        const samples = e.inputBuffer.getChannelData(0);
        if (next === null) next = Math.max(0, now() - samples.length / ctx.sampleRate);
        send("A", next, new Float32Array(samples).buffer);
        next += samples.length / ctx.sampleRate;
      };
      source.connect(proc); proc.connect(ctx.destination);
      live.audio = { ctx, source, proc };
      rate = ctx.sampleRate;
    }
    ws.send(JSON.stringify({ type: "start", fps: FPS, sample_rate: rate, stride: +$("#l-stride").value || 1 }));
    const grab = el("canvas", { width: 320, height: 240 });
    live.timer = setInterval(() => {
      if (ws.readyState !== WebSocket.OPEN || ws.bufferedAmount > 2e6 || liveVideo.readyState < 2) return;
      const t = now();
      grab.getContext("2d").drawImage(liveVideo, 0, 0, grab.width, grab.height);
      grab.toBlob(async (blob) => { if (blob) send("V", t, await blob.arrayBuffer()); }, "image/jpeg", 0.8);
    }, 1000 / FPS);
    liveStatus(`Streaming ${hasAudio ? "camera and microphone" : "camera"}; the first label comes after one window.`);
  };
  ws.onmessage = (e) => {
    const msg = JSON.parse(e.data);
    if (msg.type === "prediction") showPrediction(msg);
    else if (msg.type === "ready") liveStatus(`Streaming; a label every ${msg.stride_s} s over the last ${msg.window_s} s.`);
    else if (msg.type === "error") liveStatus(`Error: ${msg.message}`);
  };
  ws.onclose = () => { if (live.stream) stopLive(); };
}

function send(kind, t, payload) {
  const ws = live.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  const head = new DataView(new ArrayBuffer(9));
  head.setUint8(0, kind.charCodeAt(0)); head.setFloat64(1, t, true);
  ws.send(new Blob([head.buffer, payload]));
}

function showPrediction(p) {
  exposed.live.predictions += 1;
  $("#l-label").textContent = p.label;
  $("#l-label").style.color = color(p.label);
  $("#l-meta").textContent = `confidence ${(p.confidence * 100).toFixed(0)}% · latency ${p.latency_ms.toFixed(0)} ms` +
    `${p.face_coverage === 0 ? " · no face found" : ""}${p.skipped ? ` · ${p.skipped} skipped` : ""}`;
  $("#l-bars").replaceChildren(...state.info.labels.map((c) => el("div", {}, el("span", { text: c }),
    el("i", { style: `--c:${color(c)};width:${(p.probs[c] * 100).toFixed(1)}%` }), el("span", { text: `${(p.probs[c] * 100).toFixed(0)}%` }))));
  $("#l-history").prepend(el("tr", {}, el("td", { text: `${p.end_s.toFixed(1)} s` }), el("td", { text: p.label }),
    el("td", { text: p.confidence.toFixed(2) }), el("td", { text: `${p.latency_ms.toFixed(0)} ms` })));
  while ($("#l-history").children.length > 8) $("#l-history").lastChild.remove();
}

function stopLive() {
  clearInterval(live.timer); live.timer = null;
  if (live.audio) { live.audio.proc.disconnect(); live.audio.source.disconnect(); live.audio.ctx.close(); live.audio = null; }
  if (live.stream) {
    live.stream.getTracks().forEach((t) => t.stop());  // releases the camera and microphone
    exposed.live.ended = live.stream.getTracks().map((t) => t.readyState);
    live.stream = null;
  }
  liveVideo.srcObject = null;
  if (live.ws && live.ws.readyState === WebSocket.OPEN) { live.ws.send(JSON.stringify({ type: "stop" })); live.ws.close(); }
  live.ws = null;
  $("#l-start").disabled = false; $("#l-stop").disabled = true;
  liveStatus("Camera off (released).");
}
$("#l-start").addEventListener("click", startLive);
$("#l-stop").addEventListener("click", stopLive);

// ---------------------------------------------------------------------------------------------------- Runs
async function loadRuns() {
  const { runs, enabled } = await api("/api/runs");
  $("#r-empty").hidden = enabled && runs.length > 0;
  if (enabled && !runs.length) $("#r-empty").textContent = "No run folders (metrics.json, log.csv, curves.png…) found.";
  $("#r-list").replaceChildren(...runs.map((run) => {
    const metrics = Object.entries(run.metrics).slice(0, 12);
    const last = run.last_epoch ? Object.entries(run.last_epoch).filter(([, v]) => typeof v === "number").slice(0, 8) : [];
    const row = ([k, v]) => el("tr", {}, el("td", { text: k }), el("td", { text: Number.isInteger(v) ? v : (+v).toFixed(4) }));
    return el("article", { class: "run", "data-run": run.name },
      el("h3", { text: run.name }),
      el("div", { class: "tables" },
        metrics.length ? el("table", {}, el("caption", { text: "metrics.json" }), el("tbody", {}, ...metrics.map(row))) : null,
        last.length ? el("table", {}, el("caption", { text: "last epoch (log.csv)" }), el("tbody", {}, ...last.map(row))) : null),
      el("div", { class: "links" }, ...run.tables.map((t) => el("a", { href: t.url, text: t.name, target: "_blank" })),
        run.report ? el("a", { href: run.report, text: "report", target: "_blank" }) : null),
      el("div", { class: "imgs" }, ...run.images.map((i) => el("img", { src: i.url, alt: i.name, title: i.name }))));
  }));
}

// ---------------------------------------------------------------------------------------------------- start
async function main() {
  state.info = await api("/api/info");
  const info = state.info;
  $("#m-backend").textContent = `${info.backend} (${info.precision})`;
  $("#m-device").textContent = info.device;
  $("#m-checkpoint").textContent = info.checkpoint;
  $("#retention").textContent = info.retention;
  $("#upload-hint").textContent = `Up to ${info.max_upload_mb} MB per file. ${info.faces ? "" : "Face detection is off. "}` +
    `Window ${info.window_s} s by default.`;
  await refreshJobs();
  renderQueue();
  document.body.dataset.ready = "true";
}
main();
