"""``report.html``: one self-contained page with everything an evaluation found.

Self-contained means it opens offline in any browser: the CSS is inline, the charts are PNGs inlined as base64
``data:`` URIs, and there is no script, font, or link to anything outside the file. Every value shown is escaped
(:func:`html.escape`). :func:`write_report` renders one evaluation (``mmadfer evaluate --report``);
:func:`write_cv_report` the folds of a cross-validation, mean ± sample sd over folds (``mmadfer cv``).
"""
from __future__ import annotations

import base64
import html
import math
import os
from pathlib import Path
from typing import Any, Sequence

from ..io import atomic_write

__all__ = ["SECTIONS", "write_report", "write_cv_report", "write_compare_report"]

#: The section headings of an evaluation report, in order.
SECTIONS = ("Summary", "Per-class results", "Confusion matrix", "Calibration", "Risk–coverage", "Cost matrix",
            "Subgroups", "Operating cost", "Provenance")

_CSS = """
*{box-sizing:border-box}body{font:14px/1.5 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
color:#1a202c;background:#f7fafc;margin:0}main{max-width:1100px;margin:0 auto;padding:24px 32px 48px}
header{background:#1a365d;color:#fff;padding:20px 32px}header h1{margin:0;font-size:22px;font-weight:600}
header p{margin:4px 0 0;color:#bee3f8;font-size:13px}
section{background:#fff;border:1px solid #e2e8f0;border-radius:8px;padding:16px 20px;margin:18px 0}
h2{font-size:17px;margin:0 0 10px;color:#1a365d;border-bottom:2px solid #e2e8f0;padding-bottom:6px}
h3{font-size:14px;margin:14px 0 6px;color:#2d3748}
table{border-collapse:collapse;margin:6px 0;font-variant-numeric:tabular-nums}
th,td{padding:4px 10px;border-bottom:1px solid #edf2f7;text-align:right}th{background:#f7fafc;color:#4a5568;
font-weight:600}td:first-child,th:first-child{text-align:left}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(130px,1fr));gap:12px}
.card{border:1px solid #e2e8f0;border-radius:6px;
padding:10px 12px;background:#f7fafc}.card .k{font-size:12px;color:#4a5568;text-transform:uppercase;
letter-spacing:.04em}.card .v{font-size:22px;font-weight:600;color:#1a365d}.card .ci{font-size:12px;color:#718096}
img{max-width:100%;height:auto;border:1px solid #edf2f7;border-radius:4px;margin:6px 0}
.note{color:#4a5568;font-size:13px}.flag{color:#c53030;font-weight:600}.ok{color:#2f855a}
code{background:#edf2f7;padding:1px 4px;border-radius:3px;font-size:12px;word-break:break-all}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:12px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:0}dt{color:#4a5568}dd{margin:0}
"""

_HEADLINE = (("uar", "UAR"), ("war", "WAR"), ("macro_f1", "Macro-F1"), ("ece", "ECE"), ("nll", "NLL"),
             ("brier", "Brier"), ("aurc", "AURC"))


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _num(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, (int,)) and not isinstance(x, bool):
        return str(x)
    return f"{float(x):.{digits}f}"


def _ci(ci: Sequence[Any] | None) -> str:
    if not ci or ci[0] is None:
        return ""
    return f"[{_num(ci[0])}, {_num(ci[1])}]"


def _img(path: str | os.PathLike | None, alt: str) -> str:
    if not path or not Path(path).is_file():
        return f'<p class="note">({_e(alt)}: chart not available)</p>'
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _table(header: Sequence[str] | None, rows: Sequence[Sequence[Any]]) -> str:
    """A table; ``header=None`` for a two-column key/value list without a header row."""
    head = "" if header is None else "<thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr></thead>"
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{head}<tbody>{body}</tbody></table>"


def _section(title: str, body: str) -> str:
    return f"<section><h2>{_e(title)}</h2>{body}</section>"


def _page(title: str, subtitle: str, sections: Sequence[str]) -> str:
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
            f"<header><h1>{_e(title)}</h1><p>{_e(subtitle)}</p></header><main>{''.join(sections)}</main>"
            "</body></html>\n")


def _provenance(prov: dict[str, Any]) -> str:
    rows = "".join(f"<dt>{_e(k.replace('_', ' '))}</dt><dd><code>{_e(v)}</code></dd>" for k, v in prov.items())
    return f"<dl>{rows}</dl>"


def _cards(m: dict[str, Any]) -> str:
    ci = m.get("ci95", {})
    cards = []
    for key, name in _HEADLINE:
        if m.get(key) is None:
            continue
        c = _ci(ci.get(key))
        cards.append(f'<div class="card"><div class="k">{_e(name)}</div><div class="v">{_num(m[key])}</div>'
                     f'<div class="ci">{_e("95% CI " + c if c else "")}</div></div>')
    return f'<div class="cards">{"".join(cards)}</div>'


