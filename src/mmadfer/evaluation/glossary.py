"""The evaluation's numbers in plain language: what each metric means, the chance level, and a verdict.

Pure functions of ``metrics.json`` (no I/O), shared by ``report.html`` (:mod:`mmadfer.evaluation.report`) and the
web app's Runs view, so a number is explained the same way wherever it is shown::

    describe_metric("uar")   # {'key': 'uar', 'name': 'UAR', 'meaning': '...', 'better': 'higher'}
    chance_levels(metrics)   # {'uar': 0.25, 'war': 0.31}: what guessing would score
    verdict(metrics)         # ['UAR 0.52 against 0.25 by chance (4 classes): above chance.', ...]
"""
from __future__ import annotations

import math
from typing import Any, Mapping

__all__ = ["METRICS", "describe_metric", "chance_levels", "verdict", "metric_rows", "WELL_CALIBRATED_ECE",
           "FEW_CLIPS"]

#: key -> (short name, one-line meaning, which way is better)
METRICS: dict[str, tuple[str, str, str]] = {
    "uar": ("UAR", "unweighted average recall: of each class's clips, the share recognised, averaged over the "
                   "classes (every class counts the same, however rare)", "higher"),
    "war": ("WAR", "weighted average recall, i.e. accuracy: the share of all clips recognised (common classes "
                   "weigh more)", "higher"),
    "macro_f1": ("Macro-F1", "per class, the balance of precision (how often a prediction of it is right) and "
                             "recall, averaged over the classes", "higher"),
    "ece": ("ECE", "expected calibration error: how far the model's confidence is from its actual accuracy, on "
                   "average (0: a 70% confidence is right 70% of the time)", "lower"),
    "mce": ("MCE", "maximum calibration error: the worst gap between confidence and accuracy over the confidence "
                   "bins", "lower"),
    "nll": ("NLL", "negative log-likelihood: the penalty for the probability given to the true class, severe for "
                   "confident mistakes", "lower"),
    "brier": ("Brier", "squared error of the probabilities against the truth, from 0 (perfect) to 2", "lower"),
    "aurc": ("AURC", "area under the risk–coverage curve: the error rate when answering only the clips the model "
                     "is most sure of, averaged over how many it answers", "lower"),
    "expected_cost": ("Expected cost", "the mean cost per clip under the given cost matrix", "lower"),
    "temperature": ("Temperature", "the divisor applied to the model's scores before the softmax (1: as trained; "
                                   "fitted by mmadfer calibrate); it changes confidences, never labels", "neither"),
    "video_hours_per_hour": ("Video hours per hour", "how many hours of video one machine processes in an hour at "
                                                     "the measured rate", "higher"),
}

#: At or below this ECE the confidences are called well calibrated.
WELL_CALIBRATED_ECE = 0.05
#: Below this many clips the verdict warns that the numbers are uncertain.
FEW_CLIPS = 100


def describe_metric(key: str) -> dict[str, str] | None:
    """``{'key', 'name', 'meaning', 'better'}`` for a ``metrics.json`` key (None for a key without a description)."""
    if key not in METRICS:
        return None
    name, meaning, better = METRICS[key]
    return {"key": key, "name": name, "meaning": meaning, "better": better}


def chance_levels(metrics: Mapping[str, Any]) -> dict[str, float]:
    """What guessing scores: UAR ``1 / k`` for the ``k`` classes that have clips (any guess that ignores the clip
    recalls ``1 / k`` per class on average); WAR the share of the most frequent class (always answering it)."""
    support = [r["support"] for r in metrics.get("per_class", [])]
    present = [s for s in support if s > 0]
    if not present:
        return {}
    return {"uar": 1.0 / len(present), "war": max(present) / sum(present)}


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _mean_confidence(metrics: Mapping[str, Any]) -> float | None:
    rel = metrics.get("reliability") or {}
    pairs = [(n, c) for n, c in zip(rel.get("count", []), rel.get("confidence", [])) if n and c is not None]
    total = sum(n for n, _ in pairs)
    return sum(n * c for n, c in pairs) / total if total else None


def verdict(metrics: Mapping[str, Any]) -> list[str]:
    """Plain sentences on what matters most in an evaluation, most important first: UAR against chance (with the
    bootstrap interval when there is one), classes never predicted or never recognised, whether the confidences
    can be taken at face value, flagged subgroup gaps, and too few clips."""
    out: list[str] = []
    chance = chance_levels(metrics)
    uar, n_classes = metrics.get("uar"), sum(1 for r in metrics.get("per_class", []) if r["support"] > 0)
    if _finite(uar) and "uar" in chance:
        lo, hi = (metrics.get("ci95") or {}).get("uar", (None, None))
        c = chance["uar"]
        if _finite(lo) and lo > c:
            how = "above chance"
        elif _finite(lo) and lo <= c <= hi:
            how = "not clearly above chance (its 95% interval includes chance)"
        elif uar > c:
            how = "higher than chance, but whether it is above chance is not established (no interval computed)"
        else:
            how = "at or below chance: the model does not tell the classes apart"
        out.append(f"UAR {uar:.2f} against {c:.2f} by chance ({n_classes} classes): {how}.")
    names = metrics.get("class_names", [])
    confusion = metrics.get("confusion") or []
    never: list[str] = []
    if confusion:
        predicted = [sum(row[j] for row in confusion) for j in range(len(names))]
        never = [n for n, k in zip(names, predicted) if k == 0]
        if never:
            out.append(f"{len(never)} class{'es' if len(never) > 1 else ''} never predicted: {', '.join(never)}.")
    missed = [r["class"] for r in metrics.get("per_class", [])
              if r["support"] > 0 and r.get("recall") == 0 and r["class"] not in never]
    if missed:
        out.append(f"{len(missed)} class{'es' if len(missed) > 1 else ''} never recognised: {', '.join(missed)}.")
    ece, conf, acc = metrics.get("ece"), _mean_confidence(metrics), metrics.get("war")
    if _finite(ece):
        if ece <= WELL_CALIBRATED_ECE:
            out.append(f"Confidences are well calibrated (ECE {ece:.3f}).")
        elif conf is not None and _finite(acc):
            side = "overstate" if conf > acc else "understate"
            out.append(f"Confidences {side} accuracy: mean confidence {conf:.2f} against accuracy {acc:.2f} "
                       f"(ECE {ece:.2f}); mmadfer calibrate fixes the scale without changing labels.")
    for column, rep in ((metrics.get("subgroups") or {}).get("columns") or {}).items():
        for metric, gap in (rep.get("gaps") or {}).items():
            if gap.get("flagged"):
                out.append(f"{metric.upper()} differs between {column} groups: {gap['best']} vs {gap['worst']} "
                           f"(gap {gap['gap']:.2f}, 95% interval excludes 0).")
    n = metrics.get("num_clips")
    if isinstance(n, int) and n < FEW_CLIPS:
        out.append(f"Only {n} clips: every number here is uncertain; read the intervals.")
    return out


def metric_rows(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The headline metrics present in ``metrics`` as rows for a table: ``key``, ``name``, ``value``, ``ci95``
    (``[lo, hi]`` or None), ``chance`` (None where it has none), ``meaning``, ``better``."""
    chance = chance_levels(metrics)
    ci = metrics.get("ci95") or {}
    rows = []
    for key in ("uar", "war", "macro_f1", "ece", "mce", "nll", "brier", "aurc", "expected_cost"):
        if _finite(metrics.get(key)):
            rows.append({**describe_metric(key), "value": float(metrics[key]), "ci95": ci.get(key),
                         "chance": chance.get(key)})
    return rows
