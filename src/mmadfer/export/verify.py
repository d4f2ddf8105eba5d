"""Checking an exported model against PyTorch: random inputs of the right shapes, and the agreement of a runner's
logits with the PyTorch model's (max |Δlogit|, top-1 agreement)."""
from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np
import torch

from ..config import ModelConfig

__all__ = ["random_inputs", "compare", "agreement"]


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
    batches = []
    for i, start in enumerate(range(0, num_clips, batch_size)):
        batches.append(random_inputs(model.cfg, min(batch_size, num_clips - start), seed=seed + i))
    return agreement(model, runner, batches)


def agreement(model: torch.nn.Module, runner: Callable[[torch.Tensor, torch.Tensor], np.ndarray],
              batches: Iterable[tuple[Any, Any]], *, reference: list[np.ndarray] | None = None) -> dict[str, Any]:
    """Agreement of ``runner`` with the PyTorch ``model`` (run in fp32 on the CPU) on given input ``batches`` of
    ``(video, audio)``; the keys of :func:`compare`. ``reference``: the model's logits per batch, when already
    computed (one PyTorch pass serves several runners); a list given empty is filled."""
    model = model.eval().float().cpu()
    max_abs = max_ref = 0.0
    same = total = 0
    for i, (video, audio) in enumerate(batches):
        video, audio = torch.as_tensor(video), torch.as_tensor(audio)
        if reference is not None and i < len(reference):
            ref = reference[i]
        else:
            with torch.no_grad():
                ref = model(video, audio).float().numpy()  # [B, C]
            if reference is not None:
                reference.append(ref)
        out = np.asarray(torch.as_tensor(runner(video, audio)).float().cpu())  # [B, C]
        max_abs = max(max_abs, float(np.abs(out - ref).max()))
        max_ref = max(max_ref, float(np.abs(ref).max()))
        same += int((out.argmax(1) == ref.argmax(1)).sum())
        total += len(ref)
    return {"num_clips": total, "max_abs_logit_diff": max_abs,
            "max_rel_logit_diff": max_abs / max(max_ref, 1e-12), "top1_agreement": same / max(total, 1)}