def _subgroups_html(sub: dict[str, Any] | None, files: dict[str, str]) -> str:
    if not sub:
        return '<p class="note">No groups file given (<code>--groups groups.csv</code>).</p>'
    parts = [f'<p class="note">{sub["matched"]} clip id(s) matched; {len(sub["unmatched"])} unmatched, '
             f'{len(sub["ambiguous"])} ambiguous. Groups with fewer than {sub["min_group_n"]} clips are shown but '
             f'never enter a gap. A gap is flagged when its 95% bootstrap interval excludes 0.</p>']
    for i, (column, rep) in enumerate(sub["columns"].items()):
        parts.append(f"<h3>{_e(column)}</h3>")
        rows = [[r["group"], r["n"], *(f"{_num(r[k])} {_ci(r['ci95'][k])}" for k in ("uar", "war", "macro_f1", "ece")),
                 "yes" if r["eligible"] else "no (small)"] for r in rep["groups"]]
        parts.append(_table(["group", "n", "UAR [95% CI]", "WAR [95% CI]", "macro-F1 [95% CI]", "ECE [95% CI]",
                             "in gap"], rows))
        for metric, gap in rep["gaps"].items():
            if gap.get("gap") is None:
                parts.append(f'<p class="note">{_e(metric.upper())} gap: {_e(gap.get("note", "n/a"))}</p>')
                continue
            cls, word = ("flag", "FLAGGED") if gap["flagged"] else ("ok", "not significant")
            parts.append(f'<p>{_e(metric.upper())} gap {_e(gap["best"])} − {_e(gap["worst"])}: '
                         f'<b>{_num(gap["gap"])}</b> {_e(_ci(gap["ci95"]))} <span class="{cls}">{word}</span></p>')
        if f"subgroups_png_{i}" in files:
            parts.append(_img(files[f"subgroups_png_{i}"], f"UAR by {column}"))
    return "".join(parts)


def _cost_html(oc: dict[str, Any] | None) -> str:
    if not oc:
        return '<p class="note">Not measured.</p>'
    rows = [["clips scored", oc["clips"]], ["wall time (s)", _num(oc["seconds"], 2)],
            ["throughput (clips/s)", _num(oc["clips_per_s"], 2)], ["device", oc["device"]],
            ["backend", oc["backend"]], ["batch size", oc.get("batch_size")],
            ["window / stride (s)", f"{oc['window_s']:g} / {oc['stride_s']:g}"],
            ["windows per hour of video", oc["windows_per_video_hour"]],
            ["hours of video per hour", _num(oc["video_hours_per_hour"], 1)]]
    if "cost_per_video_hour" in oc:
        cur = oc.get("currency") or ""
        rows += [["price per machine hour", f"{oc['price_per_hour']:g} {cur}".strip()],
                 ["cost per hour of video", f"{oc['cost_per_video_hour']:.4g} {cur}".strip()]]
    else:
        rows.append(["cost per hour of video", "pass --price-per-hour"])
    note = ('<p class="note">Measured on this evaluation: loading prepared clips plus the model. Predicting on raw '
            'video also decodes it and detects faces; <code>mmadfer bench</code> measures that pipeline.</p>')
    return _table(None, rows) + note


