// Runs: "Train on my labels" (only in a project). Starts the server's training job (prepare --labels + train --init
// from this server's checkpoint), follows it (stage, epochs, the last lines of its log), cancels it; the run itself
// appears in the Runs list below, its epochs as they finish and then its metrics.
import { $, api, duration } from "./util.js";

const STAGE = { preparing: "Preparing clips from the labelled spans…", training: "Training", cancelling: "Cancelling…",
  done: "Done", failed: "Failed", cancelled: "Cancelled" };
const RUNNING = ["preparing", "training", "cancelling"];
let onChange = () => {};
let lastEpoch = null;

export async function initTrain(options) {
  onChange = options.onChange;
  let project;
  try { project = await api("/api/project"); } catch { return; }
  if (!project.open) return;
  $("#r-train").hidden = false;
  if (!project.train) {
    $("#r-train-what").textContent = "Training needs a trainable checkpoint (.safetensors or .pth); this server runs an exported model.";
    $("#r-train-start").disabled = true;
    return;
  }
  $("#r-train-what").textContent = `Fine-tunes this server's checkpoint on the labels of this project (classes ${project.classes.join(", ")}), ` +
    "as mmadfer prepare --labels and mmadfer train --init do: clips cut from the labelled spans, split by video, the " +
    "encoders frozen, class-balanced epochs and early stopping on a held-out video. Every class needs labels, in at least two videos.";
  $("#r-train-start").addEventListener("click", start);
  $("#r-train-cancel").addEventListener("click", cancel);
  const { job } = await api("/api/train");
  show(job);
  if (job && RUNNING.includes(job.status)) follow();
}

async function start() {
  const epochs = $("#r-epochs").value ? +$("#r-epochs").value : null;
  try {
    const { job } = await api("/api/train", { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ epochs }) });
    show(job);
    follow();
  } catch (e) { say(`Not started: ${e.message}`, true); }
}

async function cancel() {
  try { show((await api("/api/train/cancel", { method: "POST" })).job); } catch (e) { say(`Cancel failed: ${e.message}`, true); }
}

async function follow() {
  let job;
  try { job = (await api("/api/train")).job; } catch { setTimeout(follow, 2000); return; }
  show(job);
  if (job && job.epoch !== lastEpoch) { lastEpoch = job.epoch; onChange(); }
  if (job && RUNNING.includes(job.status)) setTimeout(follow, 1000);
  else onChange();
}

function show(job) {
  const running = !!job && RUNNING.includes(job.status);
  $("#r-train-start").disabled = running;
  $("#r-train-cancel").disabled = !running || job.status === "cancelling";
  const bar = $("#r-train-progress");
  bar.hidden = !running;
  if (job?.progress != null) bar.value = job.progress; else bar.removeAttribute("value");
  const log = $("#r-train-log");
  log.hidden = !job?.log?.length;
  log.textContent = (job?.log || []).join("\n");
  if (!job) { say(""); return; }
  let text = `${job.name}: ${STAGE[job.status] || job.status}`;
  if (job.status === "training") text += ` — epoch ${job.epoch} of ${job.epochs ?? "?"} done (${job.clips} clips)`;
  if (job.status === "done") text += ` in ${duration(job.elapsed_s)}: run ${job.run}, its metrics are below.`;
  if (job.error) text += `: ${job.error}`;
  if (job.left_out?.length) text += ` ${job.left_out.length} span(s) left out (see the log).`;
  say(text, job.status === "failed");
}

function say(text, error = false) {
  $("#r-train-status").textContent = text;
  $("#r-train-status").classList.toggle("error", error);
}
