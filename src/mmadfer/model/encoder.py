"""A frozen ViT encoder with learnable (progressive) prompt tokens: the unit that MMA-DFER adapts.

The encoder does not run its own blocks: :class:`mmadfer.model.mmadfer.MMADFER` steps the vision and audio encoders
through their blocks in lockstep so that the fusion bottleneck can exchange information after every block. This class
owns the parameters (timm key names, so MAE-Face and AudioMAE checkpoints load directly) and the per-step pieces:
token embedding, one block, and the progressive prompt update.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from timm.layers import PatchEmbed
from timm.models.vision_transformer import Block
from torch import nn

__all__ = ["PromptedViT"]


class PromptedViT(nn.Module):
    """ViT-B/16-style encoder whose token sequence is ``[CLS] + patches + prompts``.

    Args:
        input_size: (H, W) of the input image (a face frame, or the fbank as time × mel).
        in_chans: 3 for faces, 1 for the fbank image.
        num_prompts: prompt tokens appended after the patches (0 disables prompts).
        prompts_per_group: prompts updated together; groups are spread evenly over the blocks.
        progressive: add a learned update to each prompt group at the first block of its span (the paper's
            "progressive prompts"); otherwise the prompts are static input tokens.
    """

    def __init__(
        self,
        *,
        input_size: tuple[int, int],
        in_chans: int,
        patch_size: int = 16,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.0,
        num_prompts: int = 6,
        prompts_per_group: int = 3,
        progressive: bool = True,
    ):
        super().__init__()
        self.embed_dim = embed_dim
        self.depth = depth
        self.num_prompts = num_prompts
        self.prompts_per_group = prompts_per_group
        self.patch_embed = PatchEmbed(img_size=input_size, patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim)
        self.grid_size = self.patch_embed.grid_size
        num_tokens = 1 + self.patch_embed.num_patches + num_prompts
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_tokens, embed_dim))
        dpr = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]  # stochastic depth rule, as timm
        self.blocks = nn.ModuleList(
            Block(dim=embed_dim, num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=True, drop_path=dpr[i],
                  norm_layer=functools.partial(nn.LayerNorm, eps=1e-6))
            for i in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        if num_prompts:
            self.prompts = nn.Parameter(torch.randn(num_prompts, embed_dim) * embed_dim**-0.5)
        else:
            self.register_parameter("prompts", None)
        n_groups = num_prompts // prompts_per_group if (num_prompts and progressive) else 0
        self.prompt_updates = nn.ParameterList(
            nn.Parameter(torch.randn(prompts_per_group, embed_dim) * embed_dim**-0.5) for _ in range(n_groups)
        )
        self.group_stride = depth // n_groups if n_groups else 0
        self._init_weights()

    def _init_weights(self):
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        if self.num_prompts:  # the prompt positions are new: N(0, 1) as in the reference
            nn.init.normal_(self.pos_embed[:, -self.num_prompts:])
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @property
    def num_patches(self) -> int:
        return self.patch_embed.num_patches

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels (or fbank) to the input token sequence."""
        # x: [N, C, H, W]
        x = self.patch_embed(x)  # [N, P, D]
        tokens = [self.cls_token.expand(x.shape[0], -1, -1), x]
        if self.num_prompts:
            tokens.append(self.prompts.unsqueeze(0).expand(x.shape[0], -1, -1))  # [N, num_prompts, D]
        return torch.cat(tokens, dim=1) + self.pos_embed  # [N, 1 + P + num_prompts, D]

    def prompt_update(self, block_idx: int, num_tokens: int) -> torch.Tensor | None:
        """The additive update for the prompt group that starts at ``block_idx`` as a ``[num_tokens, D]`` tensor.

        Built by padding rather than written into a slice in place, which keeps autograd and torch.compile happy.
        """
        if not self.group_stride or block_idx % self.group_stride:
            return None
        g = block_idx // self.group_stride
        start = num_tokens - self.num_prompts + g * self.prompts_per_group
        return F.pad(self.prompt_updates[g], (0, 0, start, num_tokens - start - self.prompts_per_group))

    def update_prompts(self, x: torch.Tensor, block_idx: int) -> torch.Tensor:
        """Add the prompt-group update due after block ``block_idx`` (after that block's fusion, as the reference)."""
        upd = self.prompt_update(block_idx, x.shape[1])  # [L, D] or None
        return x if upd is None else x + upd

    def run_blocks(self, x: torch.Tensor, start: int, last: int) -> tuple[torch.Tensor, int]:
        """Blocks ``start..last`` (inclusive); the prompt updates due after each block but ``last`` are added here,
        the one after ``last`` by the caller, after that block's fusion. Returns the tokens and ``last + 1``."""
        # x: [N, L, D]
        for i in range(start, last + 1):
            x = self.blocks[i](x)
            if i < last:
                x = self.update_prompts(x, i)
        return x, last + 1

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Unimodal pass (no fusion): the final-norm CLS feature, ``[N, D]``."""
        x, _ = self.run_blocks(self.embed(x), 0, self.depth - 1)
        return self.norm(self.update_prompts(x, self.depth - 1))[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [N, C, H, W] -> the CLS feature [N, D] (the encoder alone, as in late fusion)
        return self.forward_features(x)
