"""Classification metrics of the paper (UAR, WAR), per-class recall and precision, confusion and cost matrices.

* **UAR** (unweighted average recall): the mean of the per-class recalls, i.e. every class counts the same however
  rare it is. Classes without any test clip are left out of the mean (their recall is undefined).
* **WAR** (weighted average recall): the overall accuracy, i.e. every clip counts the same.
* **Expected cost per clip**: with a cost matrix ``cost[true, predicted]`` (what a mistake costs in the user's
  setting, e.g. missing *fear* costs more than calling *neutral* *sad*), the mean cost of the predictions.

The numbers come from scikit-learn; this module only arranges them (pure functions; writing them out is
:mod:`mmadfer.evaluation.files`, the chart :func:`mmadfer.evaluation.plots.plot_confusion`).
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, precision_score, recall_score

__all__ = ["classification_metrics", "load_cost_matrix", "confusion_frames"]


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], class_names: Sequence[str],
                           cost_matrix: np.ndarray | None = None) -> dict[str, Any]:
    """UAR, WAR, per-class recall/precision/support and the confusion matrix (rows: true class, columns: predicted).

    ``y_true``/``y_pred`` are class indices into ``class_names``. ``cost_matrix`` (``[C, C]``, rows true, columns
    predicted) adds ``expected_cost``: the mean over clips of ``cost[true, predicted]``. Undefined values (the recall
    of a class with no clips, the precision of a class never predicted) are NaN.
    """
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    num_classes = len(class_names)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D and of equal length, got {y_true.shape} and {y_pred.shape}")
    if len(y_true) == 0:
        raise ValueError("cannot compute metrics on zero clips")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.min() < 0 or y.max() >= num_classes:
            raise ValueError(f"{name} holds a class index outside 0..{num_classes - 1}")
    labels = np.arange(num_classes)
    cm = confusion_matrix(y_true, y_pred, labels=labels)  # [C, C]
    support = cm.sum(1)
    present = labels[support > 0]
    recall = recall_score(y_true, y_pred, labels=labels, average=None, zero_division=np.nan)
    precision = precision_score(y_true, y_pred, labels=labels, average=None, zero_division=np.nan)
    out: dict[str, Any] = {
        "num_clips": int(len(y_true)),
        "uar": float(recall_score(y_true, y_pred, labels=present, average="macro")),
        "war": float(accuracy_score(y_true, y_pred)),
        "class_names": list(class_names),
        "per_class": [
            {"class": name, "support": int(support[c]), "recall": _nan_to_none(recall[c]),
             "precision": _nan_to_none(precision[c])}
            for c, name in enumerate(class_names)
        ],
        "confusion": cm.tolist(),
    }
    if cost_matrix is not None:
        cost = np.asarray(cost_matrix, dtype=np.float64)
        if cost.shape != (num_classes, num_classes):
            raise ValueError(f"cost matrix must be {num_classes}x{num_classes}, got {cost.shape}")
        out["expected_cost"] = float(cost[y_true, y_pred].mean())
        out["cost_matrix"] = cost.tolist()
    return out


def _nan_to_none(x: float) -> float | None:
    return None if x is None or math.isnan(float(x)) else float(x)


def load_cost_matrix(path: str | os.PathLike, class_names: Sequence[str]) -> np.ndarray:
    """Read a cost matrix CSV: ``cost[true, predicted]``, the price of predicting the column's class for a clip of
    the row's class.

    Either with class names (a header row of predicted classes and a first column of true classes, in any order;
    every class must appear) or a bare ``C x C`` grid of numbers in the model's class order. Values must be finite.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"cost matrix not found: {path}")
    names = [str(n) for n in class_names]
    C = len(names)
    try:
        table = pd.read_csv(path, header=None, dtype=str, skipinitialspace=True, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a readable CSV ({e})") from None
    cells = table.to_numpy()
    labelled = cells.shape == (C + 1, C + 1) and not _is_number(cells[0, -1])
    if labelled:
        cols, rows = [c.strip() for c in cells[0, 1:]], [r.strip() for r in cells[1:, 0]]
        for axis, got in (("column", cols), ("row", rows)):
            if sorted(got) != sorted(names):
                raise ValueError(f"{path}: {axis} class names {got} do not match the model's classes {names}")
        grid = pd.DataFrame(cells[1:, 1:], index=rows, columns=cols).loc[names, names].to_numpy()
    elif cells.shape == (C, C):
        grid = cells
    else:
        raise ValueError(f"{path}: expected a {C}x{C} grid of costs (optionally with a header row and a first "
                         f"column of class names {names}), got a table of shape {cells.shape}")
    try:
        cost = grid.astype(np.float64)
    except ValueError:
        raise ValueError(f"{path}: every cost must be a number") from None
    if not np.isfinite(cost).all():
        raise ValueError(f"{path}: costs must be finite numbers")
    return cost


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def confusion_frames(metrics: dict[str, Any]):
    """The confusion matrix as two pandas DataFrames: counts and row-normalised (each true class sums to 1)."""
    names = metrics["class_names"]
    cm = np.asarray(metrics["confusion"], dtype=np.int64)
    counts = pd.DataFrame(cm, index=pd.Index(names, name="true\\predicted"), columns=names)
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = cm / cm.sum(1, keepdims=True)  # NaN row for a class with no clips
    return counts, pd.DataFrame(norm, index=counts.index, columns=names)
