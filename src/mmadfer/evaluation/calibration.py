"""Confidence quality: how far a model's probabilities can be trusted, and temperature scaling to repair them.

* **Probabilities** are ``softmax(logits / T)`` with the model's temperature ``T`` (``ModelConfig.temperature``,
  1.0 unless ``mmadfer calibrate`` fitted one). :func:`probabilities` is the one place where mmadfer turns logits into
  probabilities: prediction, evaluation and every runtime (torch, ONNX, OpenVINO) call it.
* **ECE** (expected calibration error, top-label): the clips are put into ``15`` equal-width bins by their top-label
  confidence ``max_c p_c``: bin ``b`` (0-based) holds confidences in ``[b/15, (b+1)/15)``, the last bin is closed,
  ``[14/15, 1]``. ECE is ``sum_b (n_b / N) * |accuracy_b - mean confidence_b|`` over non-empty bins; **MCE** is the
  largest ``|accuracy_b - mean confidence_b|`` over non-empty bins.
* **NLL**: mean of ``-log p_true`` (natural log, probabilities clipped at 1e-15 as scikit-learn's ``log_loss``).
* **Brier score**: mean over clips of ``sum_c (p_c - 1[c = true])^2`` (multi-class form, between 0 and 2).
* **Temperature scaling** (Guo et al. 2017): one scalar ``T > 0`` minimising the NLL of ``softmax(logits / T)`` on
  validation clips. Dividing by a positive scalar never changes the arg-max, so top-1 labels (and accuracy, UAR,
  confusion) are unchanged; only the confidences move.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
from sklearn.metrics import log_loss
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

__all__ = ["ECE_BINS", "probabilities", "reliability_bins", "ece", "mce", "nll", "brier", "fit_temperature",
           "confidence_metrics", "ece_from", "split_halves"]

#: Number of equal-width confidence bins of :func:`ece`, :func:`mce` and the reliability diagram.
ECE_BINS = 15
_EPS = 1e-15


def probabilities(logits, temperature: float = 1.0):
    """``softmax(logits / temperature)`` over the last axis: a torch tensor stays one (on its device, float32 unless
    it is float64), anything else is returned as a float64 numpy array. The only logits-to-probabilities step in
    mmadfer."""
    if not temperature > 0 or not math.isfinite(temperature):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    if isinstance(logits, torch.Tensor):
        z = logits if logits.dtype == torch.float64 else logits.float()
        return torch.softmax(z / temperature, dim=-1)
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _check(probs, y_true) -> tuple[np.ndarray, np.ndarray]:
    probs, y_true = np.asarray(probs, dtype=np.float64), np.asarray(y_true, dtype=np.int64)
    if probs.ndim != 2 or y_true.shape != (probs.shape[0],):
        raise ValueError(f"probs must be [N, C] and y_true [N], got {probs.shape} and {y_true.shape}")
    if len(y_true) == 0:
        raise ValueError("no clips")
    if y_true.min() < 0 or y_true.max() >= probs.shape[1]:
        raise ValueError(f"y_true holds a class index outside 0..{probs.shape[1] - 1}")
    return probs, y_true


def _bin_index(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin ``b`` holds ``[b/n, (b+1)/n)``; the last bin also holds 1.0."""
    return np.clip(np.floor(confidence * n_bins).astype(np.int64), 0, n_bins - 1)


