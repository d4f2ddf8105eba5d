"""Resumable training state: atomic, checksummed, validated before use; random generators round-trip."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from mmadfer.errors import CheckpointError
from mmadfer.train.state import (
    STATE_FORMAT, capture_rng, latest_state, list_states, load_state, prune_states, restore_rng, save_state,
    state_path,
)


def _state(epoch=1, step=0) -> dict:
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 4)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=5)
    return {"format": STATE_FORMAT, "epoch": epoch, "step": step, "global_step": 7,
            "model": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "rng": [capture_rng()],
            "history": [{"epoch": 1, "train_loss": 0.5}], "epoch_stats": {"loss_sum": 1.0, "count": 2},
            "config": {"train": {"epochs": 5}}, "world_size": 1}


def test_round_trip_without_unpickling_code(tmp_path):
    s = _state()
    path = save_state(state_path(tmp_path, 1, 0), s)
    assert path.name == "state-0001-0000000.pt" and (tmp_path / "state-0001-0000000.pt.sha256").is_file()
    back = load_state(path)
    assert back["epoch"] == 1 and back["history"] == s["history"]
    for k, v in s["model"].items():
        assert torch.equal(back["model"][k], v)
    assert back["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)


def test_flipped_byte_and_truncation_are_detected_and_named(tmp_path):
    path = save_state(state_path(tmp_path, 2, 5), _state())
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # inside a tensor: torch.load alone would not notice
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt or truncated") as e:
        load_state(path)
    assert e.value.path == str(path)
    path.write_bytes(bytes(data[: len(data) // 3]))
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_state(path)


def test_interrupted_write_is_never_picked(tmp_path, caplog):
    first = save_state(state_path(tmp_path, 1, 0), _state(1))
    second = save_state(state_path(tmp_path, 2, 0), _state(2))
    (tmp_path / (second.name + ".sha256")).unlink()  # killed between the two renames
    assert latest_state(tmp_path) == first
    assert "state-0002-0000000.pt" in caplog.text
    with pytest.raises(CheckpointError, match="interrupted"):
        load_state(second)


def test_not_a_state_and_unsafe_pickles_are_refused(tmp_path):
    import os

    bad = tmp_path / "state-0001-0000000.pt"
    torch.save({"format": "something-else"}, bad)
    from mmadfer.train.state import sha256_file

    (tmp_path / (bad.name + ".sha256")).write_text(f"{sha256_file(bad)}  {bad.name}\n")
    with pytest.raises(CheckpointError, match="not an mmadfer training state"):
        load_state(bad)
    torch.save({"format": STATE_FORMAT, "x": os.getcwd}, bad)  # a global: refused before unpickling
    (tmp_path / (bad.name + ".sha256")).write_text(f"{sha256_file(bad)}  {bad.name}\n")
    with pytest.raises(CheckpointError, match="disallowed global"):
        load_state(bad)


def test_states_sort_in_training_order_and_prune(tmp_path):
    for e, s in [(1, 0), (1, 12), (2, 0), (10, 0), (2, 3)]:
        save_state(state_path(tmp_path, e, s), _state(e, s))
    assert [p.name for p in list_states(tmp_path)] == [
        "state-0001-0000000.pt", "state-0001-0000012.pt", "state-0002-0000000.pt", "state-0002-0000003.pt",
        "state-0010-0000000.pt"]
    prune_states(tmp_path, keep=2)
    assert [p.name for p in list_states(tmp_path)] == ["state-0002-0000003.pt", "state-0010-0000000.pt"]
    assert len(list(tmp_path.glob("*.sha256"))) == 2


def test_rng_capture_restore_continues_every_stream(tmp_path):
    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    torch.rand(5), np.random.rand(5), random.random()
    saved = capture_rng()
    want = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)], np.random.randn())
    # through a state file, as a resumed run does
    path = save_state(state_path(tmp_path, 1, 0), {**_state(), "rng": [saved]})
    torch.manual_seed(99), np.random.seed(99), random.seed(99)
    restore_rng(load_state(path)["rng"][0])
    got = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)], np.random.randn())
    assert torch.equal(want[0], got[0]) and np.array_equal(want[1], got[1]) and want[2] == got[2]
    assert want[3] == got[3]
