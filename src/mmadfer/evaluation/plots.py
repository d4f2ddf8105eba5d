"""The charts of an evaluation: confusion matrix, reliability diagram, risk–coverage curve, per-subgroup UAR and the
learning curve (matplotlib, Agg)."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_path
from .._optional import require
from ..text import chart_text
from .accuracy import confusion_frames

__all__ = ["plot_confusion", "plot_reliability", "plot_risk_coverage", "plot_subgroups", "plot_learning_curve"]

_BLUE, _RED, _GREY = "#2b6cb0", "#c53030", "#718096"


def _figure(w: float, h: float):
    require("matplotlib", "the evaluation charts")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path


def plot_reliability(metrics: dict[str, Any], path: str | os.PathLike) -> Path:
    """Reliability diagram: accuracy against mean confidence per bin, with the clip count per bin below."""
    rel = metrics["reliability"]
    lower, upper = np.array(rel["lower"]), np.array(rel["upper"])
    count = np.array(rel["count"])
    acc = np.array([np.nan if a is None else a for a in rel["accuracy"]])
    conf = np.array([np.nan if c is None else c for c in rel["confidence"]])
    fig = _figure(6.0, 6.0)
    ax, ax2 = fig.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    width = upper - lower
    ax.bar(lower, np.nan_to_num(acc), width=width, align="edge", color=_BLUE, edgecolor="white", label="accuracy")
    gap_lo = np.nan_to_num(np.minimum(acc, conf))
    ax.bar(lower, np.nan_to_num(np.abs(conf - acc)), bottom=gap_lo, width=width, align="edge", facecolor=(0, 0, 0, 0),
           edgecolor=_RED, hatch="///", linewidth=0.8, label="gap to mean confidence")
    ax.plot([0, 1], [0, 1], "--", color=_GREY, lw=1, label="perfect calibration")
    ax.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy",
           title=f"Reliability: ECE {metrics['ece']:.3f}, MCE {metrics['mce']:.3f} ({len(count)} bins)")
    ax.legend(loc="upper left", frameon=False)
    ax2.bar(lower, count, width=width, align="edge", color=_GREY, edgecolor="white")
    ax2.set(xlabel="top-label confidence", ylabel="clips")
    return _save(fig, path)


def plot_risk_coverage(rc: dict[str, Any], metrics: dict[str, Any], path: str | os.PathLike) -> Path:
    """Selective risk against coverage, with the overall error rate and the threshold's point if any."""
    fig = _figure(6.0, 4.0)
    ax = fig.subplots()
    ax.plot(rc["coverage"], rc["risk"], color=_BLUE, lw=2, label=f"model (AURC {metrics['aurc']:.3f})")
    err = 1 - metrics["war"]
    ax.axhline(err, color=_GREY, ls="--", lw=1, label=f"no abstention (error {err:.3f})")
    sel = metrics.get("selective")
    if sel and sel["covered_accuracy"] is not None:
        ax.plot([sel["coverage"]], [1 - sel["covered_accuracy"]], "o", color=_RED,
                label=f"confidence >= {sel['min_confidence']:g}")
    ax.set(xlim=(0, 1), ylim=(0, max(0.05, max(rc["risk"]) * 1.05)), xlabel="coverage (fraction of clips answered)",
           ylabel="risk (error rate on answered clips)", title="Risk-coverage")
    ax.legend(frameon=False)
    return _save(fig, path)


