"""Encoders by name and small students: configs, the fusion placement rule, weight layouts (MAE/timm/safetensors,
strict), old checkpoints unchanged, and a student as an ordinary checkpoint (train steps, predict, ONNX, auto)."""
from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file
from timm.models.vision_transformer import VisionTransformer

from mmadfer import CheckpointError, ModelConfig
from mmadfer.checkpoints import load_checkpoint, load_encoder_weights, save_checkpoint
from mmadfer.config import ENCODERS, EncoderConfig
from mmadfer.model.fusion import fusion_schedule
from mmadfer.model.mmadfer import MMADFER


def test_fusion_schedule_rule():
    assert fusion_schedule(12, 12) == [(i, i) for i in range(12)]  # the reference: after every block
    assert fusion_schedule(12, 4) == [(2, 0), (5, 1), (8, 2), (11, 3)]  # at the ends of equal spans
    assert fusion_schedule(4, 6) == [(0, 1), (1, 2), (2, 4), (3, 5)]
    assert fusion_schedule(1, 5) == [(0, 4)]


def test_configs_by_name_round_trip_and_old_configs_are_the_reference():
    ref = ModelConfig.reference()
    old = {k: v for k, v in ref.to_dict().items() if k not in ("vision_encoder", "audio_encoder", "modality_dropout")}
    assert ModelConfig.from_dict(old) == ref  # a checkpoint written before encoders had names
    assert ref.vision == ref.audio == ENCODERS["vit-base"]
    cfg = ModelConfig.tiny(vision_encoder="vit-mini-4", audio_encoder={"timm": "mobilenetv3_small_100"})
    assert cfg.vision == ENCODERS["vit-mini-4"] and cfg.audio.timm == "mobilenetv3_small_100" and not cfg.token_fusion
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown encoder 'nope'"):
        ModelConfig.tiny(vision_encoder="nope")
    with pytest.raises(ValueError, match="audio depth 3 is not divisible"):
        ModelConfig.tiny(audio_encoder=EncoderConfig(embed_dim=32, depth=3, num_heads=2), num_prompts=4)


def _timm_vit(depth: int, img: int, in_chans: int = 3, dim: int = 32) -> VisionTransformer:
    torch.manual_seed(1)
    return VisionTransformer(img_size=img, patch_size=16, in_chans=in_chans, embed_dim=dim, depth=depth,
                             num_heads=2, num_classes=10)


def test_encoder_weights_from_timm_mae_and_safetensors_layouts_strictly(tmp_path):
    cfg = ModelConfig.tiny(num_classes=3, vision_encoder=EncoderConfig(embed_dim=32, depth=2, num_heads=2),
                           audio_encoder=EncoderConfig(embed_dim=16, depth=1, num_heads=2), num_prompts=2)
    model = MMADFER(cfg)
    assert [f.img_down.in_features for f in model.fusion] == [32] and model.schedule == [(1, 0)]
    assert model.audio_proj is not None  # widths differ: one projection per modality
    vit = _timm_vit(depth=4, img=64)  # a timm ViT: deeper (first 2 blocks kept) and on a 4x4 grid (resampled)
    save_file(vit.state_dict(), str(tmp_path / "vit.safetensors"))
    audio_mae = _timm_vit(depth=1, img=(256, 128), in_chans=1, dim=16)  # AudioMAE: twice the frames, a decoder
    torch.save({"model": {**audio_mae.state_dict(), "decoder_embed.weight": torch.zeros(2, 2)}}, tmp_path / "a.pth")
    cfg_w = cfg.replace(vision_encoder=EncoderConfig(embed_dim=32, depth=2, num_heads=2,
                                                     weights=str(tmp_path / "vit.safetensors")))
    model = load_encoder_weights(MMADFER(cfg_w), audio=tmp_path / "a.pth")  # vision from the config's file
    torch.testing.assert_close(model.vision.blocks[1].mlp.fc2.weight, vit.blocks[1].mlp.fc2.weight)
    torch.testing.assert_close(model.audio.blocks[0].attn.qkv.weight, audio_mae.blocks[0].attn.qkv.weight)
    assert set(model.encoder_sources) == {"vision", "audio"}
    with pytest.raises(CheckpointError, match="RGB .*swapped"):  # an RGB file for the audio encoder
        load_encoder_weights(MMADFER(cfg), audio=tmp_path / "vit.safetensors")
    save_file(_timm_vit(depth=1, img=64).state_dict(), str(tmp_path / "short.safetensors"))
    with pytest.raises(CheckpointError, match="missing: blocks.1"):  # fewer blocks than the encoder: strict
        load_encoder_weights(MMADFER(cfg), vision=tmp_path / "short.safetensors")


