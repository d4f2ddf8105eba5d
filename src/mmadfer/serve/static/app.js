// mmadfer web app: the entry module. One ES module per workspace under js/ (analyze, viewer + chart + label, live,
// runs + train);
// no build step, no outside resources.
import { $, api, app, modelBanner } from "./js/util.js";
import { initTabs, onTab, showTab } from "./js/tabs.js";
import { initAnalyze, refreshJobs } from "./js/analyze.js";
import { initViewer, loadViewer, redrawViewer, viewerState } from "./js/viewer.js";
import { labelState } from "./js/label.js";
import { initTrain } from "./js/train.js";
import { exposed as live, initLive } from "./js/live.js";
import { loadRuns } from "./js/runs.js";

window.__mmadfer = { live, viewer: viewerState, label: labelState };  // read by the browser tests

function showInfo(info) {
  $("#m-backend").textContent = `${info.backend} (${info.precision})`;
  $("#m-device").textContent = info.device;
  $("#m-checkpoint").textContent = info.checkpoint;
  $("#m-checkpoint").title = info.checkpoint;
  $("#retention").textContent = info.retention;
  $("#upload-hint").textContent = `Up to ${info.max_upload_mb} MB per file. ${info.faces ? "" : "Face detection is off. "}` +
    `Window ${info.window_s} s by default.`;
  const banner = modelBanner(info);
  for (const node of [$("#model-banner"), ...document.querySelectorAll("[data-banner]")]) {
    node.textContent = banner;
    node.hidden = !banner;
  }
}

async function main() {
  app.info = await api("/api/info");
  app.labels = app.info.labels;
  showInfo(app.info);
  initTabs();
  initAnalyze({ onView: async (id) => { showTab("viewer"); await loadViewer(id); $("#v-chart").focus(); } });
  await initViewer();
  initLive();
  await initTrain({ onChange: loadRuns });
  onTab((name) => {
    if (name === "viewer") redrawViewer();
    if (name === "runs") loadRuns();
  });
  await refreshJobs();
  document.body.dataset.ready = "true";
}
main();
