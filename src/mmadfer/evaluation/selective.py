"""Abstention: answer only when confident enough, and what that buys.

Sort the clips by top-label confidence, most confident first. Keeping the ``k`` most confident gives **coverage**
``k / N`` and **selective risk** ``errors among them / k``. The **risk–coverage curve** is that risk for
``k = 1..N``; its area, **AURC**, is the mean of the risks over ``k`` (Geifman & El-Yaniv 2017; lower is better;
a model whose confidence ranks its errors last has the smallest AURC its accuracy allows). Ties in confidence are
kept in the given order (a stable sort).

A threshold ``P`` (``--min-confidence``) keeps the clips whose confidence is ``>= P``: its coverage and the accuracy
on the kept clips are :func:`at_threshold`. ``predict --min-confidence`` labels the rest ``uncertain``, keeping their
probabilities; and a prediction claims nothing where there is no face to read: a window whose face coverage is below
``--min-face-coverage`` is labelled ``no_face`` with no confidence (:func:`evidence_label`, the one rule every
timeline row goes through; :func:`abstain` applies it to a whole table).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..config import NO_FACE, UNCERTAIN

__all__ = ["UNCERTAIN", "NO_FACE", "risk_coverage", "at_threshold", "evidence_label", "check_thresholds", "abstain"]


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


def check_thresholds(min_confidence: float | None = None, min_face_coverage: float | None = None) -> None:
    """Raise ``ValueError`` naming the option unless each threshold is None or within [0, 1]."""
    for flag, value in (("--min-confidence", min_confidence), ("--min-face-coverage", min_face_coverage)):
        if value is not None and not 0.0 <= value <= 1.0:
            raise ValueError(f"{flag} must be between 0 and 1, got {value}")


def evidence_label(label: str, confidence: float, face_coverage: float = math.nan, *,
                   min_confidence: float | None = None,
                   min_face_coverage: float | None = None) -> tuple[str, float]:
    """What one prediction may claim: ``(label, confidence)``.

    ``(NO_FACE, nan)`` when ``face_coverage`` (the fraction of the window's sampled frames with a face) is below
    ``min_face_coverage``: without a face there is no expression to read, however confident the model is.
    ``(UNCERTAIN, confidence)`` when ``confidence`` is below ``min_confidence``. Otherwise unchanged. A NaN coverage
    (no face detector ran: the frames are face crops already) never counts as no face; None turns a rule off.
    """
    if min_face_coverage is not None and face_coverage < min_face_coverage:
        return NO_FACE, math.nan
    if min_confidence is not None and confidence < min_confidence:
        return UNCERTAIN, confidence
    return label, confidence


def abstain(table, min_confidence: float | None, *, min_face_coverage: float | None = None):
    """Apply :func:`evidence_label` to every row of a prediction table (``label``, ``confidence`` and, for
    ``min_face_coverage``, ``face_coverage`` columns), in place; the probabilities stay. None turns a rule off."""
    check_thresholds(min_confidence, min_face_coverage)
    if len(table) and (min_confidence is not None or min_face_coverage is not None):
        coverage = table["face_coverage"] if "face_coverage" in table else [math.nan] * len(table)
        decided = [evidence_label(lab, conf, cov, min_confidence=min_confidence, min_face_coverage=min_face_coverage)
                   for lab, conf, cov in zip(table["label"], table["confidence"], coverage)]
        table["label"] = [lab for lab, _ in decided]
        table["confidence"] = [conf for _, conf in decided]
    return table
