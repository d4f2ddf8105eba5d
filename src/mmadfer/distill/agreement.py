"""How closely a student follows its teacher: pure functions of two probability tables (numpy in, numbers out).

* ``top1_agreement``: the fraction of windows whose top class is the same;
* ``kappa``: Cohen's κ of the two top-class sequences (agreement beyond what their class frequencies give by chance;
  scikit-learn's ``cohen_kappa_score``);
* ``per_class``: for each class the teacher chose, on how many windows, and the fraction where the student chose it too;
* ``mean_kl``: the mean over windows of KL(teacher ‖ student) in nats, on the probabilities ``predict`` reports;
* ``smoothed_agreement``: top-1 agreement after both timelines are smoothed by :func:`smooth_probabilities` (a
  centred moving average of each video's window probabilities), i.e. of the timelines a reader looks at.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.metrics import cohen_kappa_score

__all__ = ["smooth_probabilities", "cohen_kappa", "agreement_report", "SMOOTHING_WINDOWS"]

#: Windows in the moving average of the smoothed timelines (the window itself and one on each side).
SMOOTHING_WINDOWS = 3


def smooth_probabilities(probs: np.ndarray, groups: np.ndarray, width: int = SMOOTHING_WINDOWS) -> np.ndarray:
    """A centred moving average of ``width`` windows over each group's rows (in the given order; the ends average
    fewer rows). ``probs``: ``[N, C]``; ``groups``: ``[N]`` (which video each window is from)."""
    probs, groups = np.asarray(probs, dtype=np.float64), np.asarray(groups)
    out = np.empty_like(probs)
    half = width // 2
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        p = probs[rows]
        csum = np.vstack([np.zeros((1, p.shape[1])), np.cumsum(p, axis=0)])
        lo = np.clip(np.arange(len(p)) - half, 0, len(p))
        hi = np.clip(np.arange(len(p)) + half + 1, 0, len(p))
        out[rows] = (csum[hi] - csum[lo]) / (hi - lo)[:, None]
    return out


def cohen_kappa(a: Sequence[int], b: Sequence[int]) -> float:
    """Cohen's κ of two label sequences (1.0 when both are one and the same constant label)."""
    a, b = np.asarray(a), np.asarray(b)
    if len(np.union1d(a, b)) == 1:
        return 1.0
    return float(cohen_kappa_score(a, b))


def agreement_report(teacher_probs: np.ndarray, student_probs: np.ndarray, groups: np.ndarray,
                     class_names: Sequence[str]) -> dict[str, Any]:
    """Every agreement number between two ``[N, C]`` probability tables of the same windows (see the module doc)."""
    t, s = np.asarray(teacher_probs, np.float64), np.asarray(student_probs, np.float64)
    if t.shape != s.shape or t.ndim != 2 or len(t) == 0:
        raise ValueError(f"need two non-empty [N, C] tables of one shape, got {t.shape} and {s.shape}")
    ta, sa = t.argmax(1), s.argmax(1)
    eps = 1e-12
    kl = np.sum(t * (np.log(t + eps) - np.log(s + eps)), axis=1)
    ts, ss = smooth_probabilities(t, groups), smooth_probabilities(s, groups)
    return {
        "windows": int(len(t)),
        "videos": int(len(np.unique(groups))),
        "top1_agreement": float(np.mean(ta == sa)),
        "kappa": cohen_kappa(ta, sa),
        "mean_kl": float(kl.mean()),
        "smoothed_agreement": float(np.mean(ts.argmax(1) == ss.argmax(1))),
        "smoothing_windows": SMOOTHING_WINDOWS,
        "per_class": [{"class": name, "teacher_windows": int(np.sum(ta == c)),
                       "agreement": float(np.mean(sa[ta == c] == c)) if np.any(ta == c) else None}
                      for c, name in enumerate(class_names)],
    }
