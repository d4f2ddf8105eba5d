"""Learnability through the real CLI: on the synthetic set, whose label needs both the face and the voice, the
audio-visual model must reach UAR >= 0.9 while the video-only and audio-only variants stay near 0.5 (each knows one
of the two bits).

The `synthetic` preset trains every parameter of the tiny model (its encoders are random: nothing to keep frozen) at
lr 5e-4 for 40 epochs without crop augmentation (the reference's 8 %-area crops cut the mouth out of 32 px frames).
Measured on 2 CPU cores: audio-visual UAR 1.0, video-only 0.50, audio-only 0.50-0.58, about a minute per run.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "mmadfer.cli"]


def _train(data, out, *overrides) -> dict:
    done = subprocess.run(CLI + ["train", "--config", "synthetic", "--data", str(data), "--out", str(out),
                                 "--set", "train.tensorboard=false", *overrides],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.slow
def test_fusion_learns_what_neither_modality_can_alone(tmp_path):
    data = tmp_path / "synth"
    made = subprocess.run(CLI + ["synth", str(data), "--clips", "200", "--size", "32", "--no-raw"],
                          capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr[-2000:]
    av = _train(data, tmp_path / "av")
    assert av["uar"] >= 0.9, f"audio-visual UAR {av['uar']:.3f}"
    for modality in ("video", "audio"):
        uni = _train(data, tmp_path / modality, "--set", f"model.modality={modality}")
        assert uni["uar"] <= 0.65, f"{modality}-only UAR {uni['uar']:.3f}"  # one bit of two: 0.5 expected
