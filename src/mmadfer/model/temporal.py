"""Temporal heads: the multimodal temporal transformer of MMA-DFER, and a mean-pool ablation."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["TemporalTransformer", "TemporalMeanPool"]


class TemporalAttention(nn.Module):
    """Multi-head self-attention with separate query and key/value projections (no bias), as in the reference."""

    def __init__(self, dim: int, heads: int, dim_head: int):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [B, N, dim]
        B, N, _ = x.shape
        q = self.to_q(x)  # [B, N, inner]
        k, v = self.to_kv(x).chunk(2, dim=-1)  # 2 × [B, N, inner]
        q, k, v = (t.view(B, N, self.heads, -1).transpose(1, 2) for t in (q, k, v))  # [B, h, N, dh]
        out = F.scaled_dot_product_attention(q, k, v)  # [B, h, N, dh]
        return self.to_out(out.transpose(1, 2).reshape(B, N, -1))  # [B, N, dim]


class TemporalLayer(nn.Module):
    """Pre-norm transformer layer; the MLP uses the tanh-approximate GELU (the reference's choice)."""

    def __init__(self, dim: int, heads: int, dim_head: int, mlp_dim: int):
        super().__init__()
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = TemporalAttention(dim, heads, dim_head)
        self.mlp_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, mlp_dim)
        self.fc2 = nn.Linear(mlp_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [B, N, dim]
        x = x + self.attn(self.attn_norm(x))
        return x + self.fc2(F.gelu(self.fc1(self.mlp_norm(x)), approximate="tanh"))  # [B, N, dim]


class TemporalTransformer(nn.Module):
    """A learned CLS token attends over the per-frame fused features; its output (no final norm) is the clip feature."""

    def __init__(self, dim: int = 512, depth: int = 1, heads: int = 8, dim_head: int = 64, mlp_dim: int = 1024,
                 num_frames: int = 16):
        super().__init__()
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, num_frames + 1, dim))
        self.layers = nn.ModuleList(TemporalLayer(dim, heads, dim_head, mlp_dim) for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [B, T, dim] with T <= num_frames
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)  # [B, 1+T, dim]
        x = x + self.pos_embed[:, : x.shape[1]]
        for layer in self.layers:
            x = layer(x)
        return x[:, 0]  # [B, dim]


class TemporalMeanPool(nn.Module):
    """Ablation: average the per-frame features, no temporal modelling."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(1)  # [B, T, dim] -> [B, dim]
