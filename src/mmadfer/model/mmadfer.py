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
from .frames import TimmFrameEncoder
from .fusion import FusionBottleneck, fusion_schedule
from .temporal import TemporalMeanPool, TemporalTransformer

__all__ = ["MMADFER", "build_encoder", "modality_dropout"]

#: Parameter-name prefixes that the reference recipe trains; everything else (patch embeddings, CLS tokens, blocks,
#: final norms) stays frozen.
TRAINABLE_PREFIXES = ("vision.pos_embed", "vision.prompts", "vision.prompt_updates", "audio.pos_embed",
                      "audio.prompts", "audio.prompt_updates", "fusion.", "proj.", "audio_proj.", "temporal.", "head.")


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
        self.use_video = cfg.modality in ("av", "video")
        self.use_audio = cfg.modality in ("av", "audio")
        self.vision = build_encoder(cfg, "vision") if self.use_video else None
        self.audio = build_encoder(cfg, "audio") if self.use_audio else None
        v_dim = self.vision.embed_dim if self.vision is not None else None
        a_dim = self.audio.embed_dim if self.audio is not None else None
        self.schedule = fusion_schedule(cfg.vision.depth, cfg.audio.depth) if cfg.token_fusion else []
        self.fusion = nn.ModuleList(FusionBottleneck(v_dim, cfg.fusion_dim, audio_dim=a_dim) for _ in self.schedule) \
            if cfg.token_fusion else None
        # One projection after the sum when the widths agree (the reference); one per modality when they differ.
        self.proj = nn.Linear(v_dim or a_dim, cfg.temporal_dim)
        self.audio_proj = nn.Linear(a_dim, cfg.temporal_dim) if v_dim and a_dim and v_dim != a_dim else None
        if cfg.temporal == "transformer":
            self.temporal = TemporalTransformer(cfg.temporal_dim, cfg.temporal_depth, cfg.temporal_heads,
                                                cfg.temporal_head_dim, cfg.temporal_mlp_dim, cfg.num_frames)
        else:
            self.temporal = TemporalMeanPool()
        self.head = nn.Linear(cfg.temporal_dim, cfg.num_classes)
        self.set_trainable("reference")

    # ------------------------------------------------------------------------------------------------------------
    def encode(self, video: torch.Tensor | None, audio: torch.Tensor | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Run both encoders; return the per-frame features ``[B, T, Dv]`` and the audio feature ``[B, Da]``.

        ViT encoders advance together through :attr:`schedule` (:func:`~mmadfer.model.fusion.fusion_schedule`): each
        runs its blocks up to the next meeting point, the fusion bottleneck exchanges, then the prompt updates due at
        those blocks are added. With equal depths that is, after every block ``i``: both blocks, fusion ``i``,
        prompt updates ``i`` (the reference order).
        """
        B = video.shape[0] if video is not None else audio.shape[0]
        if self.vision is not None:
            T = video.shape[1]
            if video.dtype == torch.uint8:
                video = video.float().div_(255)
            video = video.flatten(0, 1)  # [B*T, 3, H, W]
        if not self.schedule:  # each encoder on its own (no token exchange): late fusion
            v = self.vision(video).view(B, T, -1) if self.vision is not None else None  # [B, T, Dv]
            return v, (self.audio(audio) if self.audio is not None else None)  # [B, Da]
        v = self.vision.embed(video)  # [B*T, 1+Pv+prompts, Dv]
        a = self.audio.embed(audio)  # [B, 1+Pa+prompts, Da]
        v_next = a_next = 0
        for i, (v_end, a_end) in enumerate(self.schedule):
            v, v_next = self.vision.run_blocks(v, v_next, v_end)
            a, a_next = self.audio.run_blocks(a, a_next, a_end)
            v, a = self.fusion[i](v, a)
            v = self.vision.update_prompts(v, v_end)
            a = self.audio.update_prompts(a, a_end)
        v_cls = self.vision.norm(v[:, 0]).view(B, T, -1)  # [B, T, Dv]
        a_cls = self.audio.norm(a[:, 0])  # [B, Da]
        return v_cls, a_cls

    def forward_features(self, video: torch.Tensor | None, audio: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """Intermediate features: ``fused_frames`` [B, T, temporal_dim] and ``clip`` [B, temporal_dim]."""
        v_cls, a_cls = self.encode(video, audio)
        if self.training and self.cfg.modality_dropout and v_cls is not None and a_cls is not None:
            v_cls, a_cls = modality_dropout(v_cls, a_cls, self.cfg.modality_dropout)
        if v_cls is None:
            fused = self.proj(a_cls.unsqueeze(1))  # [B, 1, temporal_dim]: audio-only has one "frame"
        elif a_cls is None:
            fused = self.proj(v_cls)  # [B, T, temporal_dim]
        elif self.audio_proj is None:
            fused = self.proj(v_cls + a_cls.unsqueeze(1))  # [B, T, temporal_dim]
        else:
            fused = self.proj(v_cls) + self.audio_proj(a_cls).unsqueeze(1)  # [B, T, temporal_dim]
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


def build_encoder(cfg: ModelConfig, side: str) -> PromptedViT | TimmFrameEncoder:
    """The ``side`` (``'vision'`` or ``'audio'``) encoder that ``cfg`` names."""
    enc = cfg.vision if side == "vision" else cfg.audio
    in_chans = 3 if side == "vision" else 1
    if not enc.is_vit:
        return TimmFrameEncoder(enc.timm, in_chans=in_chans)
    size = (cfg.img_size,) * 2 if side == "vision" else (cfg.audio_frames, cfg.audio_mel_bins)
    return PromptedViT(input_size=size, in_chans=in_chans, patch_size=enc.patch_size, embed_dim=enc.embed_dim,
                       depth=enc.depth, num_heads=enc.num_heads, mlp_ratio=enc.mlp_ratio,
                       drop_path_rate=cfg.drop_path_rate, num_prompts=cfg.n_prompt_tokens,
                       prompts_per_group=cfg.prompts_per_group, progressive=cfg.prompt_mode == "progressive")


def modality_dropout(v: torch.Tensor, a: torch.Tensor, p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Training only: per clip, zero the face features with probability ``p`` or the audio feature with probability
    ``p`` (never both), so the model learns to answer from one modality (silent clips, faces out of view)."""
    # v: [B, T, Dv]; a: [B, Da]
    u = torch.rand(v.shape[0], device=v.device)  # [B]
    keep_v = (u >= p).to(v.dtype)  # drop the face when u < p
    keep_a = ((u < p) | (u >= 2 * p)).to(a.dtype)  # drop the audio when p <= u < 2p
    return v * keep_v[:, None, None], a * keep_a[:, None]
