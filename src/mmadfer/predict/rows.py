"""One timeline row from one scored window: its span, label, confidence, probabilities, face and audio evidence.

Every path that predicts (one video, an archive of them, torchrun shards, real time, the web app) builds its rows
here, so a label means the same everywhere: the top class, unless the window had too little face to read
(``no_face``, no confidence) or its top probability is below the threshold asked for (``uncertain``); the rule is
:func:`mmadfer.evaluation.selective.evidence_label`. The probabilities are always the model's own.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..evaluation.selective import evidence_label
from .prepare import WindowInfo
from .table import BOX_COLUMNS

__all__ = ["window_row", "box_fractions"]


def box_fractions(prepared: dict[str, Any]) -> tuple[float, float, float, float]:
    """The crop the model saw for this window's track, ``(x0, y0, x1, y1)`` as fractions of the frame's width and
    height (the mean over its frames; one box with the reference's union crop), or four NaNs when no face was found
    (or no detector ran)."""
    boxes, size = prepared.get("boxes"), prepared.get("frame_size")
    if boxes is None or size is None or prepared.get("face_fallback"):
        return (math.nan,) * 4
    h, w = size
    x0, y0, x1, y1 = np.asarray(boxes, np.float64).reshape(-1, 4).mean(0)
    return (float(x0 / w), float(y0 / h), float(x1 / w), float(y1 / h))


def window_row(info: WindowInfo, prepared: dict[str, Any], probs: np.ndarray, labels: Sequence[str],
               track: int | None = None, *, min_confidence: float | None = None,
               min_face_coverage: float | None = None) -> dict[str, Any]:
    """One timeline row (the columns of :func:`mmadfer.predict.table.table_columns`; ``track_id`` if given)."""
    top = int(np.argmax(probs))
    coverage = float(prepared.get("face_coverage", math.nan))
    label, confidence = evidence_label(labels[top], float(probs[top]), coverage, min_confidence=min_confidence,
                                       min_face_coverage=min_face_coverage)
    row: dict[str, Any] = {"start_s": round(float(info.start_s), 6), "end_s": round(float(info.end_s), 6)}
    if track is not None:
        row["track_id"] = track
    row.update(label=label, confidence=confidence)
    row.update({f"p_{c}": float(v) for c, v in zip(labels, probs)})
    row.update(face_coverage=coverage, has_audio=bool(prepared.get("has_audio", info.has_audio)))
    row.update(zip(BOX_COLUMNS, box_fractions(prepared)))
    return row
