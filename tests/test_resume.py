"""A training run killed with SIGKILL in the middle of an epoch and resumed ends with exactly the weights of a run
that was never interrupted (CPU), and damaged states are refused by name."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from safetensors.torch import load_file

from mmadfer.data.synthetic import write_synthetic_dataset

TRAIN = [sys.executable, "-m", "mmadfer.cli", "train", "--config", "synthetic", "--epochs", "3",
         "--set", "model.drop_path_rate=0.1",  # random drop-path masks: the RNG must be restored too
         "--set", "train.checkpoint_every_steps=2", "--set", "train.tensorboard=false"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("resume") / "synth"
    write_synthetic_dataset(root, 80, size=32, raw=False)  # fold 1: 64 train clips = 8 batches per epoch
    return root


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "2", "PYTHONUNBUFFERED": "1"}


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_is_bit_identical(data, tmp_path):
    ref, killed = tmp_path / "uninterrupted", tmp_path / "killed"
    done = subprocess.run(TRAIN + ["--data", str(data), "--out", str(ref), "--num-workers", "0"], env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    # the same run with 2 loader workers, killed as soon as the first mid-epoch state of epoch 2 is committed
    marker = killed / "checkpoints" / "state-0001-0000002.pt.sha256"
    proc = subprocess.Popen(TRAIN + ["--data", str(data), "--out", str(killed), "--num-workers", "2"], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"training ended before it could be killed:\n{err[-3000:]}"
    assert not (killed / "final.safetensors").exists()
    states = sorted(p.name for p in (killed / "checkpoints").glob("state-*.pt"))
    assert states and states[-1].startswith("state-0001-") and not states[-1].endswith("-0000000.pt"), states

    resumed = subprocess.run([sys.executable, "-m", "mmadfer.cli", "train", "--out", str(killed), "--resume",
                              "--num-workers", "0"], env=_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stderr and "(epoch 2, batch " in resumed.stderr

    a, b = load_file(ref / "final.safetensors"), load_file(killed / "final.safetensors")
    assert a.keys() == b.keys()
    different = [k for k in a if not (a[k] == b[k]).all()]
    assert not different, f"weights differ after resume: {different[:5]}"
    la, lb = pd.read_csv(ref / "log.csv"), pd.read_csv(killed / "log.csv")
    assert la["train_loss"].tolist() == lb["train_loss"].tolist() and len(la) == 3
    assert la["test_uar"].tolist()[-1] == lb["test_uar"].tolist()[-1]


def test_resume_refuses_a_damaged_state_and_a_changed_config(data, tmp_path, capsys):
    from mmadfer.cli import main

    out = tmp_path / "run"
    args = ["train", "--config", "synthetic", "--data", str(data), "--out", str(out),
            "--set", "train.tensorboard=false", "--num-workers", "0"]
    assert main(args + ["--epochs", "1"]) == 0  # a finished run of one epoch
    assert main(args + ["--epochs", "1"]) == 2  # the same folder without --resume: refused
    assert main(args + ["--epochs", "1", "--resume"]) == 0  # finished: reported, not retrained
    (out / "final.safetensors").unlink()
    assert main(args + ["--epochs", "2", "--resume"]) == 2  # 2 epochs: the config differs from the saved state's
    state = sorted((out / "checkpoints").glob("state-*.pt"))[-1]
    raw = bytearray(state.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    state.write_bytes(bytes(raw))
    capsys.readouterr()
    assert main(args + ["--epochs", "1", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "corrupt or truncated" in err and str(state) in err