def plot_subgroups(column: str, rep: dict[str, Any], path: str | os.PathLike) -> Path:
    """UAR per group with its 95% interval; groups below the minimum n in grey."""
    rows = rep["groups"]
    fig = _figure(max(5.0, 0.9 * len(rows) + 2.5), 4.0)
    ax = fig.subplots()
    x = np.arange(len(rows))
    uar = np.array([np.nan if r["uar"] is None else r["uar"] for r in rows])
    lo = np.array([np.nan if r["ci95"]["uar"][0] is None else r["ci95"]["uar"][0] for r in rows])
    hi = np.array([np.nan if r["ci95"]["uar"][1] is None else r["ci95"]["uar"][1] for r in rows])
    colors = [_BLUE if r["eligible"] else _GREY for r in rows]
    ax.bar(x, np.nan_to_num(uar), color=colors)
    ax.errorbar(x, uar, yerr=[np.nan_to_num(uar - lo), np.nan_to_num(hi - uar)], fmt="none", ecolor="black",
                capsize=4)
    ax.set_xticks(x)
    ax.set_xticklabels([chart_text(f"{r['group']}\nn={r['n']}") for r in rows])  # as written, never mathtext
    gap = rep["gaps"].get("uar", {})
    title = f"UAR by {chart_text(column)}"
    if gap.get("gap") is not None:
        title += f": gap {gap['gap']:.3f} [{gap['ci95'][0]:.3f}, {gap['ci95'][1]:.3f}]"
        title += " FLAGGED" if gap["flagged"] else ""
    ax.set(ylim=(0, 1), ylabel="UAR (95% interval)", title=title)
    return _save(fig, path)


def plot_learning_curve(rows: list[dict[str, Any]], path: str | os.PathLike, *, title: str = "") -> Path:
    """Held-out UAR against labelled clips per class, one line per starting point (``rows`` of
    :func:`mmadfer.train.learning_curve.learning_curve`): each run as a dot, the mean over repeats as the line, and
    the mean of the runs' 95% bootstrap intervals as the error bar."""
    fig = _figure(6.4, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    colours = {"checkpoint": _BLUE, "pretraining": _RED}
    for arm in dict.fromkeys(r["start"] for r in rows):
        mine = [r for r in rows if r["start"] == arm]
        sizes = sorted({r["per_class"] for r in mine})
        mean = [np.mean([r["uar"] for r in mine if r["per_class"] == n]) for n in sizes]
        lo = [np.mean([r["uar_lo"] for r in mine if r["per_class"] == n]) for n in sizes]
        hi = [np.mean([r["uar_hi"] for r in mine if r["per_class"] == n]) for n in sizes]
        colour = colours.get(arm, _GREY)
        ax.errorbar(sizes, mean, yerr=[np.subtract(mean, lo), np.subtract(hi, mean)], color=colour, marker="o",
                    capsize=4, label=f"from the {arm}")
        ax.scatter([r["per_class"] for r in mine], [r["uar"] for r in mine], color=colour, alpha=0.35, s=14)
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(sorted({r["per_class"] for r in rows}))
    ax.set_xticklabels([str(n) for n in sorted({r["per_class"] for r in rows})])
    ax.set(xlabel="labelled training clips per class", ylabel="held-out UAR", ylim=(0, 1.02),
           title=title or "How many labels: held-out UAR (95% bootstrap intervals)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_confusion(metrics: dict[str, Any], path: str | os.PathLike) -> Path:
    """Draw the confusion matrix, counts and row-normalised side by side, into a PNG (atomically)."""
    counts, norm = confusion_frames(metrics)
    names = [chart_text(c) for c in counts.columns]  # drawn as written, never as mathtext
    n = len(names)
    side = max(4.0, 0.55 * n + 2.0)
    fig = _figure(2 * side + 1, side)
    title = f"UAR {metrics['uar']:.4f}   WAR {metrics['war']:.4f}   ({metrics['num_clips']} clips)"
    fig.suptitle(title)
    for ax, frame, label, fmt in ((fig.add_subplot(1, 2, 1), counts, "counts", "{:d}"),
                                  (fig.add_subplot(1, 2, 2), norm, "recall (row-normalised)", "{:.2f}")):
        values = frame.to_numpy(dtype=np.float64)
        shown = np.nan_to_num(values / max(values.max(), 1) if label == "counts" else values)
        im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1)
        ax.set(xticks=range(n), yticks=range(n), xlabel="predicted", ylabel="true", title=label)
        ax.set_xticklabels(names, rotation=45, ha="right")
        ax.set_yticklabels(names)
        for i in range(n):
            for j in range(n):
                v = values[i, j]
                text = "" if math.isnan(v) else fmt.format(int(v) if label == "counts" else v)
                ax.text(j, i, text, ha="center", va="center", fontsize=8,
                        color="white" if shown[i, j] > 0.5 else "black")
        fig.colorbar(im, ax=ax, shrink=0.8)
    return _save(fig, path)
