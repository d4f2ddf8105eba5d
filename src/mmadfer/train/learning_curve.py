"""How many labels: held-out UAR as a function of the labelled clips per class (``mmadfer learning-curve``).

For every size ``n`` (5, 10, 20, 50 clips per class by default) and repeat ``r``, ``n`` training clips of each class
are drawn (without replacement, seeded by ``(seed, n, r)``; a class with fewer clips gives all it has, and the row
says how many) from fold ``data.fold``'s training split, and one run trains on them:

* from the **checkpoint** (``model.init``, as ``train --init``: encoders frozen, classifier rebuilt), and
* from the **pretraining** weights (``model.vision_weights``/``audio_weights``, as ``train`` without ``--init``),

with the same recipe (class-balanced epochs, early stopping on the validation split when there is one). Each run is
scored on the same held-out test split: its UAR with the 95% bootstrap interval over test clips. The subsets'
annotation files live in ``OUT/<start>/n<n>_r<r>/annotations/`` (paths absolute, pointing into the dataset), each
run in ``OUT/<start>/n<n>_r<r>/run/``, resumed when the command is re-run; ``OUT/learning_curve.csv`` and
``OUT/learning_curve.png`` hold the result.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..data.annotations import read_reference_annotation, write_reference_annotation
from ..data.layout import ANNOTATIONS_DIR
from ..evaluation.plots import plot_learning_curve
from ..io import write_csv
from .config import TrainConfig
from .engine import fit

__all__ = ["DEFAULT_SIZES", "CURVE_COLUMNS", "subsample", "learning_curve"]

DEFAULT_SIZES = (5, 10, 20, 50)
CURVE_COLUMNS = ("start", "per_class", "repeat", "train_clips", "uar", "uar_lo", "uar_hi", "war", "best_epoch",
                 "run_dir")


def subsample(labels: Sequence[int], per_class: int, seed: Sequence[int] | int) -> list[int]:
    """Indices of up to ``per_class`` items of each class, drawn without replacement (seeded), in index order."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    picked = [rng.choice(np.flatnonzero(labels == c), size=min(per_class, int((labels == c).sum())), replace=False)
              for c in np.unique(labels)]
    return sorted(int(i) for i in np.concatenate(picked))


def _subset_annotations(root: Path, fold: int, per_class: int, repeat: int, seed: int, out: Path) -> int:
    """Write ``out/set_<fold>_{train,test[,val]}.txt``: the drawn training clips and the whole test (and
    validation) split, with absolute paths. Returns the number of training clips."""
    ann = root / ANNOTATIONS_DIR
    train = read_reference_annotation(ann / f"set_{fold}_train.txt", root=root)
    chosen = [train[i] for i in subsample([r.label for r in train], per_class, (seed, per_class, repeat))]
    write_reference_annotation(out / f"set_{fold}_train.txt", chosen)
    for split in ("test", "val"):
        src = ann / f"set_{fold}_{split}.txt"
        if src.is_file():
            write_reference_annotation(out / src.name, read_reference_annotation(src, root=root))
    return len(chosen)


def learning_curve(cfg: TrainConfig, out: str | os.PathLike, *, init: str | os.PathLike | None,
                   sizes: Sequence[int] = DEFAULT_SIZES, repeats: int = 3, pretraining: bool = True,
                   seed: int = 0, init_overrides: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Run the curve (see the module docstring) for a folder dataset ``cfg.data`` (``dataset: folder``, ``root``,
    ``fold``); ``init``: the checkpoint (None: only the pretraining start); ``init_overrides``: config overrides
    for the checkpoint's runs only (e.g. ``model.trainable=reference``). Returns the rows of
    ``learning_curve.csv``."""
    if cfg.data.dataset != "folder" or not cfg.data.root:
        raise ValueError("learning-curve needs a dataset in mmadfer's layout: --dataset folder --data ROOT")
    if not sizes or min(sizes) < 1 or repeats < 1:
        raise ValueError("sizes must be positive clip counts per class and repeats >= 1")
    starts = ([("checkpoint", init)] if init else []) + ([("pretraining", None)] if pretraining else [])
    if not starts:
        raise ValueError("nothing to run: give a checkpoint (--init) or keep the pretraining start")
    root, out = Path(cfg.data.root), Path(out)
    fold = cfg.data.fold or 1
    rows = []
    for start, checkpoint in starts:
        base = cfg.replace([f"model.init={checkpoint}", *init_overrides]) if checkpoint else cfg
        for n in sorted(set(sizes)):
            for r in range(repeats):
                folder = out / start / f"n{n}_r{r}"
                clips = _subset_annotations(root, fold, n, r, seed, folder / ANNOTATIONS_DIR)
                data = dataclasses.replace(base.data, fold=fold, options={
                    **base.data.options, "annotation_dir": str(folder / ANNOTATIONS_DIR)})
                run_cfg = dataclasses.replace(base, data=data, run_dir=str(folder / "run"))
                m = fit(run_cfg, resume="auto")["metrics"]
                lo, hi = (m.get("ci95") or {}).get("uar") or (None, None)
                best = (m.get("training") or {}).get("early_stopping", {}).get("best_epoch")
                rows.append({"start": start, "per_class": n, "repeat": r, "train_clips": clips, "uar": m["uar"],
                             "uar_lo": lo, "uar_hi": hi, "war": m["war"], "best_epoch": best,
                             "run_dir": str(folder / "run")})
                write_csv(out / "learning_curve.csv", CURVE_COLUMNS, rows)
    plot_learning_curve(rows, out / "learning_curve.png")
    return rows
