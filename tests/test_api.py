"""The public contract (DESIGN §4): names users and scripts rely on, and the CLI's command set."""
from __future__ import annotations

import subprocess
import sys

import pytest

import mmadfer
from mmadfer.cli import COMMANDS, build_parser

CONTRACT = ["ModelConfig", "MMADFER", "load_official_checkpoint", "load_encoder_weights", "save_checkpoint",
            "load_checkpoint", "kaldi_fbank", "read_clip", "Recognizer", "MediaError", "CheckpointError"]


@pytest.mark.parametrize("name", mmadfer.__all__)
def test_every_public_name_resolves(name):
    assert getattr(mmadfer, name) is not None


def test_contract_names_are_public():
    assert set(CONTRACT) <= set(mmadfer.__all__)


def test_every_documented_command_is_installed():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS)
    assert {"predict", "train", "evaluate", "cv", "prepare", "synth", "export", "demo", "bench"} <= set(COMMANDS)


def test_console_script_help_is_fast_and_lists_commands():
    out = subprocess.run([sys.executable, "-m", "mmadfer.cli", "--help"], capture_output=True, text=True, check=True)
    for name in COMMANDS:
        assert name in out.stdout


def test_bench_smoke_tiny_one_step(tmp_path, capsys):
    """Keeps `mmadfer bench` working (tiny model, one step); speeds are measured in BENCHMARKS.md, not here."""
    from mmadfer.cli import main

    out = tmp_path / "bench.json"
    rc = main(["bench", "--device", "cpu", "--size", "tiny", "--what", "infer,train,accuracy,cpu",
               "--infer-modes", "fp32@2,bf16@2", "--train-modes", "fp32@2", "--accuracy-modes", "bf16",
               "--cpu-modes", "torch-fp32",
               "--steps", "1", "--warmup", "0", "--agreement-clips", "2", "--json", str(out)])
    assert rc == 0
    import json

    result = json.loads(out.read_text())
    kinds = [(r["kind"], r["mode"]) for r in result["rows"]]
    assert kinds == [("infer", "fp32@2"), ("infer", "bf16@2"), ("train", "fp32@2"), ("accuracy", "bf16"),
                     ("cpu", "torch-fp32")]
    assert all(r["clips_per_s"] > 0 for r in result["rows"] if r["kind"] in ("infer", "train"))
    assert 0.0 <= result["rows"][3]["top1_agreement"] <= 1.0
    # fp32 against itself: the benchmark compares deterministic (eval-mode) models, so agreement is exact
    assert result["rows"][4]["random_max_rel_logit_err"] == 0.0 and result["rows"][4]["top1_agreement"] == 1.0
    assert "| infer | fp32@2 |" in capsys.readouterr().out


def test_outputs_get_normal_file_permissions(tmp_path):
    """Atomic writes go through mkstemp (owner-only); finished outputs must be shareable like any other file."""
    import os

    from mmadfer.io import atomic_write

    import mmadfer

    with atomic_write(tmp_path / "table.csv") as f:
        f.write("a,b\n")
    ck = mmadfer.save_checkpoint(mmadfer.MMADFER(mmadfer.ModelConfig.tiny()), tmp_path / "m.safetensors")
    mask = os.umask(0)
    os.umask(mask)
    for path in (tmp_path / "table.csv", ck):  # safetensors recreates its file owner-only: fixed after writing
        assert path.stat().st_mode & 0o777 == 0o666 & ~mask, path.name


def test_bench_mode_names():
    from mmadfer.bench import _parse_mode

    assert _parse_mode("fp32@8") == ("fp32", False, None, 8)
    assert _parse_mode("bf16+compile@64") == ("bf16", True, None, 64)
    assert _parse_mode("bf16+cudagraphs@16") == ("bf16", True, "reduce-overhead", 16)
    assert _parse_mode("fp8t+autotune@128") == ("fp8t", True, "max-autotune-no-cudagraphs", 128)
    assert _parse_mode("bf16+regional@32") == ("bf16", "regional", None, 32)
    with pytest.raises(ValueError, match="unknown flag 'compiled'"):
        _parse_mode("bf16+compiled@8")


def test_file_lock_makes_a_second_holder_wait(tmp_path):
    """Two converters of one checkpoint take turns: the second gets the lock only after the first lets go."""
    import threading
    import time

    from mmadfer.io import file_lock

    lock = tmp_path / "cache" / "model.lock"  # the folder is created on demand
    order = []
    held = threading.Event()

    def second():
        held.wait()
        with file_lock(lock):
            order.append("second")

    t = threading.Thread(target=second)
    t.start()
    with file_lock(lock):
        held.set()
        time.sleep(0.3)  # give the other thread every chance to barge in
        order.append("first")
    t.join(5)
    assert order == ["first", "second"]
