"""The one interface every engine is driven through: a :class:`Runner` maps prepared inputs to logits.

``runner(video, audio) -> logits [B, C]``, with ``video`` ``[B, T, 3, S, S]`` (uint8 0-255 or float in [0, 1]) and
``audio`` ``[B, 1, 512, 128]`` (a normalised fbank), as numpy arrays or tensors. A runner also says what it runs
(``cfg``: the :class:`~mmadfer.ModelConfig`, class names and preprocessing profile included), how (``precision``)
and with what (``backend``: ``'torch'``, ``'onnx'`` or ``'openvino'``). :class:`TorchRunner` wraps a PyTorch model;
:class:`~mmadfer.runtime.onnx.OnnxRunner` and :class:`~mmadfer.runtime.openvino.OpenVinoRunner` run exported files.
Prediction, evaluation and benchmarks take any of them (:func:`as_runner` wraps a bare PyTorch model), so none of
them asks which engine it was given.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from ..accel import PRECISIONS, autocast, default_device, default_precision, optimize_model, unwrap_model
from ..config import ModelConfig

__all__ = ["Runner", "RunnerBase", "TorchRunner", "as_runner", "as_model_inputs"]


@runtime_checkable
class Runner(Protocol):
    """What prediction, evaluation and benchmarks need of an engine."""

    backend: str
    cfg: ModelConfig
    precision: str

    def __call__(self, video: np.ndarray | torch.Tensor,
                 audio: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:  # logits [B, C]
        ...


class RunnerBase:
    """What every runner of this package shares: ``labels``, the class names of its ``cfg``."""

    cfg: ModelConfig
    #: A converted model's measured top-1 agreement with PyTorch on held-out clips (the keys of
    #: :func:`mmadfer.export.verify.compare`), None when not measured (PyTorch itself, a file run as it is).
    agreement: dict | None = None

    @property
    def labels(self) -> tuple[str, ...]:
        return self.cfg.labels


class TorchRunner(RunnerBase):
    """Runs a PyTorch model (or its compiled or DDP wrapper) on ``device`` under :func:`mmadfer.accel.autocast`.

    Inputs are moved to the device (uint8 video stays uint8 until it is there); an input the model does not use is
    not moved. Returns the logits ``[B, C]`` as a tensor on the device.
    """

    backend = "torch"

    def __init__(self, model: nn.Module, *, device: str | torch.device, precision: str = "fp32"):
        self.model = model
        self.net = unwrap_model(model)
        self.cfg: ModelConfig = self.net.cfg
        self.device = torch.device(device)
        self.precision = precision

    def __call__(self, video: np.ndarray | torch.Tensor | None,
                 audio: np.ndarray | torch.Tensor | None) -> torch.Tensor:
        use_video, use_audio = getattr(self.net, "use_video", True), getattr(self.net, "use_audio", True)
        video = torch.as_tensor(video).to(self.device, non_blocking=True) if use_video else None  # [B, T, 3, S, S]
        audio = torch.as_tensor(audio).to(self.device, non_blocking=True) if use_audio else None  # [B, 1, 512, 128]
        with torch.inference_mode(), autocast(self.device, self.precision):
            return self.model(video, audio)  # [B, C]


def as_runner(model: nn.Module | Runner, *, device: str | torch.device | None = None, precision: str | None = None,
              compile: bool | str = False, purpose: str = "predict", prepare: bool = True) -> Runner:
    """``model`` as a :class:`Runner`: a runner as it is, a PyTorch model wrapped in a :class:`TorchRunner`.

    For a PyTorch model, ``precision`` defaults to :func:`mmadfer.accel.default_precision` for ``purpose``;
    ``prepare`` moves it to ``device`` and applies the precision's transforms and ``compile``
    (:func:`mmadfer.accel.optimize_model`); ``prepare=False`` runs it as it is (a model in training, already placed).
    The model is put in eval mode. ``precision`` and ``compile`` do not apply to an exported model's runner.
    """
    if not isinstance(model, nn.Module):
        if precision not in (None, "fp32") or compile:
            raise ValueError(f"precision and compile apply to the torch backend, not to {model.backend}; "
                             "for int8 use backend='onnx-int8' or 'openvino-int8'")
        return model
    device = torch.device(device or default_device())
    precision = precision or default_precision(device, purpose=purpose)
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    model.eval()
    if prepare:
        model = optimize_model(model, device=device, precision=precision, compile=compile)
    return TorchRunner(model, device=device, precision=precision)


def as_model_inputs(video: np.ndarray | torch.Tensor,
                    audio: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Inputs for an exported model's runtime: contiguous float32 numpy; uint8 video is divided by 255, as the
    PyTorch model does."""
    video = video.cpu().numpy() if torch.is_tensor(video) else np.asarray(video)  # [B, T, 3, S, S]
    audio = audio.cpu().numpy() if torch.is_tensor(audio) else np.asarray(audio)  # [B, 1, 512, 128]
    if video.dtype == np.uint8:
        video = video.astype(np.float32) * np.float32(1 / 255)
    return np.ascontiguousarray(video, np.float32), np.ascontiguousarray(audio, np.float32)
