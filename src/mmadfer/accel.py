"""Execution modes: numerical precision and compilation, shared by training, inference and the benchmarks.

=========  ==========================================================================================================
``fp32``   the reference recipe's arithmetic (TF32 matmuls are not enabled).
``bf16``   autocast to bfloat16: the default on a GPU, and for prediction on CPUs with native bf16 (AVX-512 BF16 or
           AMX); top-1 agreement with fp32 is reported by ``mmadfer bench``.
``fp8``    bf16 autocast plus fp8 e4m3 matmuls for the frozen encoder linears, scaled per token and per channel
           (:mod:`mmadfer.model.fp8`); opt-in.
``fp8t``   as ``fp8`` with one scale per tensor (cheaper to quantise, a little less accurate); opt-in.
=========  ==========================================================================================================

``compile=True`` wraps the model in ``torch.compile``; the lockstep encoder loop is static, so the whole forward
(both encoders, fusion, temporal head) becomes one graph.
"""
from __future__ import annotations

import contextlib
from typing import ContextManager

import torch
from torch import nn

__all__ = ["PRECISIONS", "default_precision", "native_bf16", "autocast", "optimize_model"]

PRECISIONS = ("fp32", "bf16", "fp8", "fp8t")


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

    On a GPU always bf16: 100% top-1 agreement with fp32 over 256 clips, 6.3× faster inference on an H200.
    On the CPU, ``'predict'`` (Recognizer, ``mmadfer predict``) uses bf16 where the CPU has it natively (100% agreement
    over 128 clips, 1.7× faster on 2 AVX-512 BF16 cores; BENCHMARKS.md) and fp32 elsewhere. CPU training and dataset
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


def optimize_model(model: nn.Module, *, device: torch.device | str, precision: str = "fp32",
                   compile: bool = False, compile_mode: str | None = None) -> nn.Module:
    """Move ``model`` to ``device`` and apply the mode's one-off transforms (fp8 weight quantisation, compilation).

    Returns the module to call (compiled or not); call it under :func:`autocast`.
    """
    model = model.to(device)
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision.startswith("fp8"):
        from .model.fp8 import convert_encoders_to_fp8, fp8_supported

        if torch.device(device).type == "cuda" and not fp8_supported(device):
            raise RuntimeError(f"precision={precision!r} needs a GPU of compute capability 8.9+ (Ada/Hopper); use 'bf16'")
        convert_encoders_to_fp8(model, rowwise=precision == "fp8")
    if compile:
        model = torch.compile(model, mode=compile_mode)
    return model
