// Analyze: upload (drop or a real button), the queue of jobs with stage, elapsed time and an estimate, cancel, delete.
// The queue is updated in place, keyed by job id, so a focused button keeps its focus across refreshes.
import { $, api, app, clock, duration, el } from "./util.js";
import { confirmDialog } from "./dialog.js";

export const jobs = { list: [], byId: new Map(), listeners: [] };
const uploads = new Map();  // key -> {name, progress, error}
const rows = new Map();  // job id or upload key -> {li, parts}
const cancelling = new Set();
let openViewer = () => {};

export function initAnalyze({ onView }) {
  openViewer = onView;
  const drop = $("#drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); uploadAll(e.dataTransfer.files); });
  $("#choose").addEventListener("click", () => $("#files").click());
  $("#files").addEventListener("change", (e) => { uploadAll(e.target.files); e.target.value = ""; });
  poll();
}

/** Refresh the queue while anything moves: every 0.7 s, every 0.2 s while a job is being cancelled. */
async function poll() {
  const busy = jobs.list.some((j) => ["queued", "running", "cancelling"].includes(j.status)) || uploads.size;
  if (busy) await refreshJobs();
  const cancelsPending = cancelling.size > 0 || jobs.list.some((j) => j.status === "cancelling");
  setTimeout(poll, cancelsPending ? 200 : 700);
}

function uploadAll(files) { for (const f of files) upload(f); }

function upload(file) {
  const key = `u${Date.now()}${Math.random()}`;
  const entry = { name: file.name, progress: 0, error: null };
  uploads.set(key, entry);
  const form = new FormData();
  form.append("file", file);
  form.append("anonymize", $("#opt-anon").checked ? "true" : "false");
  if ($("#opt-stride").value) form.append("stride", $("#opt-stride").value);
  if ($("#opt-window").value) form.append("window", $("#opt-window").value);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/api/jobs");
  xhr.upload.onprogress = (e) => { if (e.lengthComputable) { entry.progress = e.loaded / e.total; render(); } };
  xhr.onload = () => {
    let body = {};
    try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
    if (xhr.status === 201) { uploads.delete(key); refreshJobs(); announce(`${file.name}: uploaded, queued`); }
    else { entry.error = body.detail || `upload failed (HTTP ${xhr.status})`; render(); announce(entry.error); }
  };
  xhr.onerror = () => { entry.error = "upload failed: the connection was closed (file too large?)"; render(); };
  xhr.send(form);
  render();
}

export async function refreshJobs() {
  let list;
  try { list = (await api("/api/jobs")).jobs; } catch { return; }
  for (const job of list) {
    const before = jobs.byId.get(job.id);
    if (before && before.status !== job.status) announce(`${displayName(job, list)}: ${job.status}`);
    if (!["queued", "running", "cancelling"].includes(job.status)) cancelling.delete(job.id);
  }
  jobs.list = list;
  jobs.byId = new Map(list.map((j) => [j.id, j]));
  render();
  for (const fn of jobs.listeners) fn(list);
}

function announce(text) { $("#queue-announce").textContent = text; }

/** The job's name, told apart from other uploads of the same name by " (2)", " (3)"... in upload order. */
export function displayName(job, list = jobs.list) {
  if (job.display_name) return job.display_name;
  const same = list.filter((j) => j.name === job.name);
  if (same.length < 2) return job.name;
  return `${job.name} (${same.indexOf(job) + 1})`;
}

/** "predicting · 3/15 windows · 0:12 elapsed · about 20 s left" */
function statusLine(job) {
  const parts = [];
  if (job.stage && job.status !== "done") parts.push(job.stage);
  if (job.windows_total) parts.push(`${job.windows_done}/${job.windows_total} windows`);
  else if (job.windows_done) parts.push(`${job.windows_done} windows`);
  if (job.status === "running" || job.status === "cancelling") {
    if (job.elapsed_s != null) parts.push(`${clock(job.elapsed_s)} elapsed`);
    if (job.eta_s != null) parts.push(`about ${duration(job.eta_s)} left`);
    else if (job.status === "running") parts.push("estimating time left…");
  } else if (job.status === "done" && job.elapsed_s != null) parts.push(`took ${duration(job.elapsed_s)}`);
  return parts.join(" · ");
}

function rowFor(id, make) {
  let row = rows.get(id);
  if (!row) { row = make(); rows.set(id, row); }
  return row;
}

/** Show or hide a control; focus on a control being hidden moves to the row's next visible control. */
function show(node, on, row) {
  if (!on && node === document.activeElement) {
    const next = [...row.parts.actions.children].find((b) => b !== node && !b.hidden);
    node.hidden = true;
    (next || row.li).focus();
    return;
  }
  node.hidden = !on;
}

function makeUploadRow(key) {
  const parts = {
    name: el("div", { class: "name" }),
    badge: el("span", { class: "badge" }),
    progress: el("progress", { max: 1, value: 0 }),
    actions: el("div", { class: "actions" },
      el("button", { text: "Dismiss", onclick: () => { uploads.delete(key); render(); $("#choose").focus(); } })),
    error: el("div", { class: "error" }),
  };
  const li = el("li", { class: "upload", tabindex: "-1" }, el("div", { class: "info" }, parts.name,
    el("div", { class: "status" }, parts.badge)), parts.progress, parts.actions, parts.error);
  return { li, parts };
}

function makeJobRow(id) {
  const parts = {
    name: el("div", { class: "name" }),
    badge: el("span", { class: "badge" }),
    line: el("span", { class: "line" }),
    progress: el("progress", { max: 1, value: 0 }),
    view: el("button", { class: "primary view", text: "View", onclick: () => openViewer(id) }),
    cancel: el("button", { class: "cancel", text: "Cancel", onclick: () => cancelJob(id) }),
    del: el("button", { class: "danger delete", text: "Delete", onclick: () => deleteJob(id) }),
    error: el("div", { class: "error" }),
  };
  parts.actions = el("div", { class: "actions" }, parts.view, parts.cancel, parts.del);
  const li = el("li", { "data-id": id, tabindex: "-1" }, el("div", { class: "info" }, parts.name,
    el("div", { class: "status" }, parts.badge, parts.line)), parts.progress, parts.actions, parts.error);
  return { li, parts };
}

function render() {
  const list = $("#queue");
  const wanted = [];
  for (const [key, u] of uploads) {
    const row = rowFor(key, () => makeUploadRow(key));
    const p = row.parts;
    row.li.dataset.name = u.name;
    p.name.textContent = u.name;
    p.badge.className = `badge ${u.error ? "failed" : ""}`;
    p.badge.textContent = u.error ? "rejected" : "uploading";
    p.progress.value = u.progress;
    p.progress.hidden = !!u.error;
    p.progress.setAttribute("aria-label", `${u.name} upload`);
    p.actions.hidden = !u.error;
    p.error.textContent = u.error || "";
    p.error.hidden = !u.error;
    wanted.push(row.li);
  }
  for (const job of [...jobs.list].reverse()) {
    const row = rowFor(job.id, () => makeJobRow(job.id));
    const p = row.parts;
    const status = cancelling.has(job.id) && ["queued", "running"].includes(job.status) ? "cancelling" : job.status;
    const name = displayName(job);
    row.li.dataset.status = status;
    p.name.textContent = name;
    p.name.title = `${job.name}, added ${new Date(job.created * 1000).toLocaleTimeString()}`;
    p.badge.className = `badge ${status}`;
    p.badge.textContent = status;
    p.line.textContent = statusLine(job);
    p.progress.value = status === "done" ? 1 : job.progress;
    p.progress.setAttribute("aria-label", `${name} progress`);
    const viewable = job.status === "done" || (job.windows_done > 0 && job.status !== "failed");
    show(p.view, viewable, row);
    p.view.setAttribute("aria-label", `View ${name}`);
    show(p.cancel, ["queued", "running"].includes(status), row);
    p.cancel.setAttribute("aria-label", `Cancel ${name}`);
    p.del.setAttribute("aria-label", `Delete ${name}`);
    p.error.textContent = job.error || "";
    p.error.hidden = !job.error;
    wanted.push(row.li);
  }
  // drop rows that are gone, then put the wanted ones in order, moving only what is out of place
  const keep = new Set(wanted);
  for (const [id, row] of rows) if (!keep.has(row.li)) { row.li.remove(); rows.delete(id); }
  wanted.forEach((li, i) => { if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null); });
  $("#queue-empty").hidden = wanted.length > 0;
}

async function cancelJob(id) {
  cancelling.add(id);
  render();
  try { await api(`/api/jobs/${id}/cancel`, { method: "POST" }); } catch (e) { announce(`cancel failed: ${e.message}`); }
  refreshJobs();
}

export async function deleteJob(id) {
  const job = jobs.byId.get(id);
  const name = job ? displayName(job) : "this job";
  const labelled = app.info?.project ? " Its labels stay in labels.csv, but without the video they cannot be trained on." : "";
  if (!(await confirmDialog(`Delete ${name}, its results and its uploaded video from this machine? This cannot be undone.${labelled}`))) return false;
  const row = rows.get(id);
  const focusWasInRow = row && row.li.contains(document.activeElement);
  await api(`/api/jobs/${id}`, { method: "DELETE" });
  announce(`${name}: deleted`);
  await refreshJobs();
  if (focusWasInRow) ($("#queue li button:not([hidden])") || $("#choose")).focus();
  return true;
}
