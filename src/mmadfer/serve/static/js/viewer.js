// Viewer: the video with face boxes and track numbers drawn over it (an overlay, the video is not re-encoded), a
// summary, the timeline chart with its readout, track thumbnails and names, and the table of windows (the chart as
// text). Windows appear while the job runs. In a project, the labelling panel (label.js) works on the same chart.
import { $, NO_FACE, api, app, clock, color, el, labelText, pct } from "./util.js";
import { TimelineChart, trackOf } from "./chart.js";
import { deleteJob, displayName, jobs } from "./analyze.js";
import { dragSpan, initLabel, labelJob, labelRows, labelling } from "./label.js";

const video = $("#v-video");
const chart = new TimelineChart($("#v-chart"));
const view = { id: null, rows: [], loading: false, source: null, final: false };
export const viewerState = view;  // read by the browser tests through window.__mmadfer

const LINKS = [["timeline.csv", "CSV"], ["timeline.json", "JSON"], ["chart.png", "chart PNG"],
  ["report.html", "one-page report"], ["anonymized.mp4", "anonymised MP4"]];

const viewable = (j) => j.status === "done" || (j.windows_done > 0 && ["running", "cancelling", "queued"].includes(j.status));

export async function initViewer() {
  jobs.listeners.push(onJobs);
  $("#v-job").addEventListener("change", (e) => loadViewer(e.target.value));
  $("#v-anon").addEventListener("change", () => setSource());
  $("#v-boxes").addEventListener("change", drawOverlay);
  $("#v-smooth").addEventListener("change", async (e) => {
    chart.smooth = +e.target.value;
    view.final = false;  // fetch the rows again, with the server's smoothed labels
    const job = jobs.byId.get(view.id);
    if (job) await loadRows(job, { all: true });
    redraw();
  });
  $("#v-delete").addEventListener("click", async () => {
    if (view.id && (await deleteJob(view.id))) { closeViewer(); $("#v-job").focus(); }
  });
  const canvas = chart.canvas;
  // in a project, dragging on a face's lane selects a span for labelling; a click (no drag) seeks
  let drag = null, dragged = false;
  const at = (e) => { const r = canvas.getBoundingClientRect(); return { x: e.clientX - r.left, y: e.clientY - r.top }; };
  canvas.addEventListener("mousedown", (e) => {
    const p = at(e), lane = labelling() ? chart.laneAt(p.y) : null;
    drag = lane && p.x >= chart.left && p.x <= chart.rightX ? { track: TimelineChart.laneTrack(lane.id), x: p.x, t: chart.t(p.x) } : null;
    dragged = false;
  });
  window.addEventListener("mouseup", (e) => {
    if (drag && dragged) dragSpan(drag.track, drag.t, chart.t(at(e).x));
    drag = null;
  });
  canvas.addEventListener("click", (e) => {
    if (dragged) { dragged = false; return; }
    seek(chart.t(at(e).x));
  });
  canvas.addEventListener("mousemove", (e) => {
    chart.hoverTime = chart.t(at(e).x);
    if (drag && (e.buttons & 1) && Math.abs(at(e).x - drag.x) > 3) {
      dragged = true;
      chart.selection = { track: drag.track, from: Math.min(drag.t, chart.hoverTime), to: Math.max(drag.t, chart.hoverTime) };
    }
    chart.drawCursor(); readout(chart.hoverTime);
  });
  canvas.addEventListener("mouseleave", () => { chart.hoverTime = null; chart.drawCursor(); readout(video.currentTime); });
  canvas.addEventListener("focus", () => readout(video.currentTime));
  canvas.addEventListener("keydown", (e) => {
    const step = stride();
    const to = { ArrowRight: video.currentTime + step, ArrowUp: video.currentTime + step, ArrowLeft: video.currentTime - step,
      ArrowDown: video.currentTime - step, PageUp: video.currentTime + 10 * step, PageDown: video.currentTime - 10 * step,
      Home: 0, End: chart.span }[e.key];
    if (to === undefined) return;
    e.preventDefault();
    seek(Math.min(chart.span, Math.max(0, to)));
  });
  video.addEventListener("timeupdate", tick);
  video.addEventListener("seeked", tick);
  video.addEventListener("loadedmetadata", () => { checkPlayable(); redraw(); });
  video.addEventListener("error", () => checkPlayable(true));
  const follow = () => { if (!video.paused) { tick(); requestAnimationFrame(follow); } };
  video.addEventListener("play", () => requestAnimationFrame(follow));
  window.addEventListener("resize", redraw);
  new ResizeObserver(drawOverlay).observe(video);
  await initLabel({ chart, video, seek, rows: () => view.rows, redraw });
}

