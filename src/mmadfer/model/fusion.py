"""The gated fusion bottleneck that lets the frozen vision and audio encoders talk after every block."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FusionBottleneck", "fusion_schedule"]


def fusion_schedule(vision_depth: int, audio_depth: int) -> list[tuple[int, int]]:
    """Where the bottlenecks go: ``[(vision_block, audio_block), ...]``, one bottleneck after each pair.

    The rule: ``n = min(vision_depth, audio_depth)`` bottlenecks; bottleneck ``k`` (0-based) comes after block
    ``ceil((k + 1) * depth / n) - 1`` of each encoder, i.e. at the end of the k-th of ``n`` equal spans of its blocks.
    Equal depths give one after every block (the reference). A 12-block face encoder with a 4-block audio encoder
    exchanges after face blocks 2, 5, 8, 11 and audio blocks 0, 1, 2, 3: both streams meet at the same fraction of
    their depth.
    """
    n = min(vision_depth, audio_depth)
    return [(-(-(k + 1) * vision_depth // n) - 1, -(-(k + 1) * audio_depth // n) - 1) for k in range(n)]


class FusionBottleneck(nn.Module):
    """Exchange a pooled, low-dimensional summary between the modalities and add it back through a tanh gate.

    Both streams are projected to ``bottleneck_dim`` and normalised. Each token of one stream receives the mean of the
    other stream's projected tokens (for vision: over every frame and token of the same clip), is projected back up
    with an exact GELU, and is added to its stream scaled by ``tanh(gate)``. Gates start at 0, so an untrained
    bottleneck leaves the pretrained encoders untouched.
    """

    def __init__(self, dim: int = 768, bottleneck_dim: int = 128, audio_dim: int | None = None):
        super().__init__()
        audio_dim = audio_dim or dim  # the encoders may differ in width: the bottleneck is where they meet
        self.img_down = nn.Linear(dim, bottleneck_dim)
        self.img_norm = nn.LayerNorm(bottleneck_dim)
        self.aud_down = nn.Linear(audio_dim, bottleneck_dim)
        self.aud_norm = nn.LayerNorm(bottleneck_dim)
        self.img_up = nn.Linear(bottleneck_dim, dim)
        self.aud_up = nn.Linear(bottleneck_dim, audio_dim)
        self.img_gate = nn.Parameter(torch.zeros(1))
        self.aud_gate = nn.Parameter(torch.zeros(1))

    def forward(self, img: torch.Tensor, aud: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # img: [B*T, Lv, Dv] (T frames of each clip are consecutive); aud: [B, La, Da]
        B = aud.shape[0]
        v = self.img_norm(self.img_down(img))  # [B*T, Lv, d]
        a = self.aud_norm(self.aud_down(aud))  # [B, La, d]
        v_clip = v.reshape(B, -1, v.shape[-1]).mean(1, keepdim=True)  # [B, 1, d]: over frames and tokens
        a_clip = a.mean(1, keepdim=True)  # [B, 1, d]
        a_to_v = a_clip.repeat_interleave(img.shape[0] // B, dim=0)  # [B*T, 1, d]
        img = img + torch.tanh(self.img_gate) * F.gelu(self.img_up(v + a_to_v))  # [B*T, Lv, D]
        aud = aud + torch.tanh(self.aud_gate) * F.gelu(self.aud_up(a + v_clip))  # [B, La, D]
        return img, aud
