"""What a training run shows and leaves behind: a live progress bar, ``log.csv``, TensorBoard scalars and
``curves.png`` in the run folder.

The progress bar shows the loss, clips/s, the learning rate and ``wait``: the share of wall time the loop spent
blocked on the data loader (near 0 % means the accelerator never waited for data; a high value says: add
``data.num_workers``). tqdm gives the ETA. The per-epoch history is kept in the resumable training state, so a
resumed run rewrites the same ``log.csv`` and TensorBoard drops the events after the resume point.
"""
from __future__ import annotations

import logging
import math
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from tqdm.auto import tqdm
import pandas as pd

from .._optional import require
from ..io import atomic_path, atomic_write

__all__ = ["StepTimer", "RunLogger"]

logger = logging.getLogger(__name__)


class StepTimer:
    """Clips per second and the fraction of wall time spent waiting for the data loader, since ``reset``."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.start = time.perf_counter()
        self.wait = 0.0
        self.clips = 0
        self._asked = None

    def waiting(self) -> None:
        """Call right before asking the loader for the next batch."""
        self._asked = time.perf_counter()

    def got_batch(self, clips: int) -> None:
        """Call right after the batch arrived."""
        if self._asked is not None:
            self.wait += time.perf_counter() - self._asked
            self._asked = None
        self.clips += clips

    @property
    def elapsed(self) -> float:
        return max(time.perf_counter() - self.start, 1e-9)

    @property
    def clips_per_s(self) -> float:
        return self.clips / self.elapsed

    @property
    def wait_fraction(self) -> float:
        return min(1.0, self.wait / self.elapsed)


class RunLogger:
    """Rank 0's record of a run. On other ranks (``enabled=False``) every method does nothing.

    ``history`` is the list of per-epoch rows so far (from a resumed state); ``purge_step`` makes TensorBoard drop
    events logged after that step by the interrupted run.
    """

    def __init__(self, run_dir: str | Path, *, enabled: bool = True, tensorboard: bool = True,
                 history: Sequence[dict[str, Any]] = (), purge_step: int | None = None):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.history: list[dict[str, Any]] = [dict(r) for r in history]
        self._tb = None
        if enabled and tensorboard:
            try:
                tb = require("torch.utils.tensorboard", "TensorBoard logging")
                self._tb = tb.SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=purge_step)
            except ImportError as e:
                logger.warning("TensorBoard logging is off: %s", e)

    # -- live ------------------------------------------------------------------------------------------------------
    def progress(self, total: int, initial: int = 0, desc: str = ""):
        """A tqdm bar over the batches of an epoch (disabled on ranks other than 0)."""
        interactive = sys.stderr.isatty()
        return tqdm(total=total, initial=initial, desc=desc, unit="batch", dynamic_ncols=True, leave=interactive,
                    disable=not self.enabled, mininterval=0.5 if interactive else 30.0, file=sys.stderr)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if self._tb is not None:
            for k, v in values.items():
                if v is not None and not (isinstance(v, float) and math.isnan(v)):
                    self._tb.add_scalar(k, v, step)

    def message(self, text: str) -> None:
        if self.enabled:
            tqdm.write(text, file=sys.stderr)

    # -- per epoch -------------------------------------------------------------------------------------------------
    def epoch(self, row: dict[str, Any], step: int) -> None:
        """Record one epoch: append to the history, rewrite ``log.csv`` and ``curves.png``, log to TensorBoard."""
        self.history.append(dict(row))
        if not self.enabled:
            return
        self.scalars(step, {f"epoch/{k}": v for k, v in row.items() if k != "epoch" and isinstance(v, (int, float))})
        self.write_csv()
        try:
            self.plot_curves()
        except ImportError as e:
            logger.warning("curves.png not written: %s", e)

    def write_csv(self) -> Path:
        path = self.run_dir / "log.csv"
        with atomic_write(path, "w", encoding="utf-8", newline="") as f:
            pd.DataFrame(self.history).to_csv(f, index=False, float_format="%.6g")
        return path

    def plot_curves(self) -> Path:
        """Loss, accuracy/UAR/WAR, learning rate and throughput per epoch."""
        require("matplotlib", "the training-curve plot")
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        h = self.history
        epochs = [r["epoch"] for r in h]

        def series(key):
            pts = [(r["epoch"], r[key]) for r in h if r.get(key) is not None and not _isnan(r[key])]
            return ([e for e, _ in pts], [v for _, v in pts])

        fig = Figure(figsize=(12, 7), layout="constrained")
        FigureCanvasAgg(fig)
        panels = [("loss", ["train_loss"]), ("accuracy", ["train_acc", "test_uar", "test_war"]),
                  ("learning rate", ["lr"]), ("throughput (clips/s) and loader wait (%)", ["clips_per_s", "wait_pct"])]
        for i, (title, keys) in enumerate(panels):
            ax = fig.add_subplot(2, 2, i + 1)
            for key in keys:
                xs, ys = series(key)
                if xs:
                    ax.plot(xs, ys, marker="o", markersize=3, label=key)
            ax.set(title=title, xlabel="epoch")
            if epochs:
                ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
            if ax.lines:
                ax.legend(fontsize=8)
        path = self.run_dir / "curves.png"
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=100)
        return path

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _isnan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)
