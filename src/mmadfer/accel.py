"""Execution modes: numerical precision and compilation, shared by training, inference and the benchmarks.

=========  ==========================================================================================================
``fp32``   the reference recipe's arithmetic (TF32 matmuls are not enabled).
``bf16``   autocast to bfloat16: the default on a GPU, and for prediction on CPUs with native bf16 (AVX-512 BF16 or
           AMX); top-1 agreement with fp32 is reported by ``mmadfer bench``.
``fp8``    bf16 autocast plus fp8 e4m3 matmuls for the frozen encoder linears, scaled per token and per channel
           (:mod:`mmadfer.model.fp8`); opt-in.
``fp8t``   as ``fp8`` with one scale per tensor (cheaper to quantise, a little less accurate); opt-in.
``fp8s``   as ``fp8t`` with static activation scales calibrated once on sample inputs
           (``optimize_model(calibration=...)``, :func:`mmadfer.model.fp8.calibrate_static_fp8`); opt-in.
=========  ==========================================================================================================

Compilation (``optimize_model(compile=...)``):

- ``True`` / ``'whole'`` wraps the model in ``torch.compile``; the lockstep encoder loop is static, so the whole
  forward (both encoders, fusion, temporal head) becomes one graph. Fastest steps, at the cost of the longest
  compilation (BENCHMARKS.md).
- ``'regional'`` compiles each repeated layer in place instead (:func:`compile_regions`): the 12 blocks of an
  encoder share one compiled graph, and so do the 12 fusion bottlenecks, so compilation costs a few layers rather
  than the whole unrolled model. The glue between layers (prompt updates, the final norms) stays eager.
"""
from __future__ import annotations

import contextlib
from typing import ContextManager

import torch
from torch import nn

from .model.fp8 import calibrate_static_fp8, convert_encoders_to_fp8, fp8_supported

__all__ = ["default_device", "unwrap_model", "PRECISIONS", "COMPILE_KINDS", "default_precision", "native_bf16", "autocast",
           "optimize_model",
           "compile_regions"]

PRECISIONS = ("fp32", "bf16", "fp8", "fp8t", "fp8s")
#: What ``optimize_model(compile=...)`` accepts besides ``False``.
COMPILE_KINDS = (True, "whole", "regional")


def default_device() -> str:
    """``'cuda'`` when a GPU is available, else ``'cpu'``: where the model runs unless told otherwise."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside its ``torch.compile`` and DDP wrappers (itself when it has none)."""
    model = getattr(model, "_orig_mod", model)  # torch.compile
    return getattr(model, "module", model)  # DDP


def native_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` computes bf16 matmuls in hardware: any CUDA GPU, or a CPU with AVX-512 BF16 or AMX.

    Elsewhere CPU bf16 is emulated and slower than fp32.
    """
    if torch.device(device).type == "cuda":
        return True
    if torch.device(device).type != "cpu":
        return False
    probes = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    return any(probe() for probe in probes if probe is not None)


def default_precision(device: torch.device | str, *, purpose: str = "predict") -> str:
    """The fastest precision that keeps predictions, for ``purpose`` ``'predict'``, ``'train'`` or ``'evaluate'``.

    On a GPU always bf16, which agrees with fp32 on the top-1 class (``mmadfer bench --what accuracy``) and is much
    faster. On the CPU, ``'predict'`` (Recognizer, ``mmadfer predict``) uses bf16 where the CPU has it natively (the
    speed and agreement are in BENCHMARKS.md) and fp32 elsewhere. CPU training and dataset
    evaluation stay fp32, so that ``mmadfer evaluate`` reproduces a CPU run's own metrics exactly: on a barely
    trained model nearly tied logits can flip under any change of arithmetic.
    """
    if purpose not in ("predict", "train", "evaluate"):
        raise ValueError(f"purpose must be 'predict', 'train' or 'evaluate', got {purpose!r}")
    device = torch.device(device)
    if device.type == "cuda" or (purpose == "predict" and native_bf16(device)):
        return "bf16"
    return "fp32"


def autocast(device: torch.device | str, precision: str) -> ContextManager:
    """The autocast context for ``precision`` on ``device`` (a no-op for fp32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


def compile_regions(model: nn.Module, *, mode: str | None = None) -> nn.Module:
    """``torch.compile`` each block of both encoders, each fusion bottleneck and the temporal head, in place.

    Layers of one class and input shape share a compiled graph (dynamo treats a module's parameters as inputs): in
    eval mode the 24 encoder blocks compile as two graphs and the fusion bottlenecks as one. In training, drop-path
    rates differ per block, so each block gets its own graph. The state dict's keys do not change. Returns ``model``.
    """
    regions: list[nn.Module] = []
    for name in ("vision", "audio"):
        encoder = getattr(model, name, None)
        if encoder is not None:  # a ViT's blocks; a per-frame timm model as one region
            regions += list(getattr(encoder, "blocks", [encoder]))
    regions += list(getattr(model, "fusion", None) or [])
    if getattr(model, "temporal", None) is not None:
        regions.append(model.temporal)
    if not regions:
        raise ValueError(f"{type(model).__name__} has no encoder blocks, fusion layers or temporal head to compile")
    # In training, stochastic depth gives each encoder block its own drop-path rate, a float that dynamo specialises
    # on: the blocks then compile one graph each, which the default limit of 8 recompilations per function would cut
    # short (the rest falling back to eager).
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, len(regions) + 8)
    for region in regions:
        region.compile(mode=mode)
    return model


def optimize_model(model: nn.Module, *, device: torch.device | str, precision: str = "fp32",
                   compile: bool | str = False, compile_mode: str | None = None, calibration=None) -> nn.Module:
    """Move ``model`` to ``device`` and apply the mode's one-off transforms (fp8 weight quantisation, compilation).

    ``compile``: ``False``, ``True``/``'whole'`` (one graph) or ``'regional'`` (:func:`compile_regions`).
    ``calibration``: ``(video, audio)`` batches on ``device`` for ``'fp8s'`` (required there, unused otherwise).
    Returns the module to call (compiled or not); call it under :func:`autocast`.
    """
    if compile and compile not in COMPILE_KINDS:
        raise ValueError(f"compile must be False or one of {COMPILE_KINDS}, got {compile!r}")
    model = model.to(device)
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision.startswith("fp8"):
        if torch.device(device).type == "cuda" and not fp8_supported(device):
            raise RuntimeError(f"precision={precision!r} needs a GPU of compute capability 8.9+ (Ada/Hopper); use 'bf16'")
        convert_encoders_to_fp8(model, rowwise=precision == "fp8")
        if precision == "fp8s":
            if calibration is None:
                raise ValueError("precision 'fp8s' needs calibration inputs (optimize_model(calibration=...))")
            with autocast(device, precision):
                calibrate_static_fp8(model, calibration)
    if compile == "regional":
        return compile_regions(model, mode=compile_mode)
    if compile:
        model = torch.compile(model, mode=compile_mode)
    return model