function stride() {
  const starts = [...new Set(view.rows.map((r) => r.start_s))].sort((a, b) => a - b);
  return starts.length > 1 ? starts[1] - starts[0] : 1;
}

function seek(t) {
  video.currentTime = t;
  chart.time = t;
  chart.drawCursor();
  readout(t);
  drawOverlay();
}

function tick() {
  chart.time = video.currentTime;
  chart.drawCursor();
  if (chart.hoverTime == null) readout(video.currentTime);
  drawOverlay();
}

function readout(t) {
  if (!view.rows.length) return;
  const text = chart.describe(t);
  $("#v-readout").textContent = text;
  const c = chart.canvas;
  c.setAttribute("aria-valuenow", video.currentTime.toFixed(1));
  c.setAttribute("aria-valuetext", chart.describe(video.currentTime));
}

function onJobs(list) {
  const select = $("#v-job");
  const shown = list.filter(viewable);
  const ids = shown.map((j) => `${j.id}:${displayName(j)}`).join();
  if (select.dataset.ids !== ids) {
    select.replaceChildren(...shown.map((j) => el("option", { value: j.id, text: displayName(j) })));
    select.dataset.ids = ids;
    if (view.id) select.value = view.id;
  }
  $("#v-empty").hidden = shown.length > 0;
  if (view.id && !jobs.byId.has(view.id)) closeViewer();
  else if (view.id) update(jobs.byId.get(view.id));
  if (!view.id && shown.length) loadViewer(shown.at(-1).id);
}

export function closeViewer() {
  Object.assign(view, { id: null, rows: [], source: null, final: false });
  video.removeAttribute("src"); video.load();
  for (const id of ["#v-stage", "#v-chart-wrap", "#v-summary", "#v-notice"]) $(id).hidden = true;
  $("#v-delete").disabled = true;
  $("#v-downloads").replaceChildren();
  $("#v-overlay").replaceChildren();
  $("#v-heads").replaceChildren();
  heads.clear();
}

export async function loadViewer(id) {
  const job = jobs.byId.get(id);
  if (!job) return;
  closeViewer();
  view.id = id;
  $("#v-job").value = id;
  $("#v-anon").checked = false;
  chart.names = { ...(job.track_names || {}) };
  $("#v-stage").hidden = $("#v-chart-wrap").hidden = false;
  $("#v-delete").disabled = false;
  setSource();
  await update(job);
  await labelJob(id);
}

/** Refresh what depends on the job's state: downloads, new windows, summary. */
async function update(job) {
  if (!job || job.id !== view.id) return;
  $("#v-anon").disabled = !job.files["anonymized.mp4"];
  $("#v-downloads").replaceChildren(...(job.viewable ? [job.status === "done" ? "Download:" : `${job.stage || job.status}… Download:`] : [`${job.status}: ${job.windows_done} windows so far`]),
    ...LINKS.filter(([f]) => job.files[f]).map(([f, text]) =>
      el("a", { href: `${job.files[f]}?download=1`, download: "", "data-file": f, text })));
  if (!view.source || (job.files.preview && view.source === job.files.video)) setSource();
  if (job.playback_note) { $("#v-notice").textContent = job.playback_note; $("#v-notice").hidden = false; }
  if (view.loading) return;
  view.loading = true;
  try {
    await loadRows(job);
  } finally { view.loading = false; }
}

async function loadRows(job, { all = false } = {}) {
  const id = job.id;
  if (view.final) { renderSummary(job); return; }
  // the windows predicted so far; all of them again once the timeline is complete (its final order and columns)
  // or with smoothing on (a smoothed label depends on its neighbours, which keep arriving)
  const final = !!job.viewable;
  const whole = final || all || chart.smooth > 0;
  const smooth = chart.smooth > 0 ? `&smooth=${chart.smooth}` : "";
  let rows = null;
  try {
    const got = await api(`/api/jobs/${id}/windows?since=${whole ? 0 : view.rows.length}${smooth}`);
    rows = whole ? got.windows : view.rows.concat(got.windows);
  } catch { rows = null; }
  if (view.id !== id) return;
  if (final && rows !== null) view.final = true;
  if (rows === null || (!whole && rows.length === view.rows.length)) { renderSummary(job); return; }
  view.rows = rows;
  redraw();
  renderSummary(job);
  renderTable();
}