def write_report(path: str | os.PathLike, metrics: dict[str, Any], *, provenance: dict[str, Any],
                 title: str = "mmadfer evaluation") -> Path:
    """Render one evaluation's ``metrics`` (``metrics.json``, with its ``files``) to a self-contained HTML file."""
    m = metrics
    files = m.get("files", {})
    names = m["class_names"]
    summary = _cards(m) + _table(None, [["clips", m["num_clips"]], ["skipped", len(m.get("skipped", []))],
                                            ["temperature", _num(m.get("temperature"), 3)]])
    if m.get("bootstrap"):
        b = m["bootstrap"]
        summary += (f'<p class="note">Intervals: {b["method"]} bootstrap over clips, {b["resamples"]} resamples, '
                    f'seed {b["seed"]}.</p>')
    per_class = _table(["class", "support", "recall", "precision"],
                       [[r["class"], r["support"], _num(r["recall"]), _num(r["precision"])] for r in m["per_class"]])
    confusion = _table(["true \\ predicted", *names], [[n, *row] for n, row in zip(names, m["confusion"])])
    confusion += _img(files.get("confusion_png"), "confusion matrix")
    calib = (f'<p>ECE {_num(m["ece"])} {_e(_ci(m.get("ci95", {}).get("ece")))} · MCE {_num(m["mce"])} · '
             f'NLL {_num(m["nll"])} · Brier {_num(m["brier"])} · temperature {_num(m.get("temperature"), 3)}</p>'
             f'<p class="note">Top-label confidence in {m.get("ece_bins", 15)} equal-width bins (last bin closed). '
             f'ECE is the clip-weighted mean |accuracy − confidence| over bins; MCE the largest.</p>'
             + _img(files.get("reliability_png"), "reliability diagram"))
    risk = f'<p>AURC {_num(m["aurc"])} (area under the risk–coverage curve; lower is better).</p>'
    if m.get("selective"):
        s = m["selective"]
        risk += (f'<p>With confidence ≥ {s["min_confidence"]:g}: coverage {_num(s["coverage"])} '
                 f'({s["covered_clips"]} clips), accuracy on covered clips {_num(s["covered_accuracy"])}.</p>')
    risk += _img(files.get("risk_coverage_png"), "risk-coverage curve")
    if "expected_cost" in m:
        cost = (f'<p>Expected cost per clip: <b>{_num(m["expected_cost"])}</b></p>'
                + _table(["true \\ predicted", *names], [[n, *(f"{v:g}" for v in row)]
                                                         for n, row in zip(names, m["cost_matrix"])]))
    else:
        cost = '<p class="note">No cost matrix given (<code>--cost-matrix cost.csv</code>).</p>'
    sections = [_section("Summary", summary), _section("Per-class results", per_class),
                _section("Confusion matrix", confusion), _section("Calibration", calib),
                _section("Risk–coverage", risk), _section("Cost matrix", cost),
                _section("Subgroups", _subgroups_html(m.get("subgroups"), files)),
                _section("Operating cost", _cost_html(m.get("operating_cost"))),
                _section("Provenance", _provenance(provenance))]
    subtitle = f"{provenance.get('dataset', '')} · {m['num_clips']} clips · UAR {_num(m['uar'])}"
    return _write(path, _page(title, subtitle, sections))


def _write(path: str | os.PathLike, text: str) -> Path:
    path = Path(path)
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def _mean_sd(values: Sequence[Any]) -> str:
    v = [float(x) for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))]
    if not v:
        return "–"
    mean = sum(v) / len(v)
    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else float("nan")
    return f"{mean:.4f} ± {sd:.4f}" if len(v) > 1 else f"{mean:.4f}"


def write_cv_report(path: str | os.PathLike, folds: Sequence[dict[str, Any]], *, provenance: dict[str, Any],
                    title: str = "mmadfer cross-validation") -> Path:
    """Render the folds of a cross-validation: each fold's ``metrics`` (with ``fold``) as rows, and mean ± sample sd
    (ddof=1) over folds, in the same sections as :func:`write_report`."""
    keys = [k for k, _ in _HEADLINE] + ["mce", "expected_cost"]
    label = dict(_HEADLINE, mce="MCE", expected_cost="expected cost")
    present = [k for k in keys if any(f.get(k) is not None for f in folds)]
    summary = _table(["metric", "mean ± sd over folds", *(f"fold {f['fold']}" for f in folds)],
                     [[label[k], _mean_sd([f.get(k) for f in folds]), *(_num(f.get(k)) for f in folds)]
                      for k in present])
    summary += '<p class="note">Each fold\'s final checkpoint on its test split; sd is the sample sd (ddof=1).</p>'
    names = folds[0]["class_names"]
    per_class = _table(["class", "recall mean ± sd", "precision mean ± sd"],
                       [[n, _mean_sd([f["per_class"][c]["recall"] for f in folds]),
                         _mean_sd([f["per_class"][c]["precision"] for f in folds])] for c, n in enumerate(names)])
    total = [[sum(f["confusion"][i][j] for f in folds) for j in range(len(names))] for i in range(len(names))]
    confusion = ('<p class="note">Summed over folds.</p>'
                 + _table(["true \\ predicted", *names], [[n, *row] for n, row in zip(names, total)]))
    cells = "".join(f"<div><h3>fold {f['fold']}: ECE {_num(f.get('ece'))}</h3>"
                    + _img(f.get("files", {}).get("reliability_png"), f"reliability fold {f['fold']}") + "</div>"
                    for f in folds)
    calib = f'<div class="grid">{cells}</div>'
    risk = _table(["fold", "AURC"], [[f["fold"], _num(f.get("aurc"))] for f in folds])
    cost = (_table(["fold", "expected cost per clip"], [[f["fold"], _num(f.get("expected_cost"))] for f in folds])
            if any("expected_cost" in f for f in folds) else '<p class="note">No cost matrix in the runs.</p>')
    sub = '<p class="note">Per-fold subgroup analyses: run <code>mmadfer evaluate --groups</code> on a fold.</p>'
    rates = [f.get("throughput", {}).get("clips_per_s") for f in folds]
    oc = _table(["fold", "clips/s", "device", "backend"],
                [[f["fold"], _num(f.get("throughput", {}).get("clips_per_s"), 2), f.get("throughput", {}).get(
                    "device", ""), f.get("throughput", {}).get("backend", "")] for f in folds])
    oc += f'<p>Mean throughput: {_e(_mean_sd(rates))} clips/s (test-split evaluation after training).</p>'
    sections = [_section("Summary", summary), _section("Per-class results", per_class),
                _section("Confusion matrix", confusion), _section("Calibration", calib),
                _section("Risk–coverage", risk), _section("Cost matrix", cost), _section("Subgroups", sub),
                _section("Operating cost", oc), _section("Provenance", _provenance(provenance))]
    subtitle = f"{len(folds)} fold(s) · UAR {_mean_sd([f.get('uar') for f in folds])}"
    return _write(path, _page(title, subtitle, sections))


