"""Test-side access to the golden files (read from ../shared/golden, never copied into the project), and a copy of
the reference training script's checkpoint container."""
import collections
import functools
import os
import sys
from pathlib import Path

import numpy as np
import torch

from mmadfer.testing import golden_inputs as _golden_inputs
from mmadfer.testing import manifest as _manifest
from mmadfer.testing import recipe_tensor  # noqa: F401
from mmadfer.testing import reference_state_dict as _reference_state_dict

#: The golden files: ``../shared/golden`` beside this checkout (override with MMADFER_GOLDEN).
GOLDEN = Path(os.environ.get("MMADFER_GOLDEN", Path(__file__).resolve().parents[1].parent / "shared" / "golden"))

manifest = functools.partial(_manifest, GOLDEN)
reference_state_dict = functools.partial(_reference_state_dict, GOLDEN)
golden_inputs = functools.partial(_golden_inputs, GOLDEN)


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
