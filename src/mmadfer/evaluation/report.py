"""``report.html``: one self-contained page with everything an evaluation found, in plain language.

It opens with a verdict (:func:`mmadfer.evaluation.glossary.verdict`: UAR against chance, classes never predicted,
whether confidences can be trusted), then every metric with its interval, its chance level where it has one and a
one-line meaning (:func:`~mmadfer.evaluation.glossary.metric_rows`). Sections without data (no cost matrix, no
groups file) are left out, and the operating cost says what it covers: the model on prepared clips, not decoding
and face detection.

Self-contained means it opens offline in any browser: the CSS is inline, the charts are PNGs inlined as base64
``data:`` URIs, and there is no script, font, or link to anything outside the file. Every value shown is escaped
(:func:`html.escape`). :func:`write_report` renders one evaluation (``mmadfer evaluate --report``);
:func:`write_cv_report` the folds of a cross-validation, mean ± sample sd over folds (``mmadfer cv``).
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

from .._html import esc, image, num, page, section, table, write_html
from .glossary import chance_levels, describe_metric, metric_rows, verdict

__all__ = ["SECTIONS", "write_report", "write_cv_report", "write_compare_report"]

#: The section headings of an evaluation report, in order ("Cost matrix", "Subgroups" and "Operating cost (model
#: only)" only when there is something to show).
SECTIONS = ("Summary", "Per-class results", "Confusion matrix", "Calibration", "Risk–coverage", "Cost matrix",
            "Subgroups", "Operating cost (model only)", "Provenance")


def _ci(ci: Sequence[Any] | None) -> str:
    if not ci or ci[0] is None:
        return ""
    return f"[{num(ci[0])}, {num(ci[1])}]"


def _provenance(prov: dict[str, Any]) -> str:
    rows = "".join(f"<dt>{esc(k.replace('_', ' '))}</dt><dd><code>{esc(v)}</code></dd>" for k, v in prov.items())
    return f"<dl>{rows}</dl>"


def _metrics_table(m: dict[str, Any]) -> str:
    rows = [[r["name"], num(r["value"]), _ci(r["ci95"]), num(r["chance"]) if r["chance"] is not None else "",
             f'{r["meaning"]} ({r["better"]} is better)'] for r in metric_rows(m)]
    return table(["metric", "value", "95% CI", "chance", "what it means"], rows,
                 caption="Every metric, with its bootstrap interval and what guessing would score", text_columns=[4])


def _verdict(lines: Sequence[str]) -> str:
    return '<ul class="verdict">' + "".join(f"<li>{esc(x)}</li>" for x in lines) + "</ul>" if lines else ""


def _subgroups_html(sub: dict[str, Any], files: dict[str, str]) -> str:
    parts = [f'<p class="note">{sub["matched"]} clip id(s) matched; {len(sub["unmatched"])} unmatched, '
             f'{len(sub["ambiguous"])} ambiguous. Groups with fewer than {sub["min_group_n"]} clips are shown but '
             f'never enter a gap. A gap is flagged when its 95% bootstrap interval excludes 0.</p>']
    for i, (column, rep) in enumerate(sub["columns"].items()):
        parts.append(f"<h3>{esc(column)}</h3>")
        rows = [[r["group"], r["n"], *(f"{num(r[k])} {_ci(r['ci95'][k])}" for k in ("uar", "war", "macro_f1", "ece")),
                 "yes" if r["eligible"] else "no (small)"] for r in rep["groups"]]
        parts.append(table(["group", "n", "UAR [95% CI]", "WAR [95% CI]", "macro-F1 [95% CI]", "ECE [95% CI]",
                             "in gap"], rows))
        for metric, gap in rep["gaps"].items():
            if gap.get("gap") is None:
                parts.append(f'<p class="note">{esc(metric.upper())} gap: {esc(gap.get("note", "n/a"))}</p>')
                continue
            cls, word = ("flag", "FLAGGED") if gap["flagged"] else ("ok", "not significant")
            parts.append(f'<p>{esc(metric.upper())} gap {esc(gap["best"])} − {esc(gap["worst"])}: '
                         f'<b>{num(gap["gap"])}</b> {esc(_ci(gap["ci95"]))} <span class="{cls}">{word}</span></p>')
        if f"subgroups_png_{i}" in files:
            parts.append(image(files[f"subgroups_png_{i}"], f"UAR by {column}"))
    return "".join(parts)


def _cost_html(oc: dict[str, Any]) -> str:
    rows = [["clips scored", oc["clips"]], ["wall time (s)", num(oc["seconds"], 2)],
            ["throughput (clips/s)", num(oc["clips_per_s"], 2)], ["device", oc["device"]],
            ["backend", oc["backend"]], ["batch size", oc.get("batch_size")],
            ["window / stride (s)", f"{oc['window_s']:g} / {oc['stride_s']:g}"],
            ["windows per hour of video", oc["windows_per_video_hour"]],
            [f"hours of video per hour ({oc.get('scope', 'model only')})", num(oc["video_hours_per_hour"], 1)]]
    if "cost_per_video_hour" in oc:
        cur = oc.get("currency") or ""
        rows += [["price per machine hour", f"{oc['price_per_hour']:g} {cur}".strip()],
                 ["cost per hour of video", f"{oc['cost_per_video_hour']:.4g} {cur}".strip()]]
    else:
        rows.append(["cost per hour of video", "pass --price-per-hour"])
    note = ('<p class="note">Model only: measured on this evaluation, loading prepared clips plus the model. '
            'Predicting on raw video also decodes it and detects faces, which can take longer than the model; '
            '<code>mmadfer bench --what predict</code> measures that whole pipeline on your machine.</p>')
    return table(None, rows) + note


def _cost_headline(oc: dict[str, Any] | None) -> str:
    if not oc:
        return ""
    cost = f", {oc['cost_per_video_hour']:.3g} {oc.get('currency') or ''} per hour of video".rstrip() \
        if "cost_per_video_hour" in oc else ""
    return (f'<p>Operating cost, <strong>model only</strong> (decoding and face detection not included): '
            f'{num(oc["video_hours_per_hour"], 1)} hours of video per machine-hour{esc(cost)}.</p>')


def write_report(path: str | os.PathLike, metrics: dict[str, Any], *, provenance: dict[str, Any],
                 title: str = "mmadfer evaluation") -> Path:
    """Render one evaluation's ``metrics`` (``metrics.json``, with its ``files``) to a self-contained HTML file."""
    m = metrics
    files = m.get("files", {})
    names = m["class_names"]
    summary = (_verdict(verdict(m)) + _metrics_table(m)
               + table(None, [["clips", m["num_clips"]], ["skipped", len(m.get("skipped", []))],
                              ["temperature", num(m.get("temperature"), 3)]])
               + _cost_headline(m.get("operating_cost")))
    if m.get("bootstrap"):
        b = m["bootstrap"]
        summary += (f'<p class="note">Intervals: {b["method"]} bootstrap over clips, {b["resamples"]} resamples, '
                    f'seed {b["seed"]}.</p>')
    per_class = table(["class", "support", "recall", "precision"],
                       [[r["class"], r["support"], num(r["recall"]), num(r["precision"])] for r in m["per_class"]])
    confusion = table(["true \\ predicted", *names], [[n, *row] for n, row in zip(names, m["confusion"])])
    confusion += image(files.get("confusion_png"), "confusion matrix")
    calib = (f'<p>ECE {num(m["ece"])} {esc(_ci(m.get("ci95", {}).get("ece")))} · MCE {num(m["mce"])} · '
             f'NLL {num(m["nll"])} · Brier {num(m["brier"])} · temperature {num(m.get("temperature"), 3)}</p>'
             f'<p class="note">Top-label confidence in {m.get("ece_bins", 15)} equal-width bins (last bin closed). '
             f'ECE is the clip-weighted mean |accuracy − confidence| over bins; MCE the largest.</p>'
             + image(files.get("reliability_png"), "reliability diagram"))
    risk = f'<p>AURC {num(m["aurc"])} (area under the risk–coverage curve; lower is better).</p>'
    if m.get("selective"):
        s = m["selective"]
        risk += (f'<p>With confidence ≥ {s["min_confidence"]:g}: coverage {num(s["coverage"])} '
                 f'({s["covered_clips"]} clips), accuracy on covered clips {num(s["covered_accuracy"])}.</p>')
    risk += image(files.get("risk_coverage_png"), "risk-coverage curve")
    sections = [section("Summary", summary), section("Per-class results", per_class),
                section("Confusion matrix", confusion), section("Calibration", calib),
                section("Risk–coverage", risk)]
    if "expected_cost" in m:  # sections without data are left out
        sections.append(section("Cost matrix", f'<p>Expected cost per clip: <b>{num(m["expected_cost"])}</b></p>'
                                + table(["true \\ predicted", *names],
                                        [[n, *(f"{v:g}" for v in row)] for n, row in zip(names, m["cost_matrix"])])))
    if m.get("subgroups"):
        sections.append(section("Subgroups", _subgroups_html(m["subgroups"], files)))
    if m.get("operating_cost"):
        sections.append(section("Operating cost (model only)", _cost_html(m["operating_cost"])))
    sections.append(section("Provenance", _provenance(provenance)))
    chance = chance_levels(m).get("uar")
    subtitle = (f"{provenance.get('dataset', '')} · {m['num_clips']} clips · UAR {num(m['uar'])}"
                + (f" (chance {num(chance, 2)})" if chance is not None else ""))
    return write_html(path, page(title, subtitle, sections))


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
    keys = ["uar", "war", "macro_f1", "ece", "nll", "brier", "aurc", "mce", "expected_cost"]
    label = {k: describe_metric(k)["name"] for k in keys}
    present = [k for k in keys if any(f.get(k) is not None for f in folds)]
    summary = table(["metric", "mean ± sd over folds", *(f"fold {f['fold']}" for f in folds), "what it means"],
                    [[label[k], _mean_sd([f.get(k) for f in folds]), *(num(f.get(k)) for f in folds),
                      describe_metric(k)["meaning"]] for k in present], text_columns=[len(folds) + 2])
    chance = chance_levels(folds[0]).get("uar")
    if chance is not None:
        summary += f'<p>UAR by chance: {num(chance, 2)} (every fold\'s test split has the same classes).</p>'
    summary += '<p class="note">Each fold\'s final checkpoint on its test split; sd is the sample sd (ddof=1).</p>'
    names = folds[0]["class_names"]
    per_class = table(["class", "recall mean ± sd", "precision mean ± sd"],
                       [[n, _mean_sd([f["per_class"][c]["recall"] for f in folds]),
                         _mean_sd([f["per_class"][c]["precision"] for f in folds])] for c, n in enumerate(names)])
    total = [[sum(f["confusion"][i][j] for f in folds) for j in range(len(names))] for i in range(len(names))]
    confusion = ('<p class="note">Summed over folds.</p>'
                 + table(["true \\ predicted", *names], [[n, *row] for n, row in zip(names, total)]))
    cells = "".join(f"<div><h3>fold {f['fold']}: ECE {num(f.get('ece'))}</h3>"
                    + image(f.get("files", {}).get("reliability_png"), f"reliability fold {f['fold']}") + "</div>"
                    for f in folds)
    calib = f'<div class="grid">{cells}</div>'
    risk = table(["fold", "AURC"], [[f["fold"], num(f.get("aurc"))] for f in folds])
    rates = [f.get("throughput", {}).get("clips_per_s") for f in folds]
    oc = table(["fold", "clips/s", "device", "backend"],
               [[f["fold"], num(f.get("throughput", {}).get("clips_per_s"), 2), f.get("throughput", {}).get(
                   "device", ""), f.get("throughput", {}).get("backend", "")] for f in folds])
    oc += (f'<p>Mean throughput: {esc(_mean_sd(rates))} clips/s, model only (the test-split evaluation after '
           f'training: prepared clips through the model; decoding and face detection not included).</p>')
    sections = [section("Summary", summary), section("Per-class results", per_class),
                section("Confusion matrix", confusion), section("Calibration", calib),
                section("Risk–coverage", risk)]
    if any("expected_cost" in f for f in folds):  # sections without data are left out
        sections.append(section("Cost matrix", table(["fold", "expected cost per clip"],
                                                     [[f["fold"], num(f.get("expected_cost"))] for f in folds])))
    if any(f.get("throughput") for f in folds):
        sections.append(section("Operating cost (model only)", oc))
    sections.append(section("Provenance", _provenance(provenance)))
    subtitle = f"{len(folds)} fold(s) · UAR {_mean_sd([f.get('uar') for f in folds])}"
    return write_html(path, page(title, subtitle, sections))