function setSource() {
  const job = jobs.byId.get(view.id);
  if (!job) return;
  const anon = $("#v-anon").checked && job.files["anonymized.mp4"];
  const src = anon ? job.files["anonymized.mp4"] : (job.files.preview || job.files.video || `/api/jobs/${job.id}/video`);
  if (src === view.source) return;
  const t = video.currentTime || 0;
  view.source = src;
  $("#v-notice").hidden = !job.playback_note;
  $("#v-notice").textContent = job.playback_note || "";
  video.src = src;
  video.addEventListener("loadedmetadata", () => { if (t) video.currentTime = Math.min(t, video.duration || t); }, { once: true });
}

/** A video the browser cannot show (HEVC from a phone plays as sound only in Chromium): the H.264 preview, or a message. */
function checkPlayable(failed = false) {
  const job = jobs.byId.get(view.id);
  if (!job || !view.source) return;
  const noPicture = failed || (video.readyState >= 1 && video.videoWidth === 0);
  if (!noPicture) return;
  if (job.files.preview && view.source !== job.files.preview) { setSource(); return; }
  const notice = $("#v-notice");
  notice.textContent = job.playback_note || "This browser cannot play this video (its codec, e.g. HEVC from a phone camera, is not supported here)" +
    (job.status === "done" ? "; the timeline below is complete" : "; a playable preview is being made") +
    (job.files["anonymized.mp4"] ? ", and the anonymised view plays." : ".");
  notice.hidden = false;
}

function redraw() {
  if (!view.rows.length || $("#v-chart-wrap").hidden || document.body.dataset.tab !== "viewer") return;
  const span = Math.max(0.01, ...view.rows.map((r) => r.end_s));
  chart.span = Number.isFinite(video.duration) && video.duration > 0 ? Math.max(video.duration, span) : span;
  chart.rows = view.rows;
  chart.labels = app.labels;
  chart.threshold = app.info.min_face_coverage ?? null;
  chart.canvas.setAttribute("aria-valuemax", chart.span.toFixed(1));
  chart.draw();
  labelRows();
  renderHeads();
  renderLegend();
  readout(video.currentTime);
  drawOverlay();
}
export const redrawViewer = redraw;

function renderLegend() {
  const th = app.info.min_face_coverage;
  $("#v-legend-line").textContent = "Top strip: the label of each window (the most likely class). Coloured bars: each class's " +
    "probability, 0–100%. Confidence: the top class's probability. Face found: the share of a window's frames with a face" +
    (th != null ? `; below ${pct(th)} (dashed line) a window is labelled “no face” and gets no label.` : "; a window without a face gets no label.") +
    " Audio: whether the window had sound.";
  $("#v-legend").replaceChildren(...app.labels.map((c) => el("span", { style: `--c:${color(c)}`, text: c })),
    el("span", { class: "hatched", text: "no face" }));
}

const heads = new Map();  // lane key -> its head element, kept across redraws so a focused name field keeps focus

function renderHeads() {
  const job = jobs.byId.get(view.id);
  const thumbs = job?.files?.thumbs || {};
  const wanted = chart.lanes.map((lane) => {
    const key = lane.id === null ? "none" : String(lane.id);
    let head = heads.get(key);
    if (!head) {
      head = el("div", { class: "head" }, lane.id === null ? el("span", { class: "lane-name", text: "expression" }) :
        el("input", { type: "text", value: lane.name, "aria-label": `name of face ${key}`, "data-track": key,
          onchange: (e) => rename(key, e.target.value) }));
      heads.set(key, head);
    }
    head.style.top = `${lane.y}px`;
    head.style.width = `${chart.left - 8}px`;
    const input = head.querySelector("input");
    if (input && input !== document.activeElement) input.value = lane.name;
    if (thumbs[key] && !head.querySelector("img")) head.prepend(el("img", { src: thumbs[key], alt: `thumbnail of face ${key}`, width: 40, height: 40 }));
    return head;
  });
  for (const [key, head] of heads) if (!wanted.includes(head)) { head.remove(); heads.delete(key); }
  const box = $("#v-heads");
  wanted.forEach((head, i) => { if (box.children[i] !== head) box.insertBefore(head, box.children[i] || null); });
}

async function rename(track, name) {
  name = name.trim();
  chart.names[track] = name || `face ${track}`;
  try {
    await api(`/api/jobs/${view.id}/tracks/${track}`, { method: "PUT", headers: { "content-type": "application/json" },
      body: JSON.stringify({ name }) });
  } catch { /* kept for this page only */ }
  redraw();
  renderTable();
}

