"""Before and after: two models' predictions on the same held-out clips, compared clip by clip.

``mmadfer evaluate --compare BASE NEW`` scores both models on one split and calls :func:`compare_predictions` on
their ``predictions.csv`` tables (one row per clip: ``path``, ``label_name`` and a ``p_<class>`` column per class of
that model). Because both models see the *same* clips, the comparison is paired, which makes it far more sensitive
than two separate intervals:

* **paired bootstrap** of the differences ``NEW - BASE`` of UAR and WAR: each resample draws clips with replacement
  (:func:`mmadfer.evaluation.bootstrap.bootstrap`, seeded: resample ``r`` is the ``r``-th
  ``Generator.integers(0, N, size=N)`` of ``numpy.random.default_rng(seed)``) and scores *both* models on the drawn
  clips; the interval is the 2.5th to 97.5th percentile of the differences;
* **McNemar's test** on the discordant clips: ``b`` clips only BASE gets right, ``c`` only NEW gets right. With
  ``b + c < 25`` the exact two-sided binomial test of ``c`` successes in ``b + c`` trials at 1/2
  (``scipy.stats.binomtest``), else the chi-square statistic with continuity correction ``(|b - c| - 1)^2 / (b + c)``
  on 1 degree of freedom;
* per-class recall of both and its change; calibration (ECE, NLL, Brier) of both.

**Different class sets.** When BASE knows other classes than NEW (a released DFEW checkpoint against a model of the
team's own classes), a class-mapping file (``base,new`` rows; :func:`read_class_map`) says which BASE classes
stand for which NEW class. BASE's probability of a NEW class is then the sum of its mapped classes' probabilities,
the mass of unmapped BASE classes goes to a column ``(unmapped)`` that is never right, and BASE's prediction is the
top of those. Without a mapping the result says BASE cannot be compared on these classes (``comparable: false``).
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.stats import binomtest, chi2

from .bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED, bootstrap, percentile_interval, scores
from .calibration import ece, brier, nll

__all__ = ["EXACT_BELOW", "UNMAPPED", "read_class_map", "table_classes", "mapped_probabilities", "mcnemar",
           "compare_predictions"]

#: McNemar's test is exact (binomial) when fewer clips than this are discordant.
EXACT_BELOW = 25
#: The column of BASE's probability mass on classes the mapping leaves out.
UNMAPPED = "(unmapped)"


def read_class_map(path: str | os.PathLike, base_classes: Sequence[str], new_classes: Sequence[str]) -> dict[str, str]:
    """A class-mapping CSV (header ``base,new``; one row per BASE class that corresponds to a NEW class; several
    BASE classes may map to one NEW class). Unknown class names are a ValueError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"class map not found: {path}")
    mapping: dict[str, str] = {}
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        if [h.strip().lower() for h in reader.fieldnames or []][:2] != ["base", "new"]:
            raise ValueError(f"{path}: the header must be 'base,new', got {reader.fieldnames}")
        for row in reader:
            row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
            n = reader.line_num
            if row["base"] not in base_classes:
                raise ValueError(f"{path}:{n}: {row['base']!r} is not a class of the base model "
                                 f"({', '.join(base_classes)})")
            if row["new"] not in new_classes:
                raise ValueError(f"{path}:{n}: {row['new']!r} is not a class of the new model "
                                 f"({', '.join(new_classes)})")
            if row["base"] in mapping:
                raise ValueError(f"{path}:{n}: {row['base']!r} is mapped twice")
            mapping[row["base"]] = row["new"]
    if not mapping:
        raise ValueError(f"{path}: no class is mapped")
    return mapping


def table_classes(table) -> list[str]:
    """The class names of a predictions table, from its ``p_<class>`` columns in order."""
    return [c[2:] for c in table.columns if c.startswith("p_")]


def mapped_probabilities(probs: np.ndarray, base_classes: Sequence[str], new_classes: Sequence[str],
                         mapping: Mapping[str, str]) -> np.ndarray:
    """BASE's probabilities ``[N, Cb]`` as ``[N, C + 1]`` over ``new_classes`` plus :data:`UNMAPPED` (sums of the
    mapped BASE classes; rows still sum to 1)."""
    probs = np.asarray(probs, dtype=np.float64)
    out = np.zeros((probs.shape[0], len(new_classes) + 1))
    column = {c: i for i, c in enumerate(new_classes)}
    for j, name in enumerate(base_classes):
        out[:, column[mapping[name]] if name in mapping else len(new_classes)] += probs[:, j]
    return out


def mcnemar(base_correct: np.ndarray, new_correct: np.ndarray) -> dict[str, Any]:
    """McNemar's test of two models on the same clips (see the module docstring)."""
    base_correct, new_correct = np.asarray(base_correct, bool), np.asarray(new_correct, bool)
    b = int((base_correct & ~new_correct).sum())  # only BASE right
    c = int((~base_correct & new_correct).sum())  # only NEW right
    n = b + c
    if n == 0:
        return {"base_only": b, "new_only": c, "method": "none (no discordant clip)", "statistic": None,
                "p_value": 1.0}
    if n < EXACT_BELOW:
        return {"base_only": b, "new_only": c, "method": "exact binomial", "statistic": None,
                "p_value": float(binomtest(c, n, 0.5).pvalue)}
    stat = (abs(b - c) - 1) ** 2 / n
    return {"base_only": b, "new_only": c, "method": "chi-square, continuity-corrected", "statistic": float(stat),
            "p_value": float(chi2.sf(stat, 1))}


