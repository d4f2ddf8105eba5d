"""Distributed training and evaluation on the CPU (gloo, 2 processes under torchrun): the metrics equal a
single-process evaluation exactly, although DistributedSampler pads the odd-sized test split."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import torch

from mmadfer.data.synthetic import write_synthetic_dataset
from mmadfer.distributed import _first_occurrence, gather_predictions


def test_gather_keeps_one_row_per_index_sorted():
    # a single process sees its own rows; the padding repeat (index 0 twice) is dropped
    index = torch.tensor([4, 0, 2, 0, 1, 3])
    logits = torch.arange(12.0).view(6, 2)
    idx, out = gather_predictions(index, logits)
    assert idx.tolist() == [0, 1, 2, 3, 4]
    assert out.tolist() == [[2.0, 3.0], [8.0, 9.0], [4.0, 5.0], [10.0, 11.0], [0.0, 1.0]]
    uniq, first = _first_occurrence(torch.tensor([3, 3, 1]))
    assert uniq.tolist() == [1, 3] and first.tolist() == [2, 0]


@pytest.mark.slow
def test_torchrun_two_processes_train_and_evaluate_like_one(tmp_path):
    data = tmp_path / "synth"
    write_synthetic_dataset(data, 95, size=32, raw=False)  # 19 test clips in fold 1: not divisible by 2
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                "-m", "mmadfer.cli"]
    run_dir = tmp_path / "run"
    train = subprocess.run(torchrun + ["train", "--config", "synthetic", "--data", str(data), "--out", str(run_dir),
                                       "--epochs", "1", "--batch-size", "4", "--set", "train.tensorboard=false"],
                           env=env, capture_output=True, text=True, timeout=300)
    assert train.returncode == 0, train.stderr[-3000:]
    assert train.stdout.count("UAR ") == 1  # rank 0 alone reports
    ddp_eval = subprocess.run(torchrun + ["evaluate", "--checkpoint", str(run_dir / "final.safetensors"), "--data",
                                          str(data), "--dataset", "folder", "--fold", "1", "--out",
                                          str(tmp_path / "ddp_eval"), "--batch-size", "4", "--num-workers", "0",
                                          "--precision", "fp32"],  # the arithmetic the training run evaluated in
                              env=env, capture_output=True, text=True, timeout=300)
    assert ddp_eval.returncode == 0, ddp_eval.stderr[-3000:]

    from mmadfer.cli import main

    assert main(["evaluate", "--checkpoint", str(run_dir / "final.safetensors"), "--data", str(data), "--dataset",
                 "folder", "--fold", "1", "--out", str(tmp_path / "single"), "--batch-size", "4",
                 "--num-workers", "0", "--precision", "fp32"]) == 0
    single = json.loads((tmp_path / "single" / "metrics.json").read_text())
    assert single["num_clips"] == 19
    for other in (run_dir / "eval", tmp_path / "ddp_eval"):  # evaluated inside the DDP run, and by torchrun evaluate
        m = json.loads((other / "metrics.json").read_text())
        assert m["num_clips"] == 19 and m["confusion"] == single["confusion"]
        assert (m["uar"], m["war"]) == (single["uar"], single["war"])
        a, b = pd.read_csv(other / "predictions.csv"), pd.read_csv(tmp_path / "single" / "predictions.csv")
        assert a["index"].tolist() == b["index"].tolist() == list(range(19))
        assert a["pred"].tolist() == b["pred"].tolist()
        pd.testing.assert_frame_equal(a.filter(like="p_"), b.filter(like="p_"), atol=1e-5, rtol=0)
    log = pd.read_csv(run_dir / "log.csv")
    assert len(log) == 1 and log["test_uar"][0] == single["uar"]
