"""Files -> runners: what ``backend='auto'`` picks, and the one :func:`load_runner` that builds every runner.

``load_runner(backend, source)`` takes a checkpoint (mmadfer ``.safetensors`` or the reference's ``.pth``), an
exported file (``.onnx``, OpenVINO ``.xml``) or a PyTorch model in memory, and returns a
:class:`~mmadfer.runtime.runner.Runner`. A checkpoint is converted once for an int8 backend and kept in the
conversion cache (:mod:`mmadfer.runtime.cache`). ``backend='auto'`` on a CPU measures (:func:`mmadfer.runtime.select.choose`):
the fastest path on this machine whose top-1 agreement with PyTorch meets the bar, never slower than torch. A model
in memory, or with no cache, walks :func:`fallback_chain` instead: a conversion that fails warns and falls through to
the next path, and finally to torch. A backend asked for by name runs, with a warning when its measured agreement is
below the bar.
"""
from __future__ import annotations

import importlib.util
import os
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from ..accel import default_device
from ..checkpoints import load_model
from ..errors import CheckpointError
from ..export.onnx import int8_bytes, onnx_bytes
from ..export.openvino import openvino_int8
from . import cache, select
from .backends import BACKENDS, CONVERSION_NEEDS, CPU_CONVERSIONS, RUNNER_FILES
from .onnx import OnnxRunner
from .openvino import OpenVinoRunner
from .runner import Runner, as_runner

__all__ = ["resolve_backend", "fallback_chain", "conversion_target", "load_runner"]


def fallback_chain(path: str | os.PathLike | None, device: str | torch.device | None = None,
                   precision: str | None = None, compile: bool | str = False) -> list[str]:
    """The backends ``'auto'`` tries for ``path`` (None: a model in memory), in order.

    An exported file runs on its own runtime. On the CPU, unless ``precision`` or ``compile`` asks for torch, the
    first conversion of :data:`~mmadfer.runtime.backends.CPU_CONVERSIONS` whose libraries are installed, then the
    ones after it, then torch; elsewhere torch.
    """
    suffix = Path(path).suffix.lower() if path is not None else ""
    if suffix in RUNNER_FILES:
        return [RUNNER_FILES[suffix]]
    if torch.device(device or default_device()).type != "cpu" or precision is not None or compile:
        return ["torch"]
    for i, backend in enumerate(CPU_CONVERSIONS):
        if all(importlib.util.find_spec(m) is not None for m in CONVERSION_NEEDS[backend]):
            return [*CPU_CONVERSIONS[i:], "torch"]
    return ["torch"]


def resolve_backend(path: str | os.PathLike, device: str | torch.device | None = None, precision: str | None = None,
                    compile: bool | str = False) -> str:
    """What ``backend='auto'`` picks for checkpoint ``path``: the fastest path that keeps predictions (see
    :meth:`mmadfer.Recognizer.from_checkpoint`)."""
    return fallback_chain(path, device, precision, compile)[0]


def conversion_target(backend: str, checkpoint: str | os.PathLike,
                      cache_dir: str | os.PathLike | None = None) -> Path | None:
    """Where ``backend`` keeps its conversion of ``checkpoint``, or None when the backend converts nothing."""
    if Path(checkpoint).suffix.lower() in RUNNER_FILES:
        return None
    if backend == "onnx-int8":
        return cache.cached_int8_path(checkpoint, cache_dir=cache_dir)
    if backend == "openvino-int8":
        return cache.cached_openvino_int8_path(checkpoint, cache_dir=cache_dir)
    return None


