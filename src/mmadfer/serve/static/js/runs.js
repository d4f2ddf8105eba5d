// Runs: training and evaluation runs under --runs, each metric with its meaning, the chance level and a verdict
// where the server gives them.
import { $, api, el } from "./util.js";

const num = (v) => (typeof v !== "number" ? String(v) : Number.isInteger(v) ? String(v) : v.toFixed(4));

function metricsTable(run) {
  if (run.metrics_explained?.length) {
    return el("table", {}, el("caption", { text: "results" }),
      el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "metric" }), el("th", { scope: "col", text: "value" }),
        el("th", { scope: "col", text: "what it means" }))),
      el("tbody", {}, ...run.metrics_explained.map((m) => el("tr", {},
        el("th", { scope: "row", text: m.label || m.key }),
        el("td", { text: `${num(m.value)}${m.chance != null ? ` (chance ${num(m.chance)})` : ""}` }),
        el("td", { class: "meaning", text: m.meaning || "" })))));
  }
  const metrics = Object.entries(run.metrics || {}).slice(0, 12);
  if (!metrics.length) return null;
  return el("table", {}, el("caption", { text: "metrics.json" }),
    el("tbody", {}, ...metrics.map(([k, v]) => el("tr", {}, el("th", { scope: "row", text: k }), el("td", { text: num(v) })))));
}

export async function loadRuns() {
  const { runs, enabled } = await api("/api/runs");
  $("#r-empty").hidden = enabled && runs.length > 0;
  if (enabled && !runs.length) $("#r-empty").textContent = "No run folders (metrics.json, log.csv, curves.png…) found.";
  $("#r-list").replaceChildren(...runs.map((run) => {
    const last = run.last_epoch ? Object.entries(run.last_epoch).filter(([, v]) => typeof v === "number").slice(0, 8) : [];
    return el("article", { class: "run", "data-run": run.name },
      el("h3", {}, run.name, run.running ? el("span", { class: "badge running", text: "running", title: "no final metrics.json yet: still training, or stopped early" }) : null),
      run.verdict ? el("p", { class: "verdict", text: run.verdict }) : null,
      el("div", { class: "tables" }, metricsTable(run),
        last.length ? el("table", {}, el("caption", { text: "last epoch (log.csv)" }),
          el("tbody", {}, ...last.map(([k, v]) => el("tr", {}, el("th", { scope: "row", text: k }), el("td", { text: num(v) }))))) : null),
      el("p", { class: "links" }, ...run.tables.map((t) => el("a", { href: t.url, text: t.name, target: "_blank" })),
        run.report ? el("a", { href: run.report, text: "report", target: "_blank", "data-report": "" }) : null),
      el("div", { class: "imgs" }, ...run.images.map((i) => el("img", { src: i.url, alt: i.alt || `${run.name}: ${i.name}`, title: i.name }))));
  }));
}