def reliability_bins(probs, y_true, n_bins: int = ECE_BINS) -> dict[str, list]:
    """Per bin: ``lower``, ``upper`` edges, ``count``, ``confidence`` (mean top-label confidence) and ``accuracy``
    (None for an empty bin). The data of the reliability diagram and of :func:`ece`/:func:`mce`."""
    probs, y_true = _check(probs, y_true)
    conf, correct = probs.max(1), (probs.argmax(1) == y_true).astype(np.float64)
    b = _bin_index(conf, n_bins)
    count = np.bincount(b, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(b, conf, n_bins) / count
        acc = np.bincount(b, correct, n_bins) / count
    none = lambda a: [None if c == 0 else float(v) for v, c in zip(a, count)]  # noqa: E731
    return {"lower": [i / n_bins for i in range(n_bins)], "upper": [(i + 1) / n_bins for i in range(n_bins)],
            "count": count.tolist(), "confidence": none(mean_conf), "accuracy": none(acc)}


def _gaps(conf: np.ndarray, correct: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    b = _bin_index(conf, n_bins)
    count = np.bincount(b, minlength=n_bins)
    gap = np.abs(np.bincount(b, correct, n_bins) - np.bincount(b, conf, n_bins))  # sum over the bin of acc - conf
    return count, gap


def ece_from(conf: np.ndarray, correct: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """ECE from top-label confidences ``[N]`` and 0/1 correctness ``[N]`` (what the bootstrap resamples)."""
    count, gap = _gaps(conf, correct, n_bins)
    return float(gap.sum() / count.sum())  # sum_b n_b/N * |acc_b - conf_b| = sum_b |sum(correct) - sum(conf)| / N


def ece(probs, y_true, n_bins: int = ECE_BINS) -> float:
    """Top-label expected calibration error over ``n_bins`` equal-width bins (see the module docstring)."""
    probs, y_true = _check(probs, y_true)
    return ece_from(probs.max(1), (probs.argmax(1) == y_true).astype(np.float64), n_bins)


def mce(probs, y_true, n_bins: int = ECE_BINS) -> float:
    """Maximum calibration error: the largest ``|accuracy - confidence|`` of a non-empty bin."""
    probs, y_true = _check(probs, y_true)
    count, gap = _gaps(probs.max(1), (probs.argmax(1) == y_true).astype(np.float64), n_bins)
    nz = count > 0
    return float((gap[nz] / count[nz]).max())


def nll(probs, y_true) -> float:
    """Mean negative log-likelihood of the true class (scikit-learn's ``log_loss``; rows renormalised to sum to 1,
    which only removes rounding, e.g. of probabilities read back from a CSV)."""
    probs, y_true = _check(probs, y_true)
    probs = probs / probs.sum(1, keepdims=True)
    return float(log_loss(y_true, probs, labels=np.arange(probs.shape[1])))


def brier(probs, y_true) -> float:
    """Multi-class Brier score: mean over clips of the squared distance between ``probs`` and the one-hot label."""
    probs, y_true = _check(probs, y_true)
    onehot = np.eye(probs.shape[1])[y_true]
    return float(((probs - onehot) ** 2).sum(1).mean())


def fit_temperature(logits, y_true, *, bounds: tuple[float, float] = (1e-2, 1e2)) -> float:
    """The temperature ``T`` minimising the NLL of ``softmax(logits / T)``: a bounded 1-D search over ``log T``
    (``scipy.optimize.minimize_scalar``, which scikit-learn already brings). The NLL is convex in ``1/T``, so the
    minimum found is the global one within ``bounds``."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y_true, dtype=np.int64)
    if z.ndim != 2 or y.shape != (z.shape[0],) or len(y) == 0:
        raise ValueError(f"logits must be [N, C] and y_true [N] with N > 0, got {z.shape} and {y.shape}")
    rows = np.arange(len(y))

    def loss(log_t: float) -> float:
        return float(-log_softmax(z / math.exp(log_t), axis=1)[rows, y].mean())

    res = minimize_scalar(loss, bounds=(math.log(bounds[0]), math.log(bounds[1])), method="bounded",
                          options={"xatol": 1e-6})
    return float(math.exp(res.x))


def confidence_metrics(probs, y_true, n_bins: int = ECE_BINS) -> dict[str, Any]:
    """``ece``, ``mce``, ``nll``, ``brier`` and the ``reliability`` bins, for ``metrics.json``."""
    return {"ece": ece(probs, y_true, n_bins), "mce": mce(probs, y_true, n_bins), "nll": nll(probs, y_true),
            "brier": brier(probs, y_true), "ece_bins": n_bins, "reliability": reliability_bins(probs, y_true, n_bins)}


def split_halves(y_true: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic, class-stratified split of clips into a fit half and a held-out half: within each class, in
    the given order, clips alternate fit, held-out, fit, ... Returns the two index arrays (sorted)."""
    y = np.asarray(y_true, dtype=np.int64)
    fit, held = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        fit.extend(idx[0::2])
        held.extend(idx[1::2])
    return np.sort(np.asarray(fit, dtype=np.int64)), np.sort(np.asarray(held, dtype=np.int64))