def _side(probs: np.ndarray, y_true: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """One model's numbers on the compared clips (``probs`` may carry the extra :data:`UNMAPPED` column)."""
    pred = probs.argmax(1)
    s = scores(y_true, pred, probs.shape[1])
    recall = [float((pred[y_true == c] == c).mean()) if (y_true == c).any() else None for c in range(len(names))]
    return {"uar": s["uar"], "war": s["war"], "ece": ece(probs, y_true), "nll": nll(probs, y_true),
            "brier": brier(probs, y_true), "recall": recall, "pred": pred}


def compare_predictions(base, new, *, class_map: Mapping[str, str] | None = None,
                        n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """Compare two predictions tables (pandas DataFrames as ``evaluate`` writes them) clip by clip.

    The clips are matched by ``path`` and taken in ``path`` order (the order the bootstrap resamples); a different set of clips, or a clip with different true labels, is a
    ValueError (the models were not scored on the same test set). Returns ``comparable``, ``clips``,
    ``class_names`` (NEW's), ``base``/``new`` (``uar``, ``war``, ``ece``, ``nll``, ``brier``), ``difference``
    (``uar``/``war``: NEW - BASE with its paired ``ci95``), ``mcnemar`` (:func:`mcnemar`), ``per_class`` (support,
    recall of both, change) and ``bootstrap`` (resamples, seed); with ``comparable: false`` only the ``reason``."""
    base_names, new_names = table_classes(base), table_classes(new)
    only_base = sorted(set(base["path"]) - set(new["path"]))
    only_new = sorted(set(new["path"]) - set(base["path"]))
    if only_base or only_new or len(base) != len(new):
        raise ValueError(f"different test sets: {len(only_base)} clip(s) only in the base predictions "
                         f"(e.g. {only_base[:2]}), {len(only_new)} only in the new ones (e.g. {only_new[:2]}); "
                         "score both models on the same split")
    new = new.sort_values("path", kind="stable").reset_index(drop=True)  # one order, whatever the files' order
    base = base.set_index("path").loc[list(new["path"])]
    if (base["label_name"].to_numpy() != new["label_name"].to_numpy()).any():
        raise ValueError("different test sets: the same clips carry different true labels in the two tables")
    if base_names != new_names and class_map is None:
        return {"comparable": False, "clips": len(new), "class_names": new_names, "base_class_names": base_names,
                "reason": f"the base model's classes ({', '.join(base_names)}) differ from the new model's "
                          f"({', '.join(new_names)}) and no class mapping was given (--class-map base,new CSV), so "
                          "the base cannot be compared on these classes"}
    y_true = np.array([new_names.index(n) for n in new["label_name"]], dtype=np.int64)
    p_new = new[[f"p_{c}" for c in new_names]].to_numpy(np.float64)
    p_base = base[[f"p_{c}" for c in base_names]].to_numpy(np.float64)
    if base_names != new_names:
        p_base = mapped_probabilities(p_base, base_names, new_names, class_map)
    a, b = _side(p_base, y_true, new_names), _side(p_new, y_true, new_names)
    pred_a, pred_b = a.pop("pred"), b.pop("pred")
    ka, kb = p_base.shape[1], p_new.shape[1]

    def paired(idx: np.ndarray) -> dict[str, float]:
        sa, sb = scores(y_true[idx], pred_a[idx], ka), scores(y_true[idx], pred_b[idx], kb)
        return {"uar": sb["uar"] - sa["uar"], "war": sb["war"] - sa["war"]}

    reps = bootstrap(paired, len(y_true), n_resamples=n_resamples, seed=seed) if n_resamples else {}
    per_class = []
    for c, name in enumerate(new_names):
        ra, rb = a["recall"][c], b["recall"][c]
        per_class.append({"class": name, "support": int((y_true == c).sum()), "base_recall": ra, "new_recall": rb,
                          "change": None if ra is None or rb is None else rb - ra})
    for side in (a, b):
        side.pop("recall")
    return {
        "comparable": True, "clips": int(len(y_true)), "class_names": new_names, "base_class_names": base_names,
        "class_map": dict(class_map) if base_names != new_names else None,
        "base": a, "new": b,
        "difference": {k: {"value": b[k] - a[k], "ci95": percentile_interval(reps[k]) if reps else [None, None]}
                       for k in ("uar", "war")},
        "mcnemar": mcnemar(pred_a == y_true, pred_b == y_true),
        "per_class": per_class,
        "bootstrap": {"resamples": n_resamples, "seed": seed, "level": 0.95, "method": "paired percentile"},
    }
