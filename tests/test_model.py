"""Model unit tests on tiny configs: shapes, gradients, freeze policy, ablation switches."""
from __future__ import annotations

import pytest
import torch

import mmadfer
from mmadfer import ModelConfig


def _inputs(cfg: ModelConfig, batch: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    video = torch.rand(batch, cfg.num_frames, 3, cfg.img_size, cfg.img_size, generator=g)
    audio = torch.randn(batch, 1, cfg.audio_frames, cfg.audio_mel_bins, generator=g)
    return video, audio


def _open_gates(model: mmadfer.MMADFER, value: float = 0.5) -> None:
    """Gates start at 0 (fusion is a no-op at init); open them so fusion changes outputs and passes gradients."""
    if model.fusion is not None:
        with torch.no_grad():
            for f in model.fusion:
                f.img_gate.fill_(value)
                f.aud_gate.fill_(-value)


def test_tiny_is_small_and_forward_backward_is_finite():
    torch.manual_seed(0)
    cfg = ModelConfig.tiny(num_classes=5)
    model = mmadfer.MMADFER(cfg)
    assert 100_000 < model.num_parameters() < 1_000_000
    _open_gates(model)
    video, audio = _inputs(cfg)
    logits = model(video, audio)
    assert logits.shape == (2, 5) and torch.isfinite(logits).all()
    logits.logsumexp(-1).sum().backward()
    trainable = model.trainable_parameters()
    for name, p in model.named_parameters():
        if name in trainable:
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, f"frozen parameter {name} received a gradient"


def test_reference_freeze_policy_counts():
    """The reference's trainable set for C=7 at 224 px is 7,632,415 parameters, of which 2,048 are two LayerNorms
    (`temporal_net...fn.norm2`) that its forward never reads (tests/test_golden.py proves the outputs match
    without them). mmadfer does not carry dead weights, so it trains exactly the other 7,630,367."""
    model = mmadfer.MMADFER(ModelConfig.reference(num_classes=7, img_size=224))
    unused_norm2 = 2 * 2 * 512  # attention and MLP wrappers, weight + bias each, dim 512
    assert model.num_parameters(trainable_only=True) == 7_632_415 - unused_norm2
    # reference total 179,312,147 includes two unused pretraining heads (12 and 1000 classes) and the norm2s
    assert model.num_parameters() == 179_312_147 - (12 * 768 + 12) - (1000 * 768 + 1000) - unused_norm2
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert "vision.patch_embed.proj.weight" in frozen and "audio.blocks.11.mlp.fc2.weight" in frozen
    assert "vision.cls_token" in frozen and "audio.norm.weight" in frozen
    assert {"vision.pos_embed", "audio.prompts", "vision.prompt_updates.1", "fusion.11.aud_gate",
            "proj.weight", "temporal.cls_token", "head.bias"} <= set(model.trainable_parameters())


def test_set_trainable_policies():
    model = mmadfer.MMADFER(ModelConfig.tiny())
    assert set(model.set_trainable("head").trainable_parameters()) == {"head.weight", "head.bias"}
    assert model.set_trainable("all").num_parameters(True) == model.num_parameters()
    with pytest.raises(ValueError, match="policy"):
        model.set_trainable("everything")


ABLATIONS = [
    dict(prompt_mode="static"),
    dict(prompt_mode="none"),
    dict(fusion=False),
    dict(temporal="mean"),
    dict(modality="video"),
    dict(modality="audio"),
]


@pytest.mark.parametrize("change", ABLATIONS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_ablation_switch_changes_output_and_trainable_count(change):
    base_cfg = ModelConfig.tiny(num_classes=4)
    torch.manual_seed(0)
    base = mmadfer.MMADFER(base_cfg).eval()
    _open_gates(base)
    torch.manual_seed(0)
    variant = mmadfer.MMADFER(base_cfg.replace(**change)).eval()
    # give the variant every weight it shares with the base, so only the switch differs
    shared = {k: v for k, v in base.state_dict().items() if k in variant.state_dict()
              and variant.state_dict()[k].shape == v.shape}
    variant.load_state_dict(shared, strict=False)
    video, audio = _inputs(base_cfg)
    with torch.no_grad():
        y0, y1 = base(video, audio), variant(video, audio)
    assert y1.shape == y0.shape
    assert not torch.allclose(y0, y1, atol=1e-5), "the switch had no effect on the output"
    n0, n1 = base.num_parameters(True), variant.num_parameters(True)
    d, e = base_cfg.embed_dim, base_cfg.num_prompts
    expected = {
        "prompt_mode=static": n0 - 2 * e * d,  # the progressive updates (groups × per-group = all prompts) × 2 encoders
        "prompt_mode=none": n0 - 2 * (e * d + e * d + e * d),  # prompts, updates and their positions, both encoders
        "fusion=False": n0 - sum(p.numel() for p in base.fusion.parameters()),
        "temporal=mean": n0 - sum(p.numel() for p in base.temporal.parameters()),
        "modality=video": n0 - sum(p.numel() for p in base.fusion.parameters())
        - sum(p.numel() for p in base.audio.parameters() if p.requires_grad),
        "modality=audio": n0 - sum(p.numel() for p in base.fusion.parameters())
        - sum(p.numel() for p in base.vision.parameters() if p.requires_grad),
    }["-".join(f"{k}={v}" for k, v in change.items())]
    assert n1 == expected


def test_progressive_updates_land_in_their_prompt_slots_after_the_right_blocks():
    cfg = ModelConfig.tiny(depth=4, num_prompts=4, prompts_per_group=2)
    enc = mmadfer.MMADFER(cfg).vision
    L = 1 + enc.num_patches + 4
    assert enc.group_stride == 2
    assert enc.prompt_update(1, L) is None and enc.prompt_update(3, L) is None
    u0, u2 = enc.prompt_update(0, L), enc.prompt_update(2, L)
    assert torch.equal(u0[L - 4:L - 2], enc.prompt_updates[0]) and u0[: L - 4].abs().sum() == 0
    assert torch.equal(u2[L - 2:], enc.prompt_updates[1]) and u2[: L - 2].abs().sum() == 0


def test_fusion_mixes_clips_only_within_themselves():
    """Each clip's vision tokens see only its own audio summary (and vice versa): batch order is irrelevant."""
    torch.manual_seed(0)
    cfg = ModelConfig.tiny()
    model = mmadfer.MMADFER(cfg).eval()
    _open_gates(model)
    video, audio = _inputs(cfg, batch=3)
    with torch.no_grad():
        y = model(video, audio)
        y_perm = model(video[[2, 0, 1]], audio[[2, 0, 1]])
        y_mismatch = model(video, audio[[1, 2, 0]])
    torch.testing.assert_close(y_perm, y[[2, 0, 1]], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(y_mismatch, y, atol=1e-5)


def test_config_round_trips_through_dict_and_rejects_unknown_fields():
    cfg = ModelConfig.reference(num_classes=11, img_size=160, class_names=tuple("abcdefghijk"))
    again = ModelConfig.from_dict(cfg.to_dict())
    assert again == cfg and again.preprocess.img_size == 160
    with pytest.raises(ValueError, match="unknown field"):
        ModelConfig.from_dict({"num_clases": 7})
    with pytest.raises(ValueError, match="modality"):
        ModelConfig.tiny(modality="smell")
