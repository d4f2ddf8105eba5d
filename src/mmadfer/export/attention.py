"""Encoder self-attention exported as one ONNX Runtime ``com.microsoft::Attention`` node.

Traced as is, a timm ``Attention`` becomes some twenty ONNX nodes: the QKV MatMul, reshapes, three transposes, a
split, two batched MatMuls and a softmax. ONNX Runtime runs them one by one, in fp32, and its dynamic quantiser can
only turn the QKV MatMul into int8. As one ``Attention`` node, ONNX Runtime runs its fused multi-head kernel (no
transposes materialised) and quantises the node to ``QAttention`` (int8 QKV projection), which speeds up the int8
model on a CPU (measured in BENCHMARKS.md).

Only the exported graph changes: :func:`fused_attention` swaps the blocks' attention modules for the duration of an
export and puts them back, and the swapped-in module computes exactly what timm's does. Graphs that must run outside
ONNX Runtime are exported without it (``export_onnx(..., portable=True)``).
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Attention
from torch import nn

__all__ = ["fused_attention", "ORT_DOMAIN"]

ORT_DOMAIN = "com.microsoft"


class _AttentionOp(torch.autograd.Function):
    """Multi-head self-attention with a packed QKV projection; exports as ``com.microsoft::Attention``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, num_heads: int) -> torch.Tensor:
        # x: [N, L, D]; weight: [D, 3D] (q | k | v, heads contiguous, as timm's qkv Linear); bias: [3D]
        N, L, D = x.shape
        qkv = torch.addmm(bias, x.reshape(N * L, D), weight)  # [N*L, 3D]
        q, k, v = qkv.view(N, L, 3, num_heads, D // num_heads).permute(2, 0, 3, 1, 4).unbind(0)  # [N, H, L, hd]
        out = F.scaled_dot_product_attention(q, k, v)  # [N, H, L, hd]
        return out.transpose(1, 2).reshape(N, L, D)  # [N, L, D]

    @staticmethod
    def symbolic(g, x, weight, bias, num_heads: int):
        out = g.op(f"{ORT_DOMAIN}::Attention", x, weight, bias, num_heads_i=num_heads)
        out.setType(x.type())  # same shape and dtype as x: the exporter cannot infer it for a contrib op
        return out


class _ExportAttention(nn.Module):
    """Stands in for a timm ``Attention`` during export (same call signature, same arithmetic)."""

    def __init__(self, attn: Attention):
        super().__init__()
        self.attn = attn

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
        a = self.attn
        return a.proj(_AttentionOp.apply(x, a.qkv.weight.t(), a.qkv.bias, a.num_heads))  # [N, L, D]


def _fusable(attn: nn.Module) -> bool:
    """Plain multi-head attention: no q/k norms, no output norm or gate, a biased QKV projection."""
    return (type(attn) is Attention and attn.qkv.bias is not None
            and all(isinstance(getattr(attn, n, None), (nn.Identity, type(None)))
                    for n in ("q_norm", "k_norm", "norm", "gate")))


@contextlib.contextmanager
def fused_attention(model: nn.Module) -> Iterator[int]:
    """Within the block, every fusable timm attention of ``model`` exports as one ``Attention`` node.

    Yields how many were swapped; the original modules are back in place on exit, even after an error.
    """
    owners = [(m, name) for m in model.modules() for name, child in m.named_children()
              if name == "attn" and _fusable(child)]
    saved = [getattr(m, name) for m, name in owners]
    try:
        for (m, name), attn in zip(owners, saved):
            setattr(m, name, _ExportAttention(attn))
        yield len(owners)
    finally:
        for (m, name), attn in zip(owners, saved):
            setattr(m, name, attn)
