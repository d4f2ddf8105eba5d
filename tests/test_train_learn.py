"""Learnability through the real CLI: on the synthetic set, whose label needs both the face and the voice, the
audio-visual model must reach UAR >= 0.9 while the video-only and audio-only variants stay near 0.5 (each knows one
of the two bits).

The `synthetic` preset trains every parameter of the tiny model (its encoders are random: nothing to keep frozen) at
lr 5e-4 for 40 epochs without crop augmentation (the reference's 8 %-area crops cut the mouth out of 32 px frames).
Measured on 2 CPU cores: audio-visual UAR 1.0, video-only 0.50, audio-only 0.50-0.58. The three runs go side by
side, one thread each.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "mmadfer.cli"]


def _start(data, out, *overrides) -> subprocess.Popen:
    """One training run in a one-thread process: the three runs share the cores side by side (the tiny model's
    small matrices gain little from a second thread)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen(CLI + ["train", "--config", "synthetic", "--data", str(data), "--out", str(out),
                                   "--set", "train.tensorboard=false", *overrides],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)


def _metrics(proc: subprocess.Popen, out) -> dict:
    try:
        _, err = proc.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0, err[-3000:]
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.slow
def test_fusion_learns_what_neither_modality_can_alone(tmp_path):
    data = tmp_path / "synth"
    made = subprocess.run(CLI + ["synth", str(data), "--clips", "200", "--size", "32", "--no-raw"],
                          capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr[-2000:]
    runs = {m: _start(data, tmp_path / m, *(["--set", f"model.modality={m}"] if m != "av" else []))
            for m in ("av", "video", "audio")}
    try:
        results = {m: _metrics(proc, tmp_path / m) for m, proc in runs.items()}
    finally:
        for proc in runs.values():
            if proc.poll() is None:
                proc.kill()
    assert results["av"]["uar"] >= 0.9, f"audio-visual UAR {results['av']['uar']:.3f}"
    for modality in ("video", "audio"):
        uni = results[modality]["uar"]
        assert uni <= 0.65, f"{modality}-only UAR {uni:.3f}"  # one bit of two: 0.5 expected
