"""What a timeline adds up to: per video, the share of time each label holds, the dominant label, how much of the
time a face and audio were found; and one table over all the videos of a run (``summary.csv``).

Pure functions of timeline tables (:meth:`mmadfer.Recognizer.predict_video`'s output, or the files ``mmadfer
predict`` wrote), so ``predict``, its HTML report and the web app give the same numbers.

**Time.** Each window stands for the part of the video it owns: from its start to the next window's start, or to its
end when that comes first. With overlapping windows (a stride under the window) every moment is
counted once; with several faces in view each face's windows count, so shares are of person-time.

**Labels.** Shares are of the timeline's ``label`` column, or of ``label_smoothed`` when it has one (``predict
--smooth``), and include ``no_face`` and ``uncertain``: a video that is mostly without a face says so. The dominant
label is the one with the largest share.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from ..config import RESERVED_LABELS
from ..io import atomic_write, frame_csv_text

__all__ = ["summarize", "summary_table", "write_summary", "label_column", "window_weights", "SUMMARY_FIELDS"]

#: The columns of ``summary.csv`` before the ``share_<label>`` columns.
SUMMARY_FIELDS = ("video", "windows", "duration_s", "dominant_label", "dominant_share", "face_found_pct",
                  "audio_found_pct", "label_column")


def label_column(table: pd.DataFrame) -> str:
    """The label column a summary reads: ``label_smoothed`` when the table has one, else ``label``."""
    return "label_smoothed" if "label_smoothed" in table else "label"


def window_weights(table: pd.DataFrame) -> np.ndarray:
    """Seconds of video each row stands for: from its start to the next window's start, or to its end when that
    comes first (the last window: to its end), so overlapping windows count each moment once."""
    start = table["start_s"].to_numpy(float)
    end = table["end_s"].to_numpy(float)
    starts = np.unique(start)
    following = np.append(starts[1:], np.inf)[np.searchsorted(starts, start)]  # the next distinct start
    return np.clip(np.minimum(end, following) - start, 0.0, None)


def _pct(values: np.ndarray, weights: np.ndarray) -> float:
    ok = ~np.isnan(values)
    if not ok.any() or weights[ok].sum() <= 0:
        return math.nan
    return float(100.0 * np.average(values[ok], weights=weights[ok]))


def summarize(table: pd.DataFrame, labels: Sequence[str] | None = None) -> dict[str, Any]:
    """One video's summary: ``windows``, ``duration_s`` (the span the windows cover), ``shares`` (label -> fraction of
    the time, every class of ``labels`` — default ``table.attrs['labels']`` — and ``no_face``/``uncertain``),
    ``dominant_label`` and ``dominant_share`` (None for an empty table), ``face_found_pct`` (the time-weighted mean
    of ``face_coverage`` in percent: NaN when no face detector ran), ``audio_found_pct`` and ``label_column``."""
    labels = list(labels if labels is not None else table.attrs.get("labels")
                  or [c[2:] for c in table.columns if c.startswith("p_")])
    column = label_column(table)
    names = labels + [r for r in RESERVED_LABELS if r not in labels]
    weights = window_weights(table) if len(table) else np.zeros(0)
    total = float(weights.sum())
    got = table[column].astype(str).to_numpy() if len(table) else np.array([], dtype=str)
    shares = {name: (float(weights[got == name].sum() / total) if total > 0 else 0.0) for name in names}
    for other in sorted(set(got) - set(names)):  # a label outside the model's classes: shown, never dropped
        shares[other] = float(weights[got == other].sum() / total) if total > 0 else 0.0
    dominant = max(shares, key=lambda k: shares[k]) if total > 0 else None
    coverage = table["face_coverage"].to_numpy(float) if "face_coverage" in table else np.full(len(table), np.nan)
    audio = table["has_audio"].astype(float).to_numpy() if "has_audio" in table else np.full(len(table), np.nan)
    return {
        "windows": int(table["start_s"].nunique()) if len(table) else 0,
        "duration_s": float(table["end_s"].max() - table["start_s"].min()) if len(table) else 0.0,
        "shares": shares,
        "dominant_label": dominant,
        "dominant_share": shares[dominant] if dominant is not None else None,
        "face_found_pct": _pct(coverage, weights),
        "audio_found_pct": _pct(audio, weights),
        "label_column": column,
    }


def summary_table(tables: Iterable[tuple[str | os.PathLike, pd.DataFrame]],
                  labels: Sequence[str] | None = None) -> pd.DataFrame:
    """``summary.csv``: one row per ``(video name, timeline)``, the fields of :data:`SUMMARY_FIELDS` and a
    ``share_<label>`` column per label (the classes, then ``no_face`` and ``uncertain``)."""
    rows, names = [], list(labels or [])
    for video, table in tables:
        s = summarize(table, labels)
        names += [k for k in s["shares"] if k not in names]
        rows.append({"video": os.fspath(video), **{k: s[k] for k in SUMMARY_FIELDS if k != "video"},
                     **{f"share_{k}": v for k, v in s["shares"].items()}})
    shares = [f"share_{k}" for k in names]
    return pd.DataFrame(rows, columns=list(SUMMARY_FIELDS) + shares).fillna({c: 0.0 for c in shares})


def write_summary(summary: pd.DataFrame, path: str | os.PathLike) -> bool:
    """Write a :func:`summary_table` as CSV, atomically (numbers to 6 significant digits, NaN as empty); a file that
    already says the same is left as it is (a resumed run with nothing new touches nothing). Returns whether it
    wrote."""
    text = frame_csv_text(summary, index=False, float_format="%.6g")  # cells escaped for spreadsheets
    path = Path(path)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    with atomic_write(path, encoding="utf-8", newline="") as f:
        f.write(text)
    return True
