"""Who the model fails: metrics per subgroup (gender, age band, skin tone, camera, site, ...) and the largest gap.

**The groups CSV** (``evaluate --groups``): a header row; the first column names the clips, every other column is one
grouping. A clip id may be the full path of the clip (frame folder or video), the path as the annotation file or
split CSV writes it (any tail of the full path, e.g. ``clips/synth_00001``), its file name, or its stem (the name
without extension). An id that matches no clip, or more than one, is reported under ``unmatched``/``ambiguous`` and
left out; so is an empty cell. Clips the CSV does not name belong to no group of that column.

**Per group**: ``n``, UAR, WAR, macro-F1 and ECE, each with a 95% bootstrap interval.

**Gap**: for UAR and WAR, the two groups with the highest and the lowest point estimate among the groups with at
least ``min_group_n`` clips; the gap is their difference. Its interval comes from the same resamples as the
headline intervals (the whole evaluation set is resampled, each group's clips are those drawn that belong to it) and
recomputes the gap **between the same two groups** each time (taking the max - min of every resample instead
would never include 0 and flag noise). The gap is ``flagged`` when its interval excludes 0. Groups smaller than
``min_group_n`` are reported but never enter the gap.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED, bootstrap, percentile_interval, scores
from .calibration import ece_from

__all__ = ["DEFAULT_MIN_GROUP_N", "read_groups", "match_clips", "subgroup_report"]

DEFAULT_MIN_GROUP_N = 30
_METRICS = ("uar", "war", "macro_f1", "ece")


def read_groups(path: str | os.PathLike):
    """The groups CSV as a DataFrame of strings (first column: clip ids; at least one group column)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"groups file not found: {path}")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a readable CSV ({e})") from None
    if table.shape[1] < 2:
        raise ValueError(f"{path}: needs a first column of clip ids and at least one group column, "
                         f"got columns {list(table.columns)}")
    return table


def _keys(path: str) -> list[str]:
    """Every name a clip answers to: its full path, each tail of it, its file name and its stem."""
    p = Path(path)
    parts = p.parts
    keys = {p.as_posix()} | {Path(*parts[i:]).as_posix() for i in range(len(parts))}
    keys.add(p.stem)
    return list(keys)


def match_clips(ids: Sequence[str], paths: Sequence[str]) -> tuple[list[int | None], list[str], list[str]]:
    """For each id, the position in ``paths`` of the clip it names (None if it names none or several), plus the
    unmatched and the ambiguous ids."""
    owners: dict[str, set[int]] = {}
    for i, path in enumerate(paths):
        for k in _keys(path):
            owners.setdefault(k, set()).add(i)
    found, unmatched, ambiguous = [], [], []
    for raw in ids:
        key = raw.strip().rstrip("/\\").replace("\\", "/")
        hits = owners.get(key) or (owners.get(Path(key).stem) if "/" not in key else None)
        if not hits:
            unmatched.append(raw)
            found.append(None)
        elif len(hits) > 1:
            ambiguous.append(raw)
            found.append(None)
        else:
            found.append(next(iter(hits)))
    return found, unmatched, ambiguous


def _group_stats(y_true, y_pred, conf, correct, members: np.ndarray, num_classes: int) -> dict[str, float]:
    out = scores(y_true[members], y_pred[members], num_classes)
    out["ece"] = ece_from(conf[members], correct[members]) if len(members) else float("nan")
    return out


def subgroup_report(probs: np.ndarray, y_true: np.ndarray, paths: Sequence[str], groups, *,
                    min_group_n: int = DEFAULT_MIN_GROUP_N, n_resamples: int = DEFAULT_RESAMPLES,
                    seed: int = DEFAULT_SEED, level: float = 0.95) -> dict[str, Any]:
    """Per group column of ``groups`` (:func:`read_groups`): every group's metrics with intervals and the gaps.

    ``probs`` ``[N, C]``, ``y_true`` ``[N]`` and ``paths`` ``[N]`` are the evaluated clips, in the order of
    ``predictions.csv`` (the order the bootstrap resamples).
    """
    probs = np.asarray(probs, dtype=np.float64)
    y_true = np.asarray(y_true, dtype=np.int64)
    N, C = probs.shape
    y_pred = probs.argmax(1)
    conf, correct = probs.max(1), (y_pred == y_true).astype(np.float64)
    ids = list(groups.iloc[:, 0])
    where, unmatched, ambiguous = match_clips(ids, paths)
    out: dict[str, Any] = {"id_column": str(groups.columns[0]), "matched": sum(w is not None for w in where),
                           "unmatched": unmatched, "ambiguous": ambiguous, "min_group_n": min_group_n,
                           "columns": {}}
    for column in groups.columns[1:]:
        label = np.full(N, "", dtype=object)  # each clip's group in this column ('' = none)
        for w, value in zip(where, groups[column]):
            if w is not None and str(value).strip():
                label[w] = str(value).strip()
        names = sorted({v for v in label if v})
        if not names:
            out["columns"][str(column)] = {"groups": [], "gaps": {}}
            continue
        code = np.array([names.index(v) if v else -1 for v in label])

        def stat(idx: np.ndarray) -> dict[str, float]:
            res = {}
            for g, name in enumerate(names):
                members = idx[code[idx] == g]
                for k, v in _group_stats(y_true, y_pred, conf, correct, members, C).items():
                    res[f"{g}:{k}"] = v
            return res

        point = stat(np.arange(N))
        reps = bootstrap(stat, N, n_resamples=n_resamples, seed=seed)
        rows = []
        for g, name in enumerate(names):
            n = int((code == g).sum())
            row = {"group": name, "n": n, "eligible": n >= min_group_n}
            row.update({k: _finite(point[f"{g}:{k}"]) for k in _METRICS})
            row["ci95"] = {k: percentile_interval(reps[f"{g}:{k}"], level) for k in _METRICS}
            rows.append(row)
        gaps = {}
        eligible = [g for g, r in enumerate(rows) if r["eligible"] and r["uar"] is not None]
        for metric in ("uar", "war"):
            if len(eligible) < 2:
                gaps[metric] = {"gap": None, "flagged": False,
                                "note": f"fewer than two groups with at least {min_group_n} clips"}
                continue
            order = sorted(eligible, key=lambda g: rows[g][metric])  # ties: two distinct groups all the same
            worst, best = order[0], order[-1]
            lo, hi = percentile_interval(reps[f"{best}:{metric}"] - reps[f"{worst}:{metric}"], level)
            gaps[metric] = {"best": names[best], "worst": names[worst],
                            "gap": rows[best][metric] - rows[worst][metric], "ci95": [lo, hi],
                            "flagged": lo is not None and (lo > 0 or hi < 0)}
        out["columns"][str(column)] = {"groups": rows, "gaps": gaps, "ungrouped": int((code < 0).sum())}
    return out


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None
