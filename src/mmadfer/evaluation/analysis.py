"""Everything an evaluation reports beyond accuracy, from one set of probabilities: confidence quality, bootstrap
intervals, abstention and subgroups (pure: numpy in, numbers out). :func:`mmadfer.evaluation.scoring.evaluate_model`
calls :func:`analyze`, then :func:`mmadfer.evaluation.files.write_files`; the pieces live in the sibling modules."""
from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np
from sklearn.metrics import f1_score

from .bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED, clip_statistics, intervals
from .calibration import confidence_metrics
from .selective import at_threshold, risk_coverage
from .subgroups import DEFAULT_MIN_GROUP_N, subgroup_report

__all__ = ["analyze"]

logger = logging.getLogger(__name__)


def analyze(probs: np.ndarray, y_true: np.ndarray, paths: Sequence[str], *, n_resamples: int = DEFAULT_RESAMPLES,
            seed: int = DEFAULT_SEED, min_confidence: float | None = None, groups=None,
            min_group_n: int = DEFAULT_MIN_GROUP_N) -> dict[str, Any]:
    """``macro_f1``, ``ece``, ``mce``, ``nll``, ``brier``, ``reliability``, ``ci95``, ``aurc``, ``risk_coverage``
    (arrays, written to a CSV rather than metrics.json), ``selective`` (with ``min_confidence``) and ``subgroups``
    (with ``groups``, a DataFrame of :func:`~mmadfer.evaluation.subgroups.read_groups`).

    ``n_resamples=0`` skips the bootstrap (no ``ci95``; subgroups then get no intervals either)."""
    probs = np.asarray(probs, dtype=np.float64)
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = probs.argmax(1)
    out: dict[str, Any] = {"macro_f1": float(f1_score(y_true, y_pred, average="macro"))}
    out.update(confidence_metrics(probs, y_true))
    if n_resamples:
        out["ci95"] = intervals(clip_statistics(probs, y_true), len(y_true), n_resamples=n_resamples, seed=seed)
        out["bootstrap"] = {"resamples": n_resamples, "seed": seed, "level": 0.95, "method": "percentile"}
    rc = risk_coverage(probs.max(1), y_pred == y_true)
    out["aurc"] = rc.pop("aurc")
    out["risk_coverage"] = rc
    if min_confidence is not None:
        out["selective"] = at_threshold(probs.max(1), y_pred == y_true, min_confidence)
    if groups is not None:
        out["subgroups"] = subgroup_report(probs, y_true, paths, groups, min_group_n=min_group_n,
                                           n_resamples=max(n_resamples, 1), seed=seed)
        for name in ("unmatched", "ambiguous"):
            if out["subgroups"][name]:
                logger.warning("%d clip id(s) of the groups file are %s, e.g. %s", len(out["subgroups"][name]), name,
                               out["subgroups"][name][:3])
    return out
