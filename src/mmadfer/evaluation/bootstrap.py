"""Bootstrap confidence intervals of an evaluation's numbers: how much UAR, WAR, macro-F1 and ECE would move on
another sample of clips like these.

The clips are resampled with replacement (``n_resamples`` times, 1,000 by default, from a seeded
``numpy.random.Generator`` so the intervals are reproducible); the statistic is recomputed on each resample and the
interval is the percentile interval (2.5th and 97.5th percentiles for 95%). A resample where a statistic is undefined
(e.g. a group with no clip drawn) is left out of that statistic's percentiles.

The per-resample scores come from the confusion counts (:func:`scores`), which equal scikit-learn's ``recall_score``
(macro over the classes present), ``accuracy_score`` and ``f1_score(average='macro')`` (over the classes present in
the labels or the predictions) on the same clips; the tests check that they agree.
"""
from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from .calibration import ece_from

__all__ = ["DEFAULT_RESAMPLES", "DEFAULT_SEED", "scores", "bootstrap", "percentile_interval", "clip_statistics",
           "intervals"]

DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 0


def scores(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict[str, float]:
    """``uar``, ``war`` and ``macro_f1`` from the confusion counts (NaN when there is no clip)."""
    if len(y_true) == 0:
        return {"uar": float("nan"), "war": float("nan"), "macro_f1": float("nan")}
    cm = np.bincount(y_true * num_classes + y_pred, minlength=num_classes ** 2).reshape(num_classes, num_classes)
    tp, support, predicted = np.diag(cm), cm.sum(1), cm.sum(0)
    present = support > 0
    f1_classes = present | (predicted > 0)
    f1 = 2 * tp[f1_classes] / (support[f1_classes] + predicted[f1_classes])
    return {"uar": float((tp[present] / support[present]).mean()), "war": float(tp.sum() / len(y_true)),
            "macro_f1": float(f1.mean())}


def clip_statistics(probs: np.ndarray, y_true: np.ndarray) -> Callable[[np.ndarray], dict[str, float]]:
    """The statistic of the headline intervals: for clip indices ``idx``, UAR, WAR, macro-F1 and ECE of those clips."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = probs.argmax(1)
    conf, correct = probs.max(1), (y_pred == y_true).astype(np.float64)
    C = probs.shape[1]

    def stat(idx: np.ndarray) -> dict[str, float]:
        out = scores(y_true[idx], y_pred[idx], C)
        out["ece"] = ece_from(conf[idx], correct[idx]) if len(idx) else float("nan")
        return out

    return stat


def bootstrap(statistic: Callable[[np.ndarray], Mapping[str, float]], n: int, *,
              n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> dict[str, np.ndarray]:
    """Evaluate ``statistic(indices)`` on ``n_resamples`` resamples of ``n`` clips drawn with replacement; returns
    each named value's ``[n_resamples]`` array of replicates."""
    if n < 1 or n_resamples < 1:
        raise ValueError(f"need n >= 1 and n_resamples >= 1, got {n} and {n_resamples}")
    rng = np.random.default_rng(seed)
    reps: dict[str, list[float]] = {}
    for _ in range(n_resamples):
        for k, v in statistic(rng.integers(0, n, size=n)).items():
            reps.setdefault(k, []).append(v)
    return {k: np.asarray(v, dtype=np.float64) for k, v in reps.items()}


def percentile_interval(replicates: np.ndarray, level: float = 0.95) -> list[float | None]:
    """The percentile interval ``[lo, hi]`` of bootstrap replicates (NaN replicates left out; None if all are)."""
    r = np.asarray(replicates, dtype=np.float64)
    r = r[np.isfinite(r)]
    if len(r) == 0:
        return [None, None]
    a = (1 - level) / 2
    lo, hi = np.percentile(r, [100 * a, 100 * (1 - a)])
    return [float(lo), float(hi)]


def intervals(statistic, n: int, *, n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
              level: float = 0.95) -> dict[str, list[float | None]]:
    """``{name: [lo, hi]}``: the percentile interval of every value of ``statistic`` (see :func:`bootstrap`)."""
    reps = bootstrap(statistic, n, n_resamples=n_resamples, seed=seed)
    return {k: percentile_interval(v, level) for k, v in reps.items()}
