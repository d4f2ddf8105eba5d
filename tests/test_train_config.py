"""TrainConfig: the reference recipe as defaults, YAML presets, dotted overrides, validation, resume comparison."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from mmadfer.train.config import (
    PRESETS, RUNTIME_FIELDS, TrainConfig, add_config_arguments, apply_overrides, config_from_args, parse_value,
)

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_the_reference_recipe():
    for cfg in (TrainConfig(), TrainConfig.preset("dfew"), TrainConfig.preset("mafw")):
        assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.scheduler) == (1e-4, 1e-2, "cosine")
        assert cfg.optim.decay_1d is True  # the reference decays every parameter
        assert (cfg.train.epochs, cfg.train.batch_size, cfg.train.seed, cfg.train.eval_every) == (25, 8, 1, 0)
        assert cfg.model.preset == "reference" and cfg.model.trainable == "reference"
    assert TrainConfig.preset("mafw").data.dataset == "mafw"
    mc = TrainConfig.preset("dfew").model.model_config(("a",) * 7)
    assert (mc.embed_dim, mc.depth, mc.img_size, mc.drop_path_rate, mc.num_classes) == (768, 12, 224, 0.1, 7)


@pytest.mark.parametrize("name", PRESETS)
def test_packaged_presets_load_from_their_files(name):
    packaged = ROOT / "src" / "mmadfer" / "configs" / f"{name}.yaml"  # the one copy (no top-level configs/)
    assert not (ROOT / "configs").exists()
    assert TrainConfig.preset(name) == TrainConfig.from_yaml(packaged)


def test_overrides_types_and_nesting():
    cfg = TrainConfig.preset("synthetic", ["optim.lr=3e-4", "model.modality=video", "train.compile=true",
                                           "model.preprocess.audio_profile=16k-mono", "data.root=2024",
                                           "optim.betas=[0.8, 0.9]", "data.options.audio_root=/x/wav"])
    assert cfg.optim.lr == pytest.approx(3e-4) and isinstance(cfg.optim.lr, float)
    assert cfg.model.arch["modality"] == "video" and cfg.train.compile is True
    assert cfg.data.root == "2024"  # a path, even when it looks like a number
    assert cfg.optim.betas == (0.8, 0.9)
    assert cfg.data.options == {"augment": "none", "audio_root": "/x/wav"}  # merged into the preset's options
    mc = cfg.model.model_config(["p", "q", "r"])
    assert mc.modality == "video" and mc.preprocess.audio_profile == "16k-mono"
    assert mc.preprocess.img_size == mc.img_size  # the profile follows the architecture
    assert mc.class_names == ("p", "q", "r")
    assert parse_value("'3e-4'") == "3e-4" and parse_value("null") is None and parse_value("1e-3") == 1e-3


@pytest.mark.parametrize("override, message", [
    ("optim.lrr=1", "optim.lrr"),
    ("model.nonsense=1", "model.nonsense"),
    ("model.modality=both", "modality"),
    ("train.precision=fp16", "train.precision"),
    ("data.dataset=imagenet", "data.dataset"),
    ("bogus.x=1", "bogus"),
    ("optim.lr", "section.key=value"),
    ("optim.lr.x=1", "optim.lr is not a section"),
    ("train.epochs=0", "train.epochs"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig.preset("synthetic", [override])


def test_yaml_round_trip_and_errors(tmp_path):
    cfg = TrainConfig.preset("dfew", ["data.root=/data/dfew", "model.fusion=false", "optim.decay_1d=false"])
    path = cfg.save(tmp_path / "config.yaml")
    assert TrainConfig.from_yaml(path) == cfg
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [1, 2\n")
    with pytest.raises(ValueError, match="bad.yaml"):
        TrainConfig.from_yaml(bad)
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        TrainConfig.from_yaml(tmp_path / "nope.yaml")


def test_differences_ignore_runtime_fields():
    a = TrainConfig.preset("dfew")
    b = a.replace(["data.num_workers=2", "train.compile=true", "run_dir=/elsewhere", "train.eval_every=5"])
    assert a.differences(b) == []
    assert {"data.num_workers", "train.compile", "run_dir"} <= RUNTIME_FIELDS
    c = a.replace(["optim.lr=2e-4", "model.temporal=mean"])
    assert a.differences(c) == ["model.temporal", "optim.lr"]


def test_command_line_shortcuts_win_over_set():
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    args = parser.parse_args(["--config", "synthetic", "--set", "optim.lr=1", "--lr", "0.5", "--data", "/d",
                              "--fold", "3", "--compile"])
    cfg = config_from_args(args)
    assert cfg.optim.lr == 0.5 and cfg.data.root == "/d" and cfg.data.fold == 3 and cfg.train.compile is True


def test_compile_is_auto_by_default_and_can_be_switched_off():
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    assert config_from_args(parser.parse_args(["--config", "dfew"])).train.compile == "auto"
    assert config_from_args(parser.parse_args(["--config", "dfew", "--no-compile"])).train.compile is False
    with pytest.raises(ValueError, match="train.compile"):
        TrainConfig.preset("dfew", ["train.compile=sometimes"])


def test_apply_overrides_does_not_mutate():
    d = {"optim": {"lr": 1}}
    assert apply_overrides(d, ["optim.lr=2"]) == {"optim": {"lr": 2}} and d == {"optim": {"lr": 1}}


def test_optimizer_groups_follow_decay_switch():
    from mmadfer.train.engine import build_model, build_optimizer

    cfg = TrainConfig.preset("synthetic", ["optim.decay_1d=false"])
    model = build_model(cfg, ("a", "b"), announce=False)
    opt, sched = build_optimizer(model, cfg, torch.device("cpu"))
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in opt.param_groups[0]["params"]}
    exempt = {names[id(p)] for p in opt.param_groups[1]["params"]}
    assert opt.param_groups[1]["weight_decay"] == 0.0 and opt.param_groups[0]["weight_decay"] == cfg.optim.weight_decay
    assert exempt == model.no_weight_decay() & set(model.trainable_parameters())
    assert decayed | exempt == set(model.trainable_parameters()) and not decayed & exempt
    assert opt.defaults["foreach"] is True  # CPU: the foreach implementation
    assert isinstance(sched, torch.optim.lr_scheduler.CosineAnnealingLR) and sched.T_max == cfg.train.epochs
    ref = TrainConfig.preset("synthetic")
    opt, _ = build_optimizer(build_model(ref, ("a", "b"), announce=False), ref, torch.device("cpu"))
    assert len(opt.param_groups) == 1  # the reference decays everything
