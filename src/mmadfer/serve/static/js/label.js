// Labelling in the Viewer (only with `mmadfer serve --project DIR`): a time span per face track, chosen with in/out
// points at the playhead (i / o, or the buttons) or by dragging on the track's lane, saved with a class's number key.
// A span is shown as saved only after the server has written it to DIR/labels.csv. The model's mean prediction over
// the span is offered as the pre-selected class when the model knows that class by name; "next most uncertain"
// jumps to the unlabelled face window with the lowest top probability. Overlapping spans are drawn marked "!" and
// listed, never merged; undo goes back through the labels file's history.
import { $, NO_FACE, api, app, el, pct } from "./util.js";
import { TimelineChart, trackOf } from "./chart.js";

const state = { project: null, job: null, spans: [], conflicts: [], in: null, out: null, track: 0, suggested: null };
export const labelState = state;  // read by the browser tests through window.__mmadfer
let deps = null;  // {chart, video, seek, rows: () => rows, redraw}

const fmt = (t) => (t == null ? "–" : `${t.toFixed(2)} s`);
const span = (a, b) => `${a.toFixed(2)}–${b.toFixed(2)} s`;

export async function initLabel(d) {
  deps = d;
  let info;
  try { info = await api("/api/project"); } catch { return; }
  if (!info.open) return;
  state.project = info;
  d.chart.labelling = true;
  $("#lb").hidden = false;
  $("#lb-classes").append(...info.classes.map((c, i) => el("button", { type: "button", "data-class": c,
    "aria-keyshortcuts": String(i + 1), onclick: () => save(c) }, el("kbd", { text: String(i + 1) }), ` ${c}`)));
  $("#lb-in").addEventListener("click", () => setPoint("in", deps.video.currentTime));
  $("#lb-out").addEventListener("click", () => setPoint("out", deps.video.currentTime));
  $("#lb-next").addEventListener("click", nextUncertain);
  $("#lb-undo").addEventListener("click", undo);
  $("#lb-track").addEventListener("change", (e) => { state.track = +e.target.value; changed(); });
  $("#viewer").addEventListener("keydown", onKey);
  suggest();
}

export const labelling = () => state.project !== null;

/** A new video in the Viewer: its spans, no points set. */
export async function labelJob(jobId) {
  if (!labelling()) return;
  Object.assign(state, { job: jobId, spans: [], conflicts: [], in: null, out: null });
  setStatus("");
  await loadSpans();
  changed();
}

/** The video's windows changed (more arrived, or the lanes were redrawn): the face list and the suggestion. */
export function labelRows() {
  if (!labelling()) return;
  const tracks = faceTracks();
  const select = $("#lb-track");
  const ids = tracks.map((t) => `${t}:${deps.chart.laneName(t)}`).join();
  if (select.dataset.ids !== ids) {
    select.replaceChildren(...tracks.map((t) => el("option", { value: t, text: t === null ? "whole frame" : deps.chart.laneName(t) })));
    select.dataset.ids = ids;
    if (!tracks.map((t) => TimelineChart.laneTrack(t)).includes(state.track)) state.track = TimelineChart.laneTrack(tracks[0] ?? null);
    select.value = String(state.track);
  }
  suggest();
}

/** A span dragged on a lane (from the Viewer's mouse handling). */
export function dragSpan(track, from, to) {
  state.track = track;
  $("#lb-track").value = String(track);
  state.in = Math.min(from, to); state.out = Math.max(from, to);
  changed();
}

function faceTracks() {
  const ids = [...new Set(deps.rows().map(trackOf).filter((t) => t !== null))].sort((a, b) => a - b);
  return ids.length ? ids : [null];
}

function setPoint(which, t) {
  state[which] = +t.toFixed(3);
  changed();
  setStatus(`${which === "in" ? "In" : "Out"} point at ${fmt(t)}.`);
}

function changed() {
  $("#lb-span").textContent = `in ${fmt(state.in)}, out ${fmt(state.out)}` +
    (state.in != null && state.out != null && state.out <= state.in ? " (out must be after in)" : "");
  deps.chart.selection = { track: state.track, from: state.in, to: state.out };
  deps.chart.drawCursor();
  suggest();
}

async function loadSpans() {
  const id = state.job;
  let got;
  try { got = await api(`/api/labels?job=${id}`); } catch (e) { setStatus(`Labels not loaded: ${e.message}`, true); return; }
  if (id !== state.job) return;
  state.spans = got.spans;
  state.conflicts = got.conflicts;
  render();
}

function render() {
  const conflicted = new Map();
  for (const c of state.conflicts) for (const [me, other] of [[c.a, c.b], [c.b, c.a]]) {
    const o = state.spans.find((s) => s.id === other);
    if (o) conflicted.set(me, `${c.kind === "contradictory" ? "contradicts" : "overlaps"} ${span(o.start_s, o.end_s)} ${o.label}`);
  }
  deps.chart.spans = state.spans.map((s) => ({ ...s, conflict: conflicted.has(s.id) }));
  deps.redraw();
  const name = (t) => (faceTracks()[0] === null ? "whole frame" : deps.chart.laneName(+t));
  $("#lb-spans").tBodies[0].replaceChildren(...state.spans.map((s) => el("tr", { "data-label": s.label, class: conflicted.has(s.id) ? "conflict" : "" },
    el("td", { text: name(s.track_id) }), el("td", { text: fmt(s.start_s) }), el("td", { text: fmt(s.end_s) }),
    el("td", { text: s.label }), el("td", { text: s.annotator || "–" }),
    el("td", { text: conflicted.has(s.id) ? `! ${conflicted.get(s.id)}` : "" }))));
  $("#lb-conflicts").hidden = !state.conflicts.length;
  $("#lb-conflicts ul").replaceChildren(...state.conflicts.map((c) => el("li", { text: c.line })));
}

