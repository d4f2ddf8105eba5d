"""Checking an exported model against PyTorch: random inputs of the right shapes, and the agreement of a runner's
logits with the PyTorch model's (max |Δlogit|, top-1 agreement)."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from ..config import ModelConfig

__all__ = ["random_inputs", "compare"]


def random_inputs(cfg: ModelConfig, batch_size: int, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random model inputs of the right shapes: video uniform in [0, 1], audio roughly like a normalised fbank."""
    g = torch.Generator().manual_seed(seed)
    video = torch.rand(batch_size, cfg.num_frames, 3, cfg.img_size, cfg.img_size, generator=g)
    audio = 0.5 * torch.randn(batch_size, 1, cfg.audio_frames, cfg.audio_mel_bins, generator=g)
    return video, audio


def compare(model: torch.nn.Module, runner: Callable[[torch.Tensor, torch.Tensor], np.ndarray], *,
            num_clips: int = 64, batch_size: int = 16, seed: int = 0) -> dict[str, Any]:
    """Agreement of a runner (``runner(video, audio) -> logits``: an exported model run by ONNX Runtime or
    OpenVINO) with the PyTorch model on ``num_clips`` random clips.

    Returns ``max_abs_logit_diff``, ``max_rel_logit_diff`` (relative to the largest |logit|), ``top1_agreement``
    (fraction of clips with the same predicted class) and ``num_clips``.
    """
    model = model.eval().float().cpu()
    max_abs = max_ref = 0.0
    same = 0
    for i, start in enumerate(range(0, num_clips, batch_size)):
        n = min(batch_size, num_clips - start)
        video, audio = random_inputs(model.cfg, n, seed=seed + i)
        with torch.no_grad():
            ref = model(video, audio).numpy()
        out = runner(video, audio)
        max_abs = max(max_abs, float(np.abs(out - ref).max()))
        max_ref = max(max_ref, float(np.abs(ref).max()))
        same += int((out.argmax(1) == ref.argmax(1)).sum())
    return {"num_clips": num_clips, "max_abs_logit_diff": max_abs,
            "max_rel_logit_diff": max_abs / max(max_ref, 1e-12), "top1_agreement": same / num_clips}
