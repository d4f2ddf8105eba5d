"""Abstention: answer only when confident enough, and what that buys.

Sort the clips by top-label confidence, most confident first. Keeping the ``k`` most confident gives **coverage**
``k / N`` and **selective risk** ``errors among them / k``. The **risk–coverage curve** is that risk for
``k = 1..N``; its area, **AURC**, is the mean of the risks over ``k`` (Geifman & El-Yaniv 2017; lower is better;
a model whose confidence ranks its errors last has the smallest AURC its accuracy allows). Ties in confidence are
kept in the given order (a stable sort).

A threshold ``P`` (``--min-confidence``) keeps the clips whose confidence is ``>= P``: its coverage and the accuracy
on the kept clips are :func:`at_threshold`. ``predict --min-confidence`` labels the rest ``uncertain``
(:func:`abstain`), keeping their probabilities.
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["UNCERTAIN", "risk_coverage", "at_threshold", "abstain"]

#: The label of a window whose confidence is below ``--min-confidence``.
UNCERTAIN = "uncertain"


def risk_coverage(confidence, correct) -> dict[str, Any]:
    """``coverage`` ``[N]``, ``risk`` ``[N]``, ``threshold`` ``[N]`` (the confidence of the k-th clip) and ``aurc``."""
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=bool)
    if conf.shape != ok.shape or conf.ndim != 1 or len(conf) == 0:
        raise ValueError(f"confidence and correct must be 1-D, equal and non-empty, got {conf.shape}, {ok.shape}")
    order = np.argsort(-conf, kind="stable")
    k = np.arange(1, len(conf) + 1)
    risk = np.cumsum(~ok[order]) / k
    return {"coverage": (k / len(conf)).tolist(), "risk": risk.tolist(), "threshold": conf[order].tolist(),
            "aurc": float(risk.mean())}


def at_threshold(confidence, correct, min_confidence: float) -> dict[str, Any]:
    """Coverage, number of clips kept and accuracy on them for a confidence threshold (accuracy None if none kept)."""
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=bool)
    kept = conf >= min_confidence
    n = int(kept.sum())
    return {"min_confidence": float(min_confidence), "coverage": float(kept.mean()), "covered_clips": n,
            "covered_accuracy": float(ok[kept].mean()) if n else None}


def abstain(table, min_confidence: float | None):
    """Set ``label`` to ``uncertain`` in the rows of a prediction table whose ``confidence`` is below
    ``min_confidence`` (in place; the probabilities stay). ``None`` leaves the table as it is."""
    if min_confidence is None:
        return table
    if not 0.0 <= min_confidence <= 1.0:
        raise ValueError(f"--min-confidence must be between 0 and 1, got {min_confidence}")
    if len(table):
        table.loc[table["confidence"] < min_confidence, "label"] = UNCERTAIN
    return table
