"""The charts of an evaluation: reliability diagram, risk–coverage curve and per-subgroup UAR (matplotlib, Agg)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_path
from .._optional import require
from ..text import chart_text

__all__ = ["plot_reliability", "plot_risk_coverage", "plot_subgroups"]

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
