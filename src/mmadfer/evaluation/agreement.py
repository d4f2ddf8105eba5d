"""Agreement between two annotators: Cohen's kappa overall and per class.

Two people labelling the same spans rarely agree on every one; their agreement beyond chance is the ceiling any
model can be judged against (a model that matches one annotator as well as the other does has reached it). Kappa
is ``(p_o - p_e) / (1 - p_e)``: observed agreement corrected by the agreement expected from each annotator's
label frequencies (scikit-learn's ``cohen_kappa_score``). Per class it is the kappa of the two yes/no answers
"is this span <class>?".
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from sklearn.metrics import cohen_kappa_score

__all__ = ["cohen_kappa"]


def _kappa(a: Sequence[Any], b: Sequence[Any]) -> float | None:
    """Kappa, or None where it is undefined (both annotators gave one and the same answer to everything)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        k = float(cohen_kappa_score(a, b))
    return None if math.isnan(k) else k


def cohen_kappa(first: Sequence[str], second: Sequence[str], class_names: Sequence[str] | None = None) -> dict:
    """Agreement of two annotators' labels on the same spans (``first[i]`` and ``second[i]`` label span ``i``).

    Returns ``{'spans', 'observed_agreement', 'kappa', 'per_class': [{'class', 'kappa', 'first', 'second'}]}``:
    ``first``/``second`` count the spans each annotator gave the class. ``class_names`` (default: every label
    seen, sorted) orders the per-class rows."""
    if len(first) != len(second):
        raise ValueError(f"the two annotators label different numbers of spans ({len(first)} and {len(second)})")
    if not first:
        raise ValueError("no span was labelled by both annotators")
    names = list(class_names) if class_names is not None else sorted(set(first) | set(second))
    a, b = np.asarray(first, dtype=object), np.asarray(second, dtype=object)
    per_class = [{"class": c, "kappa": _kappa(a == c, b == c), "first": int((a == c).sum()),
                  "second": int((b == c).sum())} for c in names]
    return {"spans": len(a), "observed_agreement": float((a == b).mean()), "kappa": _kappa(list(a), list(b)),
            "per_class": per_class}
