"""Verification helpers: the reference implementation's golden weights and outputs, rebuilt from a golden folder.

A golden folder (any folder holding ``official_b2_224.{json,npz}``, e.g. the one ``mmadfer bench --golden DIR``
is given) pins mmadfer to the authors' code. These functions rebuild the reference model's state dict from the
golden recipe and read the reference inputs and outputs, so that the import path and the numerics can be checked by
``mmadfer bench`` and by the tests (which add, in ``tests/reference.py``, a copy of the reference's checkpoint
container). Nothing here knows where a golden folder lives: it is always passed in.
"""
from __future__ import annotations

import collections
import json
import os
import zlib
from pathlib import Path

import numpy as np
import torch

__all__ = ["manifest", "recipe_tensor", "reference_state_dict", "golden_inputs"]


def manifest(golden: str | os.PathLike) -> list[dict]:
    return json.loads((Path(golden) / "official_b2_224.json").read_text())["manifest"]


def recipe_tensor(key: str, shape, mean: float, std: float) -> np.ndarray:
    """The golden README's weight recipe."""
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    return (mean + std * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)


def reference_state_dict(golden: str | os.PathLike, *, num_classes: int = 7, img_size: int = 224,
                         check_sums: bool = True) -> dict[str, torch.Tensor]:
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


def golden_inputs(golden: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Inputs and reference outputs: images, audio, logits, fused_frames, temporal_out (float32)."""
    z = np.load(Path(golden) / "official_b2_224.npz")
    return {k: torch.from_numpy(z[k]).float() for k in z.files}
