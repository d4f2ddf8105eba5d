"""Verification helpers: the reference implementation's golden weights and checkpoint container, rebuilt locally.

``../shared/golden/`` (or any folder holding ``official_b2_224.{json,npz}``) pins mmadfer to the authors' code. These
functions rebuild the reference model's state dict from the golden recipe and save it exactly as the reference
training script does, so the import path and the numerics can be checked by tests and by ``mmadfer bench``.
"""
from __future__ import annotations

import collections
import json
import os
import sys
import zlib
from pathlib import Path

import numpy as np
import torch

#: Default location of the golden files: ``../shared/golden`` beside a source checkout (override with MMADFER_GOLDEN).
GOLDEN = Path(os.environ.get("MMADFER_GOLDEN", Path(__file__).resolve().parents[2].parent / "shared" / "golden"))


def manifest(golden: Path = GOLDEN) -> list[dict]:
    return json.loads((Path(golden) / "official_b2_224.json").read_text())["manifest"]


def recipe_tensor(key: str, shape, mean: float, std: float) -> np.ndarray:
    """The golden README's weight recipe."""
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    return (mean + std * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)


def reference_state_dict(*, num_classes: int = 7, img_size: int = 224, check_sums: bool = True,
                         golden: Path = GOLDEN) -> dict[str, torch.Tensor]:
    """The reference model's state dict from the golden recipe; other class counts / sizes reshape the affected keys."""
    sd = collections.OrderedDict()
    grid = (img_size // 16) ** 2
    for e in manifest(golden):
        key, shape = e["key"], list(e["shape"])
        if key.startswith("our_classifier."):
            shape[0] = num_classes
        if key == "image_encoder.pos_embed":
            shape[1] = 1 + grid + 6
        w = recipe_tensor(key, shape, e["mean"], e["std"])
        if check_sums and shape == list(e["shape"]):
            assert abs(float(w.astype(np.float64).sum()) - e["sum"]) <= 1e-6 * max(1.0, abs(e["sum"])), key
        sd[key] = torch.from_numpy(w)
    return sd


class RecorderMeter:
    """Stand-in for the reference training script's ``__main__.RecorderMeter`` (numpy arrays inside)."""

    def __init__(self, total_epoch: int = 25):
        self.total_epoch = total_epoch
        self.current_epoch = 3
        self.epoch_losses = np.zeros((total_epoch, 2), dtype=np.float32)
        self.epoch_accuracy = np.zeros((total_epoch, 2), dtype=np.float32)


def save_reference_container(sd: dict[str, torch.Tensor], path: Path) -> Path:
    """Save like the reference training script: ``module.`` keys, optimizer, best_acc, a pickled __main__ object."""
    main = sys.modules["__main__"]
    RecorderMeter.__module__, RecorderMeter.__qualname__ = "__main__", "RecorderMeter"
    had = hasattr(main, "RecorderMeter")
    old = getattr(main, "RecorderMeter", None)
    main.RecorderMeter = RecorderMeter
    try:
        torch.save({
            "epoch": 25,
            "state_dict": collections.OrderedDict(("module." + k, v) for k, v in sd.items()),
            "best_acc": torch.tensor(77.5),
            "optimizer": torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))]).state_dict(),
            "recorder": RecorderMeter(),
        }, path)
    finally:
        if had:
            main.RecorderMeter = old
        else:
            del main.RecorderMeter
    return path


def golden_inputs(golden: Path = GOLDEN) -> dict[str, torch.Tensor]:
    """Inputs and reference outputs: images, audio, logits, fused_frames, temporal_out (float32)."""
    z = np.load(Path(golden) / "official_b2_224.npz")
    return {k: torch.from_numpy(z[k]).float() for k in z.files}
