"""Smoothing jumpy labels without touching the evidence: ``predict --smooth S`` adds a ``label_smoothed`` column.

A window's smoothed label is the top class of the mean probabilities of the windows of the same face track whose
centres lie within ``S / 2`` seconds of its own centre (a centred moving average over ``S`` seconds). Windows
labelled ``no_face`` neither contribute nor get a class: they stay ``no_face``, so smoothing never invents a face.
A smoothed label below ``min_confidence`` (on the averaged probability) is ``uncertain``, as for raw labels.

The ``label``, ``confidence`` and ``p_<class>`` columns are never changed: smoothing is a reading aid beside the
model's own output, and the file keeps what the model said.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..config import NO_FACE
from ..evaluation.selective import evidence_label

__all__ = ["smooth_labels", "add_smoothed_labels"]


def smooth_labels(table: pd.DataFrame, seconds: float, *, min_confidence: float | None = None) -> pd.Series:
    """The ``label_smoothed`` column of ``table`` for a centred window of ``seconds`` (see the module docstring)."""
    if not seconds > 0:
        raise ValueError(f"--smooth must be a positive number of seconds, got {seconds}")
    labels = list(table.attrs.get("labels") or [c[2:] for c in table.columns if c.startswith("p_")])
    out = pd.Series(NO_FACE, index=table.index, dtype=object)
    if not len(table):
        return out
    probs = table[[f"p_{c}" for c in labels]].to_numpy(float)  # [N, C]
    centre = ((table["start_s"] + table["end_s"]) / 2).to_numpy(float)
    face = (table["label"] != NO_FACE).to_numpy()
    tracks = table["track_id"].to_numpy() if "track_id" in table else np.zeros(len(table), int)
    for t in np.unique(tracks):
        rows = np.flatnonzero(tracks == t)
        rows = rows[np.argsort(centre[rows], kind="stable")]
        c, ok = centre[rows], face[rows]
        summed = np.cumsum(np.vstack([np.zeros(len(labels)), probs[rows] * ok[:, None]]), axis=0)  # [n+1, C]
        counted = np.concatenate([[0], np.cumsum(ok)])
        lo = np.searchsorted(c, c - seconds / 2, side="left")
        hi = np.searchsorted(c, c + seconds / 2, side="right")
        for k, r in enumerate(rows):
            n = counted[hi[k]] - counted[lo[k]]
            if not ok[k] or n == 0:
                continue
            mean = (summed[hi[k]] - summed[lo[k]]) / n  # [C]
            top = int(np.argmax(mean))
            out.iloc[r] = evidence_label(labels[top], float(mean[top]), min_confidence=min_confidence)[0]
    return out


def add_smoothed_labels(table: pd.DataFrame, seconds: float, *, min_confidence: float | None = None) -> pd.DataFrame:
    """Insert ``label_smoothed`` right after ``label`` (in place) and record ``smooth_s`` in ``table.attrs``."""
    column = smooth_labels(table, seconds, min_confidence=min_confidence)
    if "label_smoothed" in table:
        table["label_smoothed"] = column
    else:
        table.insert(table.columns.get_loc("label") + 1, "label_smoothed", column)
    table.attrs["smooth_s"] = float(seconds)
    return table