def write_compare_report(path: str | os.PathLike, comparison: dict[str, Any], *, provenance: dict[str, Any],
                         agreement: dict[str, Any] | None = None, title: str = "mmadfer: before and after") -> Path:
    """Render :func:`mmadfer.evaluation.compare.compare_predictions` (with ``throughput`` per side, when measured)
    and, when two annotators labelled the same spans, their Cohen's kappa (:mod:`mmadfer.evaluation.agreement`)."""
    c = comparison
    sections = []
    if not c["comparable"]:
        sections.append(_section("Summary", f'<p class="flag">{_e(c["reason"])}</p>'))
        subtitle = f"{c['clips']} clips · base not comparable"
    else:
        d, mc = c["difference"], c["mcnemar"]
        summary = _table(["", "base", "new", "new − base", "95% CI (paired bootstrap)"],
                         [[k.upper(), _num(c["base"][k]), _num(c["new"][k]), _num(d[k]["value"]),
                           _ci(d[k]["ci95"])] for k in ("uar", "war")])
        b = c["bootstrap"]
        summary += (f'<p class="note">{c["clips"]} held-out clips scored by both models. Intervals: '
                    f'{_e(b["method"])} bootstrap, {b["resamples"]} resamples of the clips (both models scored on '
                    f'each), seed {b["seed"]}. An interval that excludes 0 means the difference is unlikely to be '
                    'chance on clips like these; it says nothing about other kinds of footage.</p>')
        summary += (f'<p>McNemar\'s test ({_e(mc["method"])}): {mc["new_only"]} clip(s) only the new model gets '
                    f'right, {mc["base_only"]} only the base gets right; p = {_num(mc["p_value"])}.</p>')
        if c.get("class_map"):
            summary += ('<p class="note">The base model\'s classes were mapped onto these: '
                        + _e(", ".join(f"{k} → {v}" for k, v in c["class_map"].items()))
                        + '. Unmapped base classes count as wrong.</p>')
        per_class = _table(["class", "support", "base recall", "new recall", "change"],
                           [[r["class"], r["support"], _num(r["base_recall"]), _num(r["new_recall"]),
                             _num(r["change"])] for r in c["per_class"]])
        calib = _table(["", "base", "new"], [[k.upper(), _num(c["base"][k]), _num(c["new"][k])]
                                             for k in ("ece", "nll", "brier")])
        calib += '<p class="note">Lower is better for all three (top-label ECE in 15 bins, NLL, Brier).</p>'
        cost = _table(["", "clips/s", "device", "backend"],
                      [[side, _num(c[side].get("throughput", {}).get("clips_per_s"), 2),
                        c[side].get("throughput", {}).get("device", "–"),
                        c[side].get("throughput", {}).get("backend", "–")] for side in ("base", "new")])
        sections += [_section("Summary", summary), _section("Per-class change", per_class),
                     _section("Calibration", calib), _section("Operating cost", cost)]
        subtitle = (f"{c['clips']} clips · UAR {_num(c['base']['uar'])} → {_num(c['new']['uar'])} "
                    f"({_num(d['uar']['value'])} {_ci(d['uar']['ci95'])})")
    if agreement:
        kappa = _table(["class", "kappa", f"spans by {agreement.get('first', 'first')}",
                        f"spans by {agreement.get('second', 'second')}"],
                       [["overall", _num(agreement["kappa"]), agreement["spans"], agreement["spans"]]]
                       + [[r["class"], _num(r["kappa"]), r["first"], r["second"]] for r in agreement["per_class"]])
        kappa += (f'<p class="note">Cohen\'s kappa of two annotators on the {agreement["spans"]} spans both labelled '
                  f'(observed agreement {_num(agreement["observed_agreement"])}): the ceiling a model can be judged '
                  'against. Per class: the kappa of "is it this class?".</p>')
        sections.append(_section("Annotator agreement", kappa))
    sections.append(_section("Provenance", _provenance(provenance)))
    return _write(path, _page(title, subtitle, sections))