def load_runner(backend: str, source: str | os.PathLike | nn.Module, *, device: str | torch.device = "cpu",
                precision: str | None = None, compile: bool | str = False,
                cache_dir: str | os.PathLike | bool | None = None, job_windows: int | None = None,
                measure=None) -> Runner:
    """The runner of ``source`` (a checkpoint, an exported ``.onnx``/``.xml`` file, or a PyTorch model) on
    ``backend`` (:data:`~mmadfer.runtime.backends.BACKENDS`).

    An exported file runs as it is. A checkpoint is converted once for an int8 backend and kept in ``cache_dir``
    (default :func:`mmadfer.runtime.cache.default_cache_dir`; ``False``: converted in memory or a temporary folder
    every time, as a model in memory always is); ``'onnx'`` exports in memory. ``precision`` and ``compile`` apply
    to torch (:func:`mmadfer.runtime.runner.as_runner`). ``'auto'`` on a checkpoint with a cache chooses by
    measurement among :func:`fallback_chain` (:func:`mmadfer.runtime.select.choose`, given ``job_windows``, the clips
    the job will run, and ``measure``, how a runner is timed); otherwise it tries the chain in order and warns when a
    conversion fails. A backend asked for by name raises instead, and warns when its measured agreement with PyTorch
    is below :data:`~mmadfer.runtime.select.AGREEMENT_BAR`. A converted model's runner carries that measurement as
    ``runner.agreement`` (the keys of :func:`mmadfer.export.verify.compare`).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    path = None if isinstance(source, nn.Module) else Path(source)
    suffix = path.suffix.lower() if path is not None else ""
    if suffix in RUNNER_FILES and backend not in ("auto", RUNNER_FILES[suffix], f"{RUNNER_FILES[suffix]}-int8"):
        raise ValueError(f"no runner for backend {backend!r} for {path}: a {suffix} file runs with "
                         f"backend='{RUNNER_FILES[suffix]}' (or 'auto')")
    chain = fallback_chain(path, device, precision, compile) if backend == "auto" else [backend]
    kw = dict(device=device, precision=precision, compile=compile, cache_dir=cache_dir)
    if len(chain) > 1 and path is not None and cache_dir is not False:
        extra = {"measure": measure} if measure is not None else {}
        return select.choose(path, lambda name: _load(name, source, path, **kw), chain[:-1],
                             cache_dir=cache_dir or None, job_windows=job_windows, **extra).runner
    if backend != "auto":
        runner = _load(backend, source, path, **kw)
        found = select.agreement_of(runner)
        if found is not None and found["top1_agreement"] < select.AGREEMENT_BAR:
            warnings.warn(f"{backend} agrees with PyTorch on the top class for only {100 * found['top1_agreement']:.1f}%"
                          f" of {found['num_clips']} held-out clips (below {100 * select.AGREEMENT_BAR:.0f}%): its "
                          "predictions can differ from the model's; backend='torch' runs the model itself",
                          stacklevel=2)
        return runner
    for i, name in enumerate(chain):
        try:
            return _load(name, source, path, **kw)
        except CheckpointError:
            raise
        except Exception as e:
            if i == len(chain) - 1:
                raise
            warnings.warn(f"{name} conversion of {path or 'the model'} failed ({e}); trying {chain[i + 1]} instead",
                          stacklevel=2)
    raise AssertionError("unreachable")  # pragma: no cover


def _load(name: str, source: str | os.PathLike | nn.Module, path: Path | None, *, device: str | torch.device,
          precision: str | None, compile: bool | str, cache_dir: str | os.PathLike | bool | None) -> Runner:
    """The runner of one backend, without fallback."""
    if name == "torch":
        return as_runner(_model(source, path), device=device, precision=precision, compile=compile)
    suffix = path.suffix.lower() if path is not None else ""
    cached = path is not None and cache_dir is not False
    cache_dir = cache_dir or None
    if suffix == ".onnx":
        runner = OnnxRunner(path, device=device)
    elif suffix == ".xml":
        runner = OpenVinoRunner(path)
    elif name == "onnx":
        runner = OnnxRunner(onnx_bytes(_model(source, path)), device=device)
    elif name == "onnx-int8":
        data = cache.cached_int8(path, cache_dir=cache_dir) if cached else int8_bytes(_model(source, path))
        runner = OnnxRunner(data, device=device)
        runner.agreement = (cache.entry_info(data) or {}).get("agreement") if cached else None
    elif cached:
        runner = OpenVinoRunner(cache.cached_openvino_int8(path, cache_dir=cache_dir))
        runner.agreement = (cache.entry_info(runner.path) or {}).get("agreement")
    else:
        with tempfile.TemporaryDirectory(prefix="mmadfer-ov-") as tmp:  # compiled into memory before it is deleted
            runner = OpenVinoRunner(openvino_int8(_model(source, path), Path(tmp) / "model.xml"))
    return as_runner(runner, precision=precision, compile=compile)


def _model(source: str | os.PathLike | nn.Module, path: Path | None) -> nn.Module:
    return source if path is None else load_model(path)
