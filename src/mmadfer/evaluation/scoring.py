"""Scoring a model on a dataset: the evaluation loop behind ``mmadfer evaluate``, ``calibrate``, ``--compare`` and
the evaluation at the end of every training run.

:func:`predict_dataset` runs any model (a torch model, or a :class:`~mmadfer.runtime.runner.Runner` of an exported
one) over a dataset, on one device or under torchrun; :func:`evaluate_model` turns its logits into everything an
evaluation reports (:mod:`mmadfer.evaluation.accuracy`, :mod:`mmadfer.evaluation.analysis`) and writes the files
(:mod:`mmadfer.evaluation.files`); :func:`predict_table` gives the per-clip table of a model whatever its classes.
The training loop (:mod:`mmadfer.train.engine`) calls :func:`evaluate_model`; nothing here trains.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from .. import accel
from .. import distributed as D
from ..data.loader import build_loader
from ..runtime.runner import as_runner
from .accuracy import classification_metrics
from .analysis import analyze
from .calibration import probabilities
from .files import write_evaluation, write_files

__all__ = ["predict_dataset", "score_dataset", "evaluate_model", "predict_table", "prediction_table"]

logger = logging.getLogger(__name__)


@torch.no_grad()
def predict_dataset(model: nn.Module, dataset, *, batch_size: int, device: str | torch.device = "cpu",
                    num_workers: int = 0, precision: str = "auto", pin_memory: bool | None = None,
                    progress: bool = True, desc: str = "eval") -> dict[str, Any]:
    """Logits for every clip of ``dataset``; under torchrun each rank scores its share and all ranks get the whole.

    ``model``: a torch model (run as it is, in ``precision``), or a :class:`~mmadfer.runtime.runner.Runner` of an
    exported model (e.g. int8 on the CPU: :func:`mmadfer.runtime.load.load_runner`; ``precision`` then does not
    apply).
    Returns ``{'index' [N], 'logits' [N, C], 'label' [N]}`` (CPU tensors sorted by dataset index, one row per clip)
    and ``'skipped'``: the indices of clips that could not be loaded (``on_bad_sample='skip'``).
    """
    device = torch.device(device)
    rank, world = (torch.distributed.get_rank(), torch.distributed.get_world_size()) if D.is_initialized() else (0, 1)
    was_training = getattr(model, "training", False)  # a model in training goes back to training afterwards
    runner = as_runner(model, device=device, precision=None if precision == "auto" else precision,
                       purpose="evaluate", prepare=False)
    pin = device.type == "cuda" if pin_memory is None else pin_memory
    loader, sampler = build_loader(dataset, batch_size=batch_size, seed=0, shuffle=False, rank=rank, world_size=world,
                                   num_workers=num_workers, pin_memory=pin, persistent_workers=False)
    sampler.set_epoch(0)
    idx, logits, labels = [], [], []
    for batch in tqdm(loader, desc=desc, unit="batch", disable=not progress or rank != 0, leave=False,
                      file=sys.stderr, mininterval=0.5 if sys.stderr.isatty() else 30.0):
        if batch is None:
            continue
        out = torch.as_tensor(runner(batch["video"], batch["audio"]))  # [B, C]
        idx.append(batch["index"])
        logits.append(out.float().cpu())
        labels.append(batch["label"])
    if was_training:
        model.train()
    num_classes = runner.cfg.num_classes
    local = (torch.cat(idx) if idx else torch.zeros(0, dtype=torch.int64),
             torch.cat(logits) if logits else torch.zeros(0, num_classes),
             torch.cat(labels) if labels else torch.zeros(0, dtype=torch.int64))
    index, all_logits, all_labels = D.gather_predictions(*local)
    seen = set(index.tolist())
    return {"index": index, "logits": all_logits, "label": all_labels,
            "skipped": [i for i in range(len(dataset)) if i not in seen]}


def prediction_table(index, paths, y_true, probs: np.ndarray, true_names, model_names=None) -> pd.DataFrame:
    """``predictions.csv``: one row per clip with ``index``, ``path``, ``label``/``label_name`` (the dataset's),
    ``pred``/``pred_name`` (the model's top class), ``correct``, ``confidence`` and ``p_<class>`` for every class
    of the model (``model_names``, default the dataset's ``true_names``)."""
    model_names = list(true_names if model_names is None else model_names)
    y_true, y_pred = np.asarray(y_true), probs.argmax(1)
    pred_names = [model_names[c] for c in y_pred]
    label_names = [true_names[c] for c in y_true]
    table = pd.DataFrame({"index": index, "path": paths, "label": y_true, "label_name": label_names,
                          "pred": y_pred, "pred_name": pred_names,
                          "correct": [a == b for a, b in zip(label_names, pred_names)], "confidence": probs.max(1)})
    for c, name in enumerate(model_names):
        table[f"p_{name}"] = probs[:, c]
    return table


def score_dataset(model: nn.Module, dataset, *, batch_size: int, device: str | torch.device = "cpu",
                  num_workers: int = 0, precision: str = "auto", progress: bool = True):
    """:func:`predict_dataset`, timed, with the probabilities at the model's temperature: ``(pred, probs,
    throughput)``, ``probs`` ``[N, C]`` float64. What :func:`predict_table` and :func:`evaluate_model` share."""
    start = time.perf_counter()
    pred = predict_dataset(model, dataset, batch_size=batch_size, device=device, num_workers=num_workers,
                           precision=precision, progress=progress)
    seconds = time.perf_counter() - start
    if len(pred["index"]) == 0:
        raise ValueError(f"no clip of the dataset could be loaded ({len(pred['skipped'])} skipped)")
    probs = probabilities(pred["logits"].double(), accel.unwrap_model(model).cfg.temperature).numpy()  # [N, C]
    n = int(len(pred["index"]))
    throughput = {"clips": n, "seconds": seconds, "clips_per_s": n / max(seconds, 1e-9), "device": str(device),
                  "backend": getattr(model, "backend", "torch"), "batch_size": batch_size}
    return pred, probs, throughput


def predict_table(model: nn.Module, dataset, *, batch_size: int, device: str | torch.device = "cpu",
                  num_workers: int = 0, precision: str = "auto", progress: bool = True):
    """Score ``model`` on ``dataset`` whatever its classes (a base model of another class set, for
    ``evaluate --compare``): ``(prediction_table, throughput)`` with the model's own ``p_<class>`` columns."""
    pred, probs, throughput = score_dataset(model, dataset, batch_size=batch_size, device=device,
                                            num_workers=num_workers, precision=precision, progress=progress)
    records = getattr(dataset, "records", None)
    index = pred["index"].numpy()
    paths = [records[int(i)].path if records is not None else "" for i in index]
    table = prediction_table(index, paths, pred["label"].numpy(), probs, list(dataset.class_names),
                             accel.unwrap_model(model).cfg.labels)
    return table, throughput


def evaluate_model(model: nn.Module, dataset, *, batch_size: int, device: str | torch.device = "cpu",
                   out_dir: str | os.PathLike | None = None, cost_matrix: np.ndarray | None = None,
                   num_workers: int = 0, precision: str = "auto", progress: bool = True,
                   n_resamples: int = 1000, seed: int = 0, min_confidence: float | None = None, groups=None,
                   min_group_n: int = 30) -> dict[str, Any]:
    """Score ``model`` on ``dataset``: UAR, WAR, per-class recall and precision, the confusion matrix and, with a
    ``cost_matrix`` (``[C, C]``, rows true, columns predicted), the expected cost per clip; and beyond accuracy
    (:func:`mmadfer.evaluation.analysis.analyze`): macro-F1, ECE, MCE, NLL, Brier, bootstrap intervals
    (``n_resamples`` seeded by ``seed``), AURC, the coverage at ``min_confidence``, per-subgroup metrics (``groups``)
    and the measured ``throughput``. Probabilities are ``softmax(logits / cfg.temperature)``.

    With ``out_dir`` the reports are written there (by rank 0): ``metrics.json``, ``per_class.csv``,
    ``confusion.csv``, ``confusion_normalized.csv``, ``confusion.png``, ``predictions.csv``, ``reliability.png``,
    ``risk_coverage.csv``/``.png`` and one ``subgroups_<column>.png`` per group column. Clips that failed
    to load are listed under ``skipped`` and left out of the metrics. Works under torchrun (same numbers).
    """
    net = accel.unwrap_model(model)
    names = list(dataset.class_names)
    if net.cfg.num_classes != len(names):
        raise ValueError(f"the model has {net.cfg.num_classes} classes {list(net.cfg.labels)} but the dataset has "
                         f"{len(names)}: {names}")
    if tuple(n.lower() for n in net.cfg.labels) != tuple(n.lower() for n in names):
        logger.warning("class names differ between the model %s and the dataset %s; the dataset's are reported",
                       list(net.cfg.labels), names)
    pred, probs, throughput = score_dataset(model, dataset, batch_size=batch_size, device=device,
                                            num_workers=num_workers, precision=precision, progress=progress)
    y_pred = probs.argmax(1)
    y_true = pred["label"].numpy()
    metrics = classification_metrics(y_true, y_pred, names, cost_matrix)
    records = getattr(dataset, "records", None)
    path_of = (lambda i: records[i].path) if records is not None else (lambda i: "")
    metrics["temperature"] = float(net.cfg.temperature)
    metrics.update(analyze(probs, y_true, [path_of(int(i)) for i in pred["index"]], n_resamples=n_resamples,
                           seed=seed, min_confidence=min_confidence, groups=groups, min_group_n=min_group_n))
    metrics["throughput"] = {**throughput,
                             "world_size": torch.distributed.get_world_size() if D.is_initialized() else 1}
    metrics["skipped"] = [{"index": i, "path": path_of(i)} for i in pred["skipped"]]
    if pred["skipped"]:
        logger.warning("%d clip(s) could not be loaded and are not in the metrics (listed under 'skipped')",
                       len(pred["skipped"]))
    if callable(getattr(dataset, "audio_report", None)):  # clips heard as silence: audio_missing, audio_too_short
        metrics.update(dataset.audio_report())
    if out_dir is not None and (not D.is_initialized() or torch.distributed.get_rank() == 0):
        index = pred["index"].numpy()
        table = prediction_table(index, [path_of(int(i)) for i in index], y_true, probs, names)
        if cost_matrix is not None:
            table.insert(table.columns.get_loc("confidence") + 1, "cost",
                         np.asarray(cost_matrix, dtype=np.float64)[y_true, y_pred])
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        extra = write_files(out_dir, metrics)  # charts and risk_coverage.csv (the curve's arrays leave metrics)
        files = write_evaluation(out_dir, metrics, table)
        files.update(extra)
        metrics["files"] = {k: str(v) for k, v in files.items()}
    else:
        metrics.pop("risk_coverage", None)
    return metrics
