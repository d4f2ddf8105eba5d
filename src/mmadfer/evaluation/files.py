"""An evaluation's files: ``metrics.json``, ``per_class.csv``, ``confusion.csv``, ``confusion_normalized.csv``,
``predictions.csv``, ``risk_coverage.csv`` and the charts (:mod:`mmadfer.evaluation.plots`), each written atomically.
The numbers come from the pure modules beside this one."""
from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..io import atomic_write, write_frame_csv
from .accuracy import confusion_frames
from .plots import plot_confusion, plot_reliability, plot_risk_coverage, plot_subgroups

__all__ = ["write_json", "write_evaluation", "write_files"]

logger = logging.getLogger(__name__)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically; NaN becomes null."""
    text = json.dumps(obj, indent=2, default=_json_default, allow_nan=False)
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(text + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return None if math.isnan(o) else float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_evaluation(out_dir: str | os.PathLike, metrics: dict[str, Any], predictions=None) -> dict[str, Path]:
    """Write an evaluation's reports into ``out_dir``; returns the files written by name.

    ``metrics`` is :func:`classification_metrics`' output (plus anything JSON-able); ``predictions`` an optional
    pandas DataFrame with one row per clip. The PNG needs matplotlib; without it the other files are still written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"metrics": out / "metrics.json", "per_class": out / "per_class.csv", "confusion": out / "confusion.csv",
             "confusion_normalized": out / "confusion_normalized.csv"}
    write_json(files["metrics"], metrics)
    write_frame_csv(pd.DataFrame(metrics["per_class"]), files["per_class"], index=False, float_format="%.6g")
    counts, norm = confusion_frames(metrics)
    write_frame_csv(counts, files["confusion"])
    write_frame_csv(norm, files["confusion_normalized"], float_format="%.6g")
    if predictions is not None:
        files["predictions"] = out / "predictions.csv"
        write_frame_csv(predictions, files["predictions"], index=False, float_format="%.6g")
    try:
        files["confusion_png"] = plot_confusion(metrics, out / "confusion.png")
    except ImportError as e:
        logger.warning("confusion.png not written: %s", e)
    return files


def write_files(out_dir: str | os.PathLike, metrics: dict[str, Any]) -> dict[str, Path]:
    """``risk_coverage.csv`` and, with matplotlib, ``reliability.png``, ``risk_coverage.png`` and
    ``subgroups_<column>.png``; removes the curve arrays from ``metrics`` (they live in the CSV)."""
    out = Path(out_dir)
    rc = metrics.pop("risk_coverage")
    files = {"risk_coverage": out / "risk_coverage.csv"}
    with atomic_write(files["risk_coverage"], "w", encoding="utf-8", newline="") as f:
        f.write("coverage,risk,threshold\n")
        for c, r, t in zip(rc["coverage"], rc["risk"], rc["threshold"]):
            f.write(f"{c:.6g},{r:.6g},{t:.6g}\n")
    try:
        files["reliability_png"] = plot_reliability(metrics, out / "reliability.png")
        files["risk_coverage_png"] = plot_risk_coverage(rc, metrics, out / "risk_coverage.png")
        for i, (column, rep) in enumerate(metrics.get("subgroups", {}).get("columns", {}).items()):
            if rep["groups"]:
                files[f"subgroups_png_{i}"] = plot_subgroups(column, rep, out / f"subgroups_{_safe(column)}.png")
    except ImportError as e:
        logger.warning("charts not written: %s", e)
    return files


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)[:60] or "column"