@pytest.mark.slow
def test_timm_frame_encoder_weights_and_checkpoint_round_trip(tmp_path):
    cfg = ModelConfig.tiny(num_classes=3, vision_encoder="mobilenetv3-small", audio_encoder="mobilenetv3-small")
    net = timm.create_model("mobilenetv3_small_100", pretrained=False)  # what a timm checkpoint holds (classifier too)
    torch.save(net.state_dict(), tmp_path / "mnv3.pth")
    model = load_encoder_weights(MMADFER(cfg), vision=tmp_path / "mnv3.pth", audio=tmp_path / "mnv3.pth").eval()
    torch.testing.assert_close(model.vision.model.conv_stem.weight, net.conv_stem.weight)
    torch.testing.assert_close(model.audio.model.conv_stem.weight, net.conv_stem.weight.sum(1, keepdim=True))
    torch.save({"state_dict": {**net.state_dict(), "extra.weight": torch.zeros(1)}}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="unexpected: model.extra.weight"):
        load_encoder_weights(MMADFER(cfg), vision=tmp_path / "other.pth")
    video, audio = torch.rand(2, 16, 3, 32, 32), torch.randn(2, 1, 512, 128)
    path = save_checkpoint(model, tmp_path / "frames.safetensors")
    again = load_checkpoint(path)
    assert again.cfg == model.cfg
    with torch.no_grad():
        torch.testing.assert_close(again(video, audio), model(video, audio))


@pytest.fixture(scope="module")
def student_checkpoint(tmp_path_factory):
    """The ``vit-tiny`` student preset, a few optimisation steps on rendered synthetic clips, saved."""
    from mmadfer.data.synthetic import SYNTH_CLASSES, rendered_inputs

    cfg = ModelConfig.student("vit-tiny", num_classes=4, class_names=SYNTH_CLASSES, img_size=48)  # 48 px: fast
    torch.manual_seed(0)
    model = MMADFER(cfg).set_trainable("all").train()
    inputs = rendered_inputs(cfg, 4)
    video, audio = torch.cat([v for v, _ in inputs]), torch.cat([a for _, a in inputs])
    labels = torch.arange(4)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(3):
        loss = torch.nn.functional.cross_entropy(model(video, audio), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]  # an encoder by name trains
    return save_checkpoint(model.eval(), tmp_path_factory.mktemp("student") / "student.safetensors")


@pytest.mark.slow
def test_student_is_an_ordinary_checkpoint_predict_onnx_and_auto(student_checkpoint, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    from mmadfer.data.synthetic import make_astronaut_video
    from mmadfer.export.onnx import export_onnx
    from mmadfer.predict import Recognizer

    model = load_checkpoint(student_checkpoint)
    assert model.cfg.num_frames == 8 and model.cfg.preprocess.img_size == 48 and model.cfg.vision.depth == 6
    video = make_astronaut_video(tmp_path / "v.mp4", seconds=6.0, fps=10, size=96)
    torch_rec = Recognizer.from_checkpoint(student_checkpoint, device="cpu", detector=None, backend="torch",
                                           precision="fp32")
    df = torch_rec.predict_video(video)
    assert len(df) == 1 and df["label"].iloc[0] in model.cfg.labels
    onnx_path = export_onnx(model, tmp_path / "student.onnx")["fp32"]
    onnx_rec = Recognizer.from_checkpoint(onnx_path, device="cpu", detector=None)
    np.testing.assert_allclose(onnx_rec.predict_video(video)[[f"p_{c}" for c in model.cfg.labels]].to_numpy(),
                               df[[f"p_{c}" for c in model.cfg.labels]].to_numpy(), atol=1e-4)
    # auto as predict and serve run it (serve's jobs run this Recognizer): the int8 conversion is made, checked
    # against PyTorch on held-out clips and chosen when it is faster (here by a stub timing, ONNX Runtime only)
    from mmadfer.runtime import load
    from mmadfer.runtime.select import AGREEMENT_BAR

    monkeypatch.setattr(load, "CPU_CONVERSIONS", ("onnx-int8",))
    runner = load.load_runner("auto", student_checkpoint, device="cpu", cache_dir=tmp_path / "cache",
                              measure=lambda backend, runner, inputs: {"torch": 1.0, "onnx-int8": 0.1}[backend])
    agreement = load.load_runner("onnx-int8", student_checkpoint, cache_dir=tmp_path / "cache").agreement
    assert runner.backend == ("onnx" if agreement["top1_agreement"] >= AGREEMENT_BAR else "torch")
    auto = Recognizer(runner, device="cpu", detector=None)
    probs = [f"p_{c}" for c in model.cfg.labels]
    np.testing.assert_allclose(auto.predict_video(video)[probs].to_numpy(), df[probs].to_numpy(), atol=0.1)
