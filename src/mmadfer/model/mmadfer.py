"""MMA-DFER: two frozen unimodal ViTs adapted jointly with prompts, a fusion bottleneck and a temporal transformer.

Chumachenko, Iosifidis, Gabbouj, "MMA-DFER: MultiModal Adaptation of unimodal models for Dynamic Facial Expression
Recognition in-the-wild", CVPR Workshops 2024 (arXiv 2404.09010). The forward pass reproduces the authors' reference
implementation to fp32 round-off (see ``tests/test_golden.py``).
"""
from __future__ import annotations

from typing import Iterator

import torch
from torch import nn

from ..config import ModelConfig
from .encoder import PromptedViT
from .fusion import FusionBottleneck
from .temporal import TemporalMeanPool, TemporalTransformer

__all__ = ["MMADFER"]

#: Parameter-name prefixes that the reference recipe trains; everything else (patch embeddings, CLS tokens, blocks,
#: final norms) stays frozen.
TRAINABLE_PREFIXES = ("vision.pos_embed", "vision.prompts", "vision.prompt_updates", "audio.pos_embed",
                      "audio.prompts", "audio.prompt_updates", "fusion.", "proj.", "temporal.", "head.")


class MMADFER(nn.Module):
    """Audio-visual expression classifier.

    ``forward(video, audio)`` takes ``video`` ``[B, T, 3, H, W]`` (float in [0, 1], or uint8 in [0, 255], which is
    divided by 255 here so that loaders can ship 4× fewer bytes) and ``audio`` ``[B, 1, 512, 128]`` (a normalised
    fbank; see :func:`mmadfer.audio_features`), and returns logits ``[B, num_classes]``.

    The ablation switches of the paper are config fields: ``prompt_mode``, ``fusion``, ``temporal`` and ``modality``.
    The reference freeze policy is applied on construction; see :meth:`set_trainable`.
    """

    def __init__(self, cfg: ModelConfig | dict | None = None, **overrides):
        super().__init__()
        cfg = ModelConfig.from_dict(cfg) if isinstance(cfg, dict) else (cfg or ModelConfig())
        self.cfg = cfg = cfg.replace(**overrides) if overrides else cfg
        vit = dict(patch_size=cfg.patch_size, embed_dim=cfg.embed_dim, depth=cfg.depth, num_heads=cfg.num_heads,
                   mlp_ratio=cfg.mlp_ratio, drop_path_rate=cfg.drop_path_rate, num_prompts=cfg.n_prompt_tokens,
                   prompts_per_group=cfg.prompts_per_group, progressive=cfg.prompt_mode == "progressive")
        self.use_video = cfg.modality in ("av", "video")
        self.use_audio = cfg.modality in ("av", "audio")
        self.vision = PromptedViT(input_size=(cfg.img_size,) * 2, in_chans=3, **vit) if self.use_video else None
        self.audio = PromptedViT(input_size=(cfg.audio_frames, cfg.audio_mel_bins), in_chans=1, **vit) \
            if self.use_audio else None
        self.fusion = nn.ModuleList(FusionBottleneck(cfg.embed_dim, cfg.fusion_dim) for _ in range(cfg.depth)) \
            if (cfg.fusion and cfg.modality == "av") else None
        self.proj = nn.Linear(cfg.embed_dim, cfg.temporal_dim)
        if cfg.temporal == "transformer":
            self.temporal = TemporalTransformer(cfg.temporal_dim, cfg.temporal_depth, cfg.temporal_heads,
                                                cfg.temporal_head_dim, cfg.temporal_mlp_dim, cfg.num_frames)
        else:
            self.temporal = TemporalMeanPool()
        self.head = nn.Linear(cfg.temporal_dim, cfg.num_classes)
        self.set_trainable("reference")

    # ------------------------------------------------------------------------------------------------------------
    def encode(self, video: torch.Tensor | None, audio: torch.Tensor | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Run both encoders in lockstep; return the per-frame CLS ``[B, T, D]`` and audio CLS ``[B, D]`` features.

        After block ``i`` of each encoder comes the fusion bottleneck ``i``, then the prompt updates due at ``i``.
        """
        v = a = None
        if self.vision is not None:
            B, T = video.shape[:2]
            if video.dtype == torch.uint8:
                video = video.float().div_(255)
            v = self.vision.embed(video.flatten(0, 1))  # [B*T, 1+Pv+prompts, D]
        if self.audio is not None:
            a = self.audio.embed(audio)  # [B, 1+Pa+prompts, D]
        for i in range(self.cfg.depth):
            if v is not None:
                v = self.vision.blocks[i](v)
            if a is not None:
                a = self.audio.blocks[i](a)
            if self.fusion is not None:
                v, a = self.fusion[i](v, a)
            if v is not None:
                v = self.vision.update_prompts(v, i)
            if a is not None:
                a = self.audio.update_prompts(a, i)
        v_cls = self.vision.norm(v[:, 0]).view(B, T, -1) if v is not None else None  # [B, T, D]
        a_cls = self.audio.norm(a[:, 0]) if a is not None else None  # [B, D]
        return v_cls, a_cls

    def forward_features(self, video: torch.Tensor | None, audio: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """Intermediate features: ``fused_frames`` [B, T, temporal_dim] and ``clip`` [B, temporal_dim]."""
        v_cls, a_cls = self.encode(video, audio)
        if v_cls is None:
            frames = a_cls.unsqueeze(1)  # [B, 1, D]: audio-only has one "frame"
        elif a_cls is None:
            frames = v_cls  # [B, T, D]
        else:
            frames = v_cls + a_cls.unsqueeze(1)  # [B, T, D]
        fused = self.proj(frames)  # [B, T, temporal_dim]
        return {"fused_frames": fused, "clip": self.temporal(fused)}  # clip: [B, temporal_dim]

    def forward(self, video: torch.Tensor | None, audio: torch.Tensor | None) -> torch.Tensor:
        return self.head(self.forward_features(video, audio)["clip"])  # [B, num_classes]

    # ------------------------------------------------------------------------------------------------------------
    def set_trainable(self, policy: str = "reference") -> "MMADFER":
        """Choose which parameters train.

        ``'reference'``: the paper's recipe: prompts and their updates, both positional embeddings, the fusion layers
        and gates, the projection, the temporal head and the classifier (7,632,415 parameters for the 7-class 224 px
        model); the encoders' patch embeddings, CLS tokens, blocks and final norms are frozen.
        ``'all'``: full fine-tuning. ``'head'``: only the classifier (linear probe). ``'temporal'``: the projection,
        the temporal head and the classifier (fine-tuning a trained model on few clips).
        """
        if policy not in ("reference", "all", "head", "temporal"):
            raise ValueError(f"policy must be 'reference', 'all', 'head' or 'temporal', got {policy!r}")
        for name, p in self.named_parameters():
            if policy == "all":
                p.requires_grad_(True)
            elif policy == "head":
                p.requires_grad_(name.startswith("head."))
            elif policy == "temporal":
                p.requires_grad_(name.startswith(("proj.", "temporal.", "head.")))
            else:
                p.requires_grad_(name.startswith(TRAINABLE_PREFIXES))
        self.trainable_policy = policy
        return self

    def named_trainable_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        return ((n, p) for n, p in self.named_parameters() if p.requires_grad)

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        """The parameters the optimizer updates, by name: what :meth:`set_trainable` selected."""
        return dict(self.named_trainable_parameters())

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def no_weight_decay(self) -> set[str]:
        """Names that are conventionally excluded from weight decay: 1-D tensors, prompts, positional embeddings."""
        return {n for n, p in self.named_parameters()
                if p.ndim <= 1 or "prompt" in n or "pos_embed" in n or n.endswith("cls_token")}

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.cfg.labels