/** The rows of the chosen track that overlap [in, out] and saw a face (the whole frame in a video without faces). */
function windowsIn(from, to) {
  const track = state.track;
  return deps.rows().filter((r) => r.label !== NO_FACE && r.start_s < to && r.end_s > from &&
    (trackOf(r) === null ? faceTracks()[0] === null : trackOf(r) === track));
}

function suggest() {
  const box = $("#lb-suggest");
  const classes = state.project.classes, shared = state.project.shared_classes;
  state.suggested = null;
  for (const b of document.querySelectorAll("#lb-classes button")) { b.classList.remove("suggested"); b.removeAttribute("aria-describedby"); }
  if (!shared.length) {
    box.textContent = `The model cannot suggest for this class set: none of the project's classes (${classes.join(", ")}) ` +
      `is one of the model's (${app.labels.join(", ")}).`;
    return;
  }
  if (state.in == null || state.out == null || state.out <= state.in) {
    box.textContent = "Set in and out points to see the model's suggestion.";
    return;
  }
  const wins = windowsIn(state.in, state.out);
  if (!wins.length) { box.textContent = "No window with a face in this span: the model has nothing to suggest."; return; }
  // the mean of each class's probability over the span, each window weighted by how much of the span it covers
  const mean = Object.fromEntries(app.labels.map((c) => [c, 0]));
  let total = 0;
  for (const r of wins) {
    const w = Math.min(r.end_s, state.out) - Math.max(r.start_s, state.in);
    total += w;
    for (const c of app.labels) mean[c] += w * (r[`p_${c}`] || 0);
  }
  const [top, p] = Object.entries(mean).map(([c, v]) => [c, v / total]).sort((a, b) => b[1] - a[1])[0];
  if (!classes.includes(top)) {
    box.textContent = `The model's most likely class over this span is ${top} (${pct(p)}), which is not a class of this project.`;
    return;
  }
  state.suggested = top;
  box.textContent = `Model suggests ${top} (${pct(p)}, its mean probability over the span); Enter saves it.`;
  const button = document.querySelector(`#lb-classes button[data-class="${CSS.escape(top)}"]`);
  button.classList.add("suggested");
  button.setAttribute("aria-describedby", "lb-suggest");
}

async function save(label) {
  if (state.in == null || state.out == null) { setStatus("Not saved: set the in and out points first (i, o).", true); return; }
  if (state.out <= state.in) { setStatus("Not saved: the out point must be after the in point.", true); return; }
  const body = { job: state.job, track_id: state.track, start_s: state.in, end_s: state.out, label };
  let got;
  try {
    got = await api("/api/labels", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  } catch (e) { setStatus(`Not saved: ${e.message}`, true); return; }
  state.spans = got.spans;
  state.conflicts = got.conflicts;
  render();
  setStatus(`Saved to labels.csv: ${span(body.start_s, body.end_s)} ${label}` +
    (got.conflicts.length ? ` (${got.conflicts.length} overlapping, listed below)` : "") + ".");
  state.in = state.out;  // the next span starts where this one ended
  state.out = null;
  changed();
}

async function undo() {
  let got;
  try { got = await api("/api/labels/undo", { method: "POST" }); } catch (e) { setStatus(`Undo failed: ${e.message}`, true); return; }
  await loadSpans();
  setStatus(got.undone ? "Undone: labels.csv is back as it was before the last change." : "Nothing to undo.");
}

/** The unlabelled face window the model is least sure about: the lowest top probability. */
function nextUncertain() {
  const labelled = (r) => state.spans.some((s) => String(s.track_id) === String(TimelineChart.laneTrack(trackOf(r))) &&
    s.start_s < r.end_s && s.end_s > r.start_s);
  const top = (r) => r.confidence ?? Math.max(...app.labels.map((c) => r[`p_${c}`] ?? 0));
  const open = deps.rows().filter((r) => r.label !== NO_FACE && !labelled(r));
  if (!open.length) { setStatus("Every window with a face is labelled."); return; }
  const r = open.reduce((a, b) => (top(b) < top(a) || (top(b) === top(a) && b.start_s < a.start_s) ? b : a));
  state.track = TimelineChart.laneTrack(trackOf(r));
  $("#lb-track").value = String(state.track);
  state.in = r.start_s; state.out = r.end_s;
  deps.seek(r.start_s);
  changed();
  setStatus(`Most uncertain unlabelled window: ${span(r.start_s, r.end_s)} of ${$("#lb-track").selectedOptions[0]?.textContent}, ` +
    `top probability ${pct(top(r))} (lowest of ${open.length} unlabelled face windows). In and out are set to it.`);
}

function setStatus(text, error = false) {
  const node = $("#lb-status");
  node.textContent = text;
  node.classList.toggle("error", error);
}

function onKey(e) {
  if (!labelling() || !state.job) return;
  const t = e.target;
  if (t.matches("input, select, textarea, [contenteditable]") || e.altKey) return;
  const key = e.key.toLowerCase();
  if ((e.ctrlKey || e.metaKey) && key === "z") { e.preventDefault(); undo(); return; }
  if (e.ctrlKey || e.metaKey) return;
  if (key === "i") setPoint("in", deps.video.currentTime);
  else if (key === "o") setPoint("out", deps.video.currentTime);
  else if (key === "n") nextUncertain();
  else if (/^[1-9]$/.test(key) && state.project.classes[+key - 1]) save(state.project.classes[+key - 1]);
  else if (key === "enter" && t === deps.chart.canvas && state.suggested) save(state.suggested);
  else return;
  e.preventDefault();
}