function renderSummary(job) {
  const s = job.summary;
  const box = $("#v-summary");
  if (!s) { box.hidden = true; return; }
  box.hidden = false;
  const partial = job.viewable ? "" : " (so far)";
  $("#v-summary-h").textContent = `Summary${partial}`;
  const found = (v) => (v == null || Number.isNaN(v) ? "not measured" : `${v.toFixed(0)}% of the time`);
  $("#v-facts").replaceChildren(...[
    ["dominant label", s.dominant_label == null ? "–" : `${labelText(s.dominant_label)} (${pct(s.dominant_share)} of the time)`],
    ["face found", found(s.face_found_pct)],
    ["audio found", found(s.audio_found_pct)],
    ["windows", `${s.windows} over ${clock(s.duration_s ?? 0)}`],
  ].map(([k, v]) => el("div", {}, el("dt", { text: k }), el("dd", { text: v }))));
  const shares = Object.entries(s.shares || {}).filter(([, f]) => f > 0).sort((a, b) => b[1] - a[1]);
  $("#v-shares").replaceChildren(
    el("p", { class: "hint", text: "Time share of each label:" }),
    el("div", { class: "share-bar", "aria-hidden": "true" }, ...shares.map(([label, f]) =>
      el("i", { class: label === NO_FACE ? "hatched" : "", style: `width:${(f * 100).toFixed(2)}%;--c:${color(label)}`, title: `${labelText(label)} ${pct(f)}` }))),
    el("ul", { class: "share-list" }, ...shares.map(([label, f]) =>
      el("li", { style: `--c:${color(label)}`, class: label === NO_FACE ? "hatched" : "" }, `${labelText(label)} ${pct(f)}`))));
}

function renderTable() {
  const table = $("#v-table");
  const labels = app.labels;
  table.tHead.replaceChildren(el("tr", {}, ...["start", "end", "face", "label", "confidence", "face found", "audio", ...labels]
    .map((h) => el("th", { scope: "col", text: h }))));
  const rows = [...view.rows].sort((a, b) => a.start_s - b.start_s || (trackOf(a) ?? -1) - (trackOf(b) ?? -1));
  table.tBodies[0].replaceChildren(...rows.map((r) => el("tr", {},
    el("td", { text: `${r.start_s.toFixed(2)} s` }), el("td", { text: `${r.end_s.toFixed(2)} s` }),
    el("td", { text: trackOf(r) === null ? "–" : chart.laneName(trackOf(r)) }),
    el("td", { text: labelText(r.label) }), el("td", { text: pct(r.confidence) }),
    el("td", { text: pct(r.face_coverage) }), el("td", { text: r.has_audio ? "yes" : "no" }),
    ...labels.map((c) => el("td", { text: pct(r[`p_${c}`]) })))));
}

/** Face boxes with their track names over the video, scaled to where the picture is shown (letterboxing included). */
function drawOverlay() {
  const overlay = $("#v-overlay");
  if (!view.rows.length || !video.videoWidth) { overlay.replaceChildren(); return; }
  const cw = video.clientWidth, ch = video.clientHeight;
  const scale = Math.min(cw / video.videoWidth, ch / video.videoHeight);
  const w = video.videoWidth * scale, h = video.videoHeight * scale;
  const ox = (cw - w) / 2, oy = (ch - h) / 2;
  const items = [];
  const now = chart.valuesAt(video.currentTime);
  const showBoxes = $("#v-boxes").checked;
  for (const { name, row } of now) {
    if (!row) continue;
    if (row.label === NO_FACE) continue;
    if (!showBoxes || row.box_x0 == null || Number.isNaN(row.box_x0)) continue;
    const box = el("div", { class: "box", style: `left:${ox + row.box_x0 * w}px;top:${oy + row.box_y0 * h}px;` +
      `width:${(row.box_x1 - row.box_x0) * w}px;height:${(row.box_y1 - row.box_y0) * h}px;--c:${color(row.label)}` },
    el("span", { class: "tag", "data-track": trackOf(row) ?? "", text: `${name} · ${labelText(row.label)}${row.confidence == null ? "" : ` ${pct(row.confidence)}`}` }));
    items.push(box);
  }
  if (now.length && now.every(({ row }) => row && row.label === NO_FACE)) {
    items.push(el("div", { class: "tag nf", style: `left:${ox + 8}px;top:${oy + 8}px`, text: "no face" }));
  }
  overlay.replaceChildren(...items);
}