def write_compare_report(path: str | os.PathLike, comparison: dict[str, Any], *, provenance: dict[str, Any],
                         agreement: dict[str, Any] | None = None, title: str = "mmadfer: before and after") -> Path:
    """Render :func:`mmadfer.evaluation.compare.compare_predictions` (with ``throughput`` per side, when measured)
    and, when two annotators labelled the same spans, their Cohen's kappa (:mod:`mmadfer.evaluation.agreement`)."""
    c = comparison
    sections = []
    if not c["comparable"]:
        sections.append(section("Summary", f'<p class="flag">{esc(c["reason"])}</p>'))
        subtitle = f"{c['clips']} clips · base not comparable"
    else:
        d, mc = c["difference"], c["mcnemar"]
        summary = table(["", "base", "new", "new − base", "95% CI (paired bootstrap)"],
                         [[k.upper(), num(c["base"][k]), num(c["new"][k]), num(d[k]["value"]),
                           _ci(d[k]["ci95"])] for k in ("uar", "war")])
        b = c["bootstrap"]
        summary += (f'<p class="note">{c["clips"]} held-out clips scored by both models. Intervals: '
                    f'{esc(b["method"])} bootstrap, {b["resamples"]} resamples of the clips (both models scored on '
                    f'each), seed {b["seed"]}. An interval that excludes 0 means the difference is unlikely to be '
                    'chance on clips like these; it says nothing about other kinds of footage.</p>')
        summary += (f'<p>McNemar\'s test ({esc(mc["method"])}): {mc["new_only"]} clip(s) only the new model gets '
                    f'right, {mc["base_only"]} only the base gets right; p = {num(mc["p_value"])}.</p>')
        if c.get("class_map"):
            summary += ('<p class="note">The base model\'s classes were mapped onto these: '
                        + esc(", ".join(f"{k} → {v}" for k, v in c["class_map"].items()))
                        + '. Unmapped base classes count as wrong.</p>')
        per_class = table(["class", "support", "base recall", "new recall", "change"],
                           [[r["class"], r["support"], num(r["base_recall"]), num(r["new_recall"]),
                             num(r["change"])] for r in c["per_class"]])
        calib = table(["", "base", "new"], [[k.upper(), num(c["base"][k]), num(c["new"][k])]
                                             for k in ("ece", "nll", "brier")])
        calib += '<p class="note">Lower is better for all three (top-label ECE in 15 bins, NLL, Brier).</p>'
        cost = table(["", "clips/s", "device", "backend"],
                      [[side, num(c[side].get("throughput", {}).get("clips_per_s"), 2),
                        c[side].get("throughput", {}).get("device", "–"),
                        c[side].get("throughput", {}).get("backend", "–")] for side in ("base", "new")])
        sections += [section("Summary", summary), section("Per-class change", per_class),
                     section("Calibration", calib), section("Operating cost", cost)]
        subtitle = (f"{c['clips']} clips · UAR {num(c['base']['uar'])} → {num(c['new']['uar'])} "
                    f"({num(d['uar']['value'])} {_ci(d['uar']['ci95'])})")
    if agreement:
        kappa = table(["class", "kappa", f"spans by {agreement.get('first', 'first')}",
                        f"spans by {agreement.get('second', 'second')}"],
                       [["overall", num(agreement["kappa"]), agreement["spans"], agreement["spans"]]]
                       + [[r["class"], num(r["kappa"]), r["first"], r["second"]] for r in agreement["per_class"]])
        kappa += (f'<p class="note">Cohen\'s kappa of two annotators on the {agreement["spans"]} spans both labelled '
                  f'(observed agreement {num(agreement["observed_agreement"])}): the ceiling a model can be judged '
                  'against. Per class: the kappa of "is it this class?".</p>')
        sections.append(section("Annotator agreement", kappa))
    sections.append(section("Provenance", _provenance(provenance)))
    return write_html(path, page(title, subtitle, sections))
