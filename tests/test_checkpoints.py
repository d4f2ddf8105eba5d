"""Checkpoint import/export: safety of pickled containers, strict loading, MAE encoders, our own format."""
from __future__ import annotations

import json
import os
import pickle
import re
import zipfile

import pytest
import torch
from reference import save_reference_container

import mmadfer
from mmadfer import CheckpointError, ModelConfig
from mmadfer.checkpoints import convert_official_state_dict, read_checkpoint_metadata

# ------------------------------------------------------------------------------------------------ malicious pickles


class _RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _RunsEval:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.mark.parametrize("payload, global_name", [(_RunsShell, "system"), (_RunsEval, "builtins.eval")])
def test_malicious_checkpoint_is_refused_without_side_effects(tmp_path, payload, global_name):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"module.x": torch.zeros(1)}, "recorder": payload(marker)}, path)
    with pytest.raises(CheckpointError) as err:
        mmadfer.load_official_checkpoint(path)
    assert global_name in str(err.value) and str(path) in str(err.value)
    assert "refused" in str(err.value)
    assert not marker.exists(), "code from the checkpoint was executed"


def test_plain_pickle_file_is_refused_without_side_effects(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil_legacy.pth"
    path.write_bytes(pickle.dumps(_RunsShell(marker)))
    with pytest.raises(CheckpointError):
        mmadfer.load_official_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("content, reason", [(b"", "empty"), (b"not a checkpoint at all", "not a readable")])
def test_garbage_files_are_named(tmp_path, content, reason):
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=reason) as err:
        mmadfer.load_model(path)
    assert err.value.path == str(path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        mmadfer.load_model(tmp_path / "nope.safetensors")


# ------------------------------------------------------------------------------------------------ reference format


def _tiny_reference_sd(model: mmadfer.MMADFER) -> dict[str, torch.Tensor]:
    """Invert the conversion for a tiny model: reference key names, so the import path is exercised end to end."""
    from mmadfer.checkpoints import _OFFICIAL_RENAMES  # noqa: F401  (documents what is being inverted)

    inverse = {}
    for name, t in model.state_dict().items():
        ref = name
        for a, b in (("vision.", "image_encoder."), ("audio.", "audio_model."), ("proj.", "vision_proj."),
                     ("head.", "our_classifier.")):
            if name.startswith(a):
                ref = b + name[len(a):]
        ref = ref.replace("image_encoder.prompts", "image_encoder.learnable_prompts_init")
        ref = ref.replace("audio_model.prompts", "audio_model.learnable_prompts_init")
        ref = ref.replace("prompt_updates", "learnable_prompts_progr")
        if name.startswith("fusion."):
            i, rest = name.split(".")[1], ".".join(name.split(".")[2:])
            ref = {
                "img_down": f"image_encoder.temporal_pre.{i}", "img_norm": f"image_encoder.temporal_pre_norm.{i}",
                "aud_down": f"image_encoder.audio_proj_pre.{i}.0", "aud_norm": f"image_encoder.audio_proj_pre.{i}.1",
                "img_up": f"image_encoder.temporal_att_post.{i}.0", "aud_up": f"audio_model.temporal_att_post.{i}.0",
                "img_gate": f"image_encoder.all_gate.{i}", "aud_gate": f"audio_model.all_gate.{i}",
            }[rest.split(".")[0]] + ("." + rest.split(".", 1)[1] if "." in rest else "")
        if name.startswith("temporal."):
            lt = "temporal_net.temporal_transformer.layers."
            ref = (name.replace("temporal.cls_token", "temporal_net.cls_token")
                   .replace("temporal.pos_embed", "temporal_net.pos_embedding"))
            for a, b in ((".attn_norm.", ".0.fn.norm."), (".attn.to_out.", ".0.fn.fn.to_out.0."),
                         (".attn.", ".0.fn.fn."), (".mlp_norm.", ".1.fn.norm."), (".fc1.", ".1.fn.fn.net.0."),
                         (".fc2.", ".1.fn.fn.net.3.")):
                if a in ref:
                    ref = ref.replace("temporal.layers.", lt).replace(a, b)
                    break
        inverse[ref] = t.clone()
    return inverse


def test_reference_keys_convert_to_exactly_our_keys():
    torch.manual_seed(0)
    model = mmadfer.MMADFER(ModelConfig.tiny())
    ref = _tiny_reference_sd(model)
    ref["image_encoder.head.weight"] = torch.zeros(12, 64)  # unused heads and norm2s are dropped, by name
    ref["temporal_net.temporal_transformer.layers.0.0.fn.norm2.weight"] = torch.ones(64)
    converted = convert_official_state_dict({"module." + k: v for k, v in ref.items()})
    assert converted.keys() == model.state_dict().keys()
    assert all(torch.equal(converted[k], v) for k, v in model.state_dict().items())


def test_reference_container_with_a_missing_key_is_refused_and_names_it(tmp_path):
    from reference import reference_state_dict

    sd = reference_state_dict(check_sums=False)
    del sd["image_encoder.all_gate.3"]
    sd["image_encoder.some_new_layer.weight"] = torch.zeros(3)
    path = save_reference_container(sd, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError) as err:
        mmadfer.load_official_checkpoint(path)
    msg = str(err.value)
    assert "missing" in msg and "fusion.3.img_gate" in msg
    assert "unexpected" in msg and "some_new_layer" in msg


# ------------------------------------------------------------------------------------------------ MAE encoders


def _mae_checkpoint(path, *, in_chans: int, grid: tuple[int, int], dim: int = 64, depth: int = 2, seed: int = 0):
    """A synthetic MAE pretraining checkpoint with the real key names (encoder + decoder + mask token)."""
    from mmadfer.model.encoder import PromptedViT

    torch.manual_seed(seed)
    enc = PromptedViT(input_size=(grid[0] * 16, grid[1] * 16), in_chans=in_chans, embed_dim=dim, depth=depth,
                      num_heads=2, num_prompts=0)
    sd = {k: v for k, v in enc.state_dict().items()}
    sd["pos_embed"] = torch.randn(1, 1 + grid[0] * grid[1], dim)
    sd["mask_token"] = torch.zeros(1, 1, dim)
    sd["decoder_embed.weight"] = torch.zeros(32, dim)
    sd["decoder_pos_embed"] = torch.zeros(1, 1 + grid[0] * grid[1], 32)
    sd["decoder_blocks.0.norm1.weight"] = torch.ones(32)
    sd["decoder_pred.weight"] = torch.zeros(16 * 16 * in_chans, 32)
    torch.save({"model": sd, "epoch": 399}, path)
    return sd


def test_load_encoder_weights_resamples_positions_and_keeps_prompts(tmp_path):
    torch.manual_seed(1)
    model = mmadfer.MMADFER(ModelConfig.tiny(img_size=64))
    prompts_before = model.vision.prompts.detach().clone()
    prompt_pos_before = model.audio.pos_embed[:, -2:].detach().clone()
    vis = _mae_checkpoint(tmp_path / "mae_face.pth", in_chans=3, grid=(14, 14))  # 224 px pretraining
    aud = _mae_checkpoint(tmp_path / "audiomae.pth", in_chans=1, grid=(64, 8), seed=1)  # 1024 × 128 fbank
    mmadfer.load_encoder_weights(model, vision=tmp_path / "mae_face.pth", audio=tmp_path / "audiomae.pth")
    assert torch.equal(model.vision.blocks[1].mlp.fc2.weight, vis["blocks.1.mlp.fc2.weight"])
    assert torch.equal(model.audio.patch_embed.proj.weight, aud["patch_embed.proj.weight"])
    assert torch.equal(model.vision.prompts, prompts_before)
    assert torch.equal(model.audio.pos_embed[:, -2:], prompt_pos_before)
    assert model.vision.pos_embed.shape[1] == 1 + 16 + 2 and model.audio.pos_embed.shape[1] == 1 + 256 + 2
    assert torch.equal(model.audio.pos_embed[:, 0], aud["pos_embed"][:, 0])  # the CLS position is not resampled
    assert set(model.encoder_sources) == {"vision", "audio"} and len(model.encoder_sources["audio"]["sha256"]) == 64


def test_swapped_encoder_files_are_rejected_with_reason(tmp_path):
    model = mmadfer.MMADFER(ModelConfig.tiny())
    _mae_checkpoint(tmp_path / "audiomae.pth", in_chans=1, grid=(64, 8))
    with pytest.raises(CheckpointError, match=r"1 input channel.*swapped") as err:
        mmadfer.load_encoder_weights(model, vision=tmp_path / "audiomae.pth")
    assert "audiomae.pth" in str(err.value)


def test_encoder_with_wrong_depth_lists_missing_blocks(tmp_path):
    model = mmadfer.MMADFER(ModelConfig.tiny(depth=4, num_prompts=2, prompts_per_group=1))
    _mae_checkpoint(tmp_path / "mae_face.pth", in_chans=3, grid=(14, 14), depth=2)
    with pytest.raises(CheckpointError, match=r"missing: blocks\.2\."):
        mmadfer.load_encoder_weights(model, vision=tmp_path / "mae_face.pth")


# ------------------------------------------------------------------------------------------------ own format


def test_own_checkpoint_round_trip_is_exact_and_self_describing(tmp_path):
    torch.manual_seed(0)
    cfg = ModelConfig.tiny(num_classes=3, class_names=("calm", "happy", "angry"), modality="av")
    cfg.preprocess.audio_profile = "16k-mono"
    model = mmadfer.MMADFER(cfg)
    path = mmadfer.save_checkpoint(model, tmp_path / "run" / "model.safetensors", extra={"uar": 0.91})
    assert not list(path.parent.glob(".*tmp*")), "temporary file left behind"
    loaded = mmadfer.load_checkpoint(path)
    assert not loaded.training
    assert loaded.cfg == cfg and loaded.cfg.preprocess.audio_profile == "16k-mono"
    assert loaded.class_names == ("calm", "happy", "angry")
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    meta = read_checkpoint_metadata(path)
    assert meta["extra"] == {"uar": 0.91} and meta["complete"] is True


def test_trainable_only_checkpoint_rebuilds_from_public_encoders(tmp_path):
    torch.manual_seed(0)
    model = mmadfer.MMADFER(ModelConfig.tiny())
    _mae_checkpoint(tmp_path / "mae_face.pth", in_chans=3, grid=(14, 14))
    _mae_checkpoint(tmp_path / "audiomae.pth", in_chans=1, grid=(64, 8), seed=3)
    mmadfer.load_encoder_weights(model, vision=tmp_path / "mae_face.pth", audio=tmp_path / "audiomae.pth")
    with torch.no_grad():
        model.head.weight.add_(1.0)  # "training"
    path = mmadfer.save_checkpoint(model, tmp_path / "small.safetensors")
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        stored = set(f.keys())
    assert stored == set(model.trainable_parameters()), "only the trained tensors are stored"
    loaded = mmadfer.load_checkpoint(path)
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    (tmp_path / "audiomae.pth").unlink()
    with pytest.raises(CheckpointError, match="audio"):
        mmadfer.load_checkpoint(path)


def test_truncated_own_checkpoint_is_detected(tmp_path):
    path = mmadfer.save_checkpoint(mmadfer.MMADFER(ModelConfig.tiny()), tmp_path / "m.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated") as err:
        mmadfer.load_checkpoint(path)
    assert err.value.path == str(path)


def test_load_model_dispatches_on_format(tmp_path):
    model = mmadfer.MMADFER(ModelConfig.tiny())
    own = mmadfer.save_checkpoint(model, tmp_path / "own.safetensors")
    assert mmadfer.load_model(own).cfg == model.cfg
    assert zipfile.is_zipfile(save_reference_container(_tiny_reference_sd(model), tmp_path / "ref.pth"))
    ref = mmadfer.load_model(tmp_path / "ref.pth", num_heads=2, temporal_heads=2, temporal_head_dim=32)
    assert ref.cfg.num_heads == 2 and ref.cfg.temporal_head_dim == 32
    for k, v in model.state_dict().items():
        assert torch.equal(ref.state_dict()[k], v), k
    with torch.no_grad():
        x = (torch.rand(1, 16, 3, 32, 32), torch.randn(1, 1, 512, 128))
        torch.testing.assert_close(ref(*x), model.eval()(*x))


def test_checkpoints_say_what_they_were_trained_on(tmp_path):
    """Provenance: recorded by training (a synth folder is synthetic), kept through a re-save (calibrate), and
    "not recorded" where nothing says (the authors' .pth, an older checkpoint, an exported file)."""
    from mmadfer.data.synthetic import SYNTHETIC_MARKER
    from mmadfer.provenance import read_provenance
    from mmadfer.train.config import TrainConfig
    from mmadfer.train.engine import training_record

    model = mmadfer.MMADFER(ModelConfig.tiny(num_classes=4))
    labels = model.cfg.labels
    (tmp_path / "synth").mkdir()
    (tmp_path / "synth" / SYNTHETIC_MARKER).write_text("synthetic\n")
    folder = TrainConfig.preset("synthetic").replace(["data.dataset=folder", f"data.root={tmp_path / 'synth'}"])
    record = training_record(folder, labels)
    assert record["synthetic"] and not record["demo"] and record["dataset"] == "folder:synth"
    dfew = training_record(TrainConfig.preset("dfew").replace([f"data.root={tmp_path}", "data.fold=2"]), labels)
    assert dfew["dataset"] == "dfew" and dfew["fold"] == 2 and not dfew["synthetic"]

    path = mmadfer.save_checkpoint(model, tmp_path / "m.safetensors", trained_on=record)
    again = mmadfer.save_checkpoint(mmadfer.load_checkpoint(path), tmp_path / "again.safetensors")  # as calibrate
    for p in (path, again):
        prov = read_provenance(p, labels)
        assert prov["recorded"] and prov["synthetic"] and prov["classes"] == list(labels)
        assert "say nothing about real people" in prov["note"]
    rec = mmadfer.Recognizer.from_checkpoint(path, device="cpu", backend="torch", detector=None)
    assert rec.provenance["synthetic"] and rec.provenance["dataset"] == "folder:synth"

    old = read_provenance(mmadfer.save_checkpoint(model, tmp_path / "old.safetensors"), labels)
    ref = read_provenance(save_reference_container(_tiny_reference_sd(model), tmp_path / "ref.pth"), labels)
    for prov in (old, ref, read_provenance(tmp_path / "m.onnx", labels)):
        assert prov["dataset"] is None and not prov["recorded"] and not prov["synthetic"]
        assert prov["note"].startswith("training data not recorded")
    assert "authors' release" in ref["note"]


# ------------------------------------------------------------------------------------------------ hostile files
def _tiny_checkpoint(tmp_path, name="tiny.safetensors"):
    torch.manual_seed(0)
    return mmadfer.save_checkpoint(mmadfer.MMADFER(ModelConfig.tiny(num_classes=4)), tmp_path / name)


def _rewrite_config(src, dst, **changes):
    """The same tensors under a config whose fields were changed in the metadata (what a crafted file holds)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(src), framework="pt") as f:
        tensors, meta = {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata())
    cfg = json.loads(meta["config"])
    cfg.update(changes)
    meta["config"] = json.dumps(cfg)
    save_file(tensors, str(dst), metadata=meta)
    return dst


@pytest.mark.parametrize("changes, field", [
    ({"depth": 3000}, "depth=3000 is outside"),
    ({"embed_dim": 1e6}, "embed_dim=1000000.0 is not an integer"),
    ({"embed_dim": 1_000_000}, "embed_dim=1000000 is outside"),
    ({"num_classes": -3}, "num_classes=-3 is outside"),
    ({"mlp_ratio": float("nan")}, "mlp_ratio=nan is not a number"),
    ({"img_size": 2048, "patch_size": 4}, "img_size=2048 with patch_size=4 gives"),
])
def test_config_metadata_is_bounded_before_any_model_is_built(tmp_path, monkeypatch, changes, field):
    import mmadfer.checkpoints as ck

    bad = _rewrite_config(_tiny_checkpoint(tmp_path), tmp_path / "crafted.safetensors", **changes)
    built = []
    monkeypatch.setattr(ck, "MMADFER", lambda cfg: built.append(cfg))  # nothing may be built from it
    with pytest.raises(CheckpointError, match="crafted.safetensors: invalid model config: " + re.escape(field)):
        mmadfer.load_checkpoint(bad)
    assert built == []


def test_config_that_disagrees_with_the_tensors_is_named_before_building(tmp_path, monkeypatch):
    import mmadfer.checkpoints as ck

    bad = _rewrite_config(_tiny_checkpoint(tmp_path), tmp_path / "deeper.safetensors", depth=4, temporal_dim=96)
    monkeypatch.setattr(ck, "MMADFER", lambda cfg: pytest.fail("a model was built"))
    with pytest.raises(CheckpointError, match=r"deeper.safetensors: state dict does not fit the model; \d+ missing: "
                                              r"vision\.blocks\.2\..*shape mismatch: .*proj\.weight"):
        mmadfer.load_checkpoint(bad)


def test_reference_container_with_absurd_depth_is_refused_before_building(tmp_path, monkeypatch):
    import mmadfer.checkpoints as ck

    sd = {"module.image_encoder.blocks.2999.norm1.weight": torch.ones(1)}  # depth inferred from the key names
    path = tmp_path / "deep.pth"
    torch.save({"state_dict": sd}, path)
    monkeypatch.setattr(ck, "config_from_official_state_dict", lambda sd, **kw: ModelConfig.reference(depth=3000))
    monkeypatch.setattr(ck, "MMADFER", lambda cfg: pytest.fail("a model was built"))
    with pytest.raises(CheckpointError, match="deep.pth: invalid model config: depth=3000 is outside"):
        mmadfer.load_official_checkpoint(path)


def test_zip_bomb_is_refused_before_it_is_read(tmp_path, monkeypatch):
    """A torch.save archive whose pickle entry inflates to 128 MiB from under 1 MB (a real one: GBs): refused from the zip directory."""
    good = tmp_path / "good.pth"
    torch.save({"state_dict": {"module.x": torch.zeros(4)}}, good)
    bomb = tmp_path / "bomb.pth"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bomb, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("data.pkl"):
                entry = zipfile.ZipInfo(info.filename)
                entry.compress_type = zipfile.ZIP_DEFLATED
                with dst.open(entry, "w", force_zip64=True) as f:  # the pickle, then 128 MiB of deflated zeros
                    f.write(data)
                    chunk = b"\0" * (32 << 20)
                    for _ in range(4):
                        f.write(chunk)
            else:
                dst.writestr(info, data)
    assert bomb.stat().st_size < 1 << 20
    import mmadfer.checkpoints as ck

    monkeypatch.setattr(ck.torch.serialization, "get_unsafe_globals_in_checkpoint",
                        lambda p: pytest.fail("the archive was opened for unpickling"))
    with pytest.raises(CheckpointError, match=r"bomb.pth: refused: its zip entries declare 128 MiB uncompressed in "
                                              r"a 0.\d MiB file .*zip bomb"):
        mmadfer.load_model(bomb)
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="no state dict|not an MMA-DFER"):  # a small honest archive passes on
        mmadfer.load_model(good)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path, value):
    torch.manual_seed(0)
    model = mmadfer.MMADFER(ModelConfig.tiny(num_classes=4))
    with torch.no_grad():
        model.head.weight[1, 2] = value
    path = mmadfer.save_checkpoint(model, tmp_path / "damaged.safetensors")
    with pytest.raises(CheckpointError, match=r"damaged.safetensors: tensor 'head.weight' \(4, 64\) holds "
                                              + ("1 NaN and 0" if value != value else "0 NaN and 1")):
        mmadfer.load_checkpoint(path)
