"""Any timm model as an encoder: run on each frame (or on the fbank image), pooled to one feature per input.

A per-frame CNN is the usual small face encoder (LibreFace's ResNet-18, py-feat's ConvNeXt); here it feeds the same
fused-frame temporal head as the ViTs. It has no token sequence, so it takes neither prompts nor the token-level
fusion bottleneck: with it the modalities meet after the encoders (late fusion).
"""
from __future__ import annotations

import timm
import torch
from torch import nn

__all__ = ["TimmFrameEncoder"]


class TimmFrameEncoder(nn.Module):
    """``timm.create_model(name, pretrained=False, num_classes=0, in_chans=in_chans)``: pooled features ``[N, D]``.

    Never downloads: weights come from a local file through :func:`mmadfer.load_encoder_weights`. Parameter names
    are timm's under ``model.`` so a timm state dict loads after a prefix.
    """

    def __init__(self, name: str, *, in_chans: int):
        super().__init__()
        self.name = name
        self.in_chans = in_chans
        self.model = timm.create_model(name, pretrained=False, num_classes=0, in_chans=in_chans)
        self.embed_dim = int(getattr(self.model, "head_hidden_size", None) or self.model.num_features)  # pooled output

    @property
    def classifier_prefixes(self) -> tuple[str, ...]:
        """Key prefixes of the (dropped) classifier in a timm checkpoint of this model, e.g. ``('fc.',)``."""
        names = self.model.pretrained_cfg.get("classifier") or ()
        return tuple(f"{n}." for n in ([names] if isinstance(names, str) else names))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [N, C, H, W] -> pooled features [N, D]
        return self.model(x)
