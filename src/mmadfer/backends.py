"""Which engine runs a model: PyTorch, ONNX Runtime or OpenVINO, and what ``backend='auto'`` picks.

Kept free of heavy imports, so that the CLI can list the choices without loading torch.

=================  =====================================================================================
``torch``          the PyTorch model (fp32, or bf16/fp8 autocast: :mod:`mmadfer.accel`); any device
``onnx``           ONNX Runtime, fp32 (:class:`mmadfer.export.OnnxModel`)
``onnx-int8``      ONNX Runtime with dynamic int8 quantisation: no calibration (:func:`mmadfer.export.cached_int8`)
``openvino-int8``  OpenVINO with static int8 quantisation calibrated by NNCF: the fastest on a CPU
                   (:mod:`mmadfer.openvino_int8`)
=================  =====================================================================================
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["BACKENDS", "resolve_backend", "conversion_target", "load_runner"]

#: Inference engines, and ``auto``: the fastest of them that keeps predictions, for the device and the file.
BACKENDS = ("auto", "torch", "onnx", "onnx-int8", "openvino-int8")


#: Files that are already converted, and the backend that runs them.
_RUNNER_FILES = {".onnx": "onnx", ".xml": "openvino-int8"}
#: What ``auto`` tries on a CPU, fastest first (torch is the last resort), and what each conversion imports.
_CPU_CONVERSIONS = ("openvino-int8", "onnx-int8")
_NEEDS = {"openvino-int8": ("onnx", "openvino", "nncf"), "onnx-int8": ("onnx", "onnxruntime")}


def _default_device() -> str:
    """``'cuda'`` when a GPU is available, else ``'cpu'`` (torch is imported only when this is called)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_backend(path: str | os.PathLike, device: str | torch.device | None = None, precision: str | None = None,
                    compile: bool = False) -> str:
    """What ``backend='auto'`` picks for checkpoint ``path``: the fastest path that keeps predictions (see
    :meth:`Recognizer.from_checkpoint`)."""
    import importlib.util

    import torch

    device = torch.device(device or _default_device())
    suffix = Path(path).suffix.lower()
    if suffix in _RUNNER_FILES:
        return _RUNNER_FILES[suffix]
    if device.type != "cpu" or precision is not None or compile:
        return "torch"
    for backend in _CPU_CONVERSIONS:
        if all(importlib.util.find_spec(m) is not None for m in _NEEDS[backend]):
            return backend
    return "torch"


def conversion_target(backend: str, checkpoint: str | os.PathLike,
                      cache_dir: str | os.PathLike | None = None) -> Path | None:
    """Where ``backend`` keeps its conversion of ``checkpoint``, or None when the backend converts nothing."""
    if Path(checkpoint).suffix.lower() in _RUNNER_FILES:
        return None
    if backend == "onnx-int8":
        from .export import cached_int8_path

        return cached_int8_path(checkpoint, cache_dir=cache_dir)
    if backend == "openvino-int8":
        from .openvino_int8 import cached_openvino_int8_path

        return cached_openvino_int8_path(checkpoint, cache_dir=cache_dir)
    return None


def load_runner(backend: str, path: str | os.PathLike, *, device: str | torch.device = "cpu",
                cache_dir: str | os.PathLike | bool | None = None):
    """The runner for a non-torch ``backend``: an exported file as it is, or a PyTorch checkpoint converted once and
    cached in ``cache_dir`` (``False``: converted in memory or a temporary folder every time). A runner is called as
    ``runner(video, audio) -> logits`` (numpy) and has ``cfg``, ``precision`` and ``backend``."""
    from .checkpoints import load_model

    path = Path(path)
    if backend == "onnx":
        from .export import OnnxModel, onnx_bytes

        return OnnxModel(path if path.suffix.lower() == ".onnx" else onnx_bytes(load_model(path)), device=device)
    if backend == "onnx-int8":
        from .export import OnnxModel, cached_int8, int8_bytes

        if path.suffix.lower() == ".onnx":
            return OnnxModel(path, device=device)
        return OnnxModel(cached_int8(path, cache_dir=cache_dir or None) if cache_dir is not False
                         else int8_bytes(load_model(path)), device=device)
    if backend != "openvino-int8":
        raise ValueError(f"no runner for backend {backend!r}; choose from {BACKENDS[2:]}")
    from .openvino_int8 import OpenVinoModel, cached_openvino_int8, openvino_int8

    if path.suffix.lower() == ".xml":
        return OpenVinoModel(path)
    if cache_dir is not False:
        return OpenVinoModel(cached_openvino_int8(path, cache_dir=cache_dir or None))
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mmadfer-ov-") as tmp:  # compiled into memory before it is deleted
        return OpenVinoModel(openvino_int8(load_model(path), Path(tmp) / "model.xml"))
