"""Resumable training state: everything needed to continue a run bit for bit after it was killed.

A state file holds the trainable weights, the optimizer and scheduler, the random generators of every rank (torch
CPU and CUDA, numpy, python), the position in the data (epoch and batches done in it), the running sums of the
current epoch and the per-epoch history. It is a ``torch.save`` zip read back with a weights-only unpickler that
allows no global at all (:func:`mmadfer.checkpoints.safe_torch_load`), so a state file cannot execute code.

Integrity: ``torch.load`` does not verify the zip's CRCs (a flipped byte inside a tensor loads silently), so each
state ``X.pt`` is followed by ``X.pt.sha256`` (the ``sha256sum`` format; ``sha256sum -c`` checks it). Both are
written atomically, the checksum last: it is the commit record. A state without its checksum is an interrupted
write and is never picked for resuming; one whose bytes do not match raises :class:`~mmadfer.CheckpointError`
naming the file. Nothing is applied to the model or optimizer until the whole file has been read and validated.

File names sort in training order: ``state-<epoch>-<step>.pt`` means "resume at batch ``step`` of epoch ``epoch``"
(0-based; step 0 is the start of an epoch).
"""
from __future__ import annotations

import logging
import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoints import safe_torch_load
from ..errors import CheckpointError
from ..io import atomic_path, atomic_write, sha256_file

__all__ = ["STATE_FORMAT", "state_path", "save_state", "load_state", "list_states", "latest_state",
           "capture_rng", "restore_rng", "sha256_file", "prune_states"]

logger = logging.getLogger(__name__)

STATE_FORMAT = "mmadfer-train-state-1"
_NAME = re.compile(r"^state-(\d+)-(\d+)\.pt$")
_REQUIRED = ("format", "epoch", "step", "global_step", "model", "optimizer", "scheduler", "rng", "history",
             "epoch_stats", "config", "world_size")


def state_path(directory: str | os.PathLike, epoch: int, step: int) -> Path:
    return Path(directory) / f"state-{epoch:04d}-{step:07d}.pt"


def _checksum_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def save_state(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` and its SHA-256 beside it, both atomically (the checksum last)."""
    missing = [k for k in _REQUIRED if k not in state]
    if missing:
        raise ValueError(f"training state lacks {missing}")
    path = Path(path)
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(state, tmp)
        digest = sha256_file(tmp)
    with atomic_write(_checksum_path(path), "w", encoding="utf-8") as f:
        f.write(f"{digest}  {path.name}\n")
    return path


def verify_state(path: str | os.PathLike) -> None:
    """Raise :class:`CheckpointError` unless ``path`` and its ``.sha256`` exist and agree."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such training state")
    check = _checksum_path(path)
    if not check.is_file():
        raise CheckpointError(path, f"no checksum file {check.name}: the write was interrupted, the state is "
                                    "incomplete")
    want = check.read_text(encoding="utf-8").split()[:1]
    got = sha256_file(path)
    if want != [got]:
        raise CheckpointError(path, f"corrupt or truncated: SHA-256 {got[:16]}… does not match {check.name} "
                                    f"({(want or ['<empty>'])[0][:16]}…)")


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a state written by :func:`save_state` (checksum, format, required entries)."""
    path = Path(path)
    verify_state(path)
    state = safe_torch_load(path, allowed={})
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(path, f"not an mmadfer training state (format {found!r}, expected {STATE_FORMAT!r})")
    missing = [k for k in _REQUIRED if k not in state]
    if missing:
        raise CheckpointError(path, f"training state lacks {', '.join(missing)}")
    return state


def list_states(directory: str | os.PathLike) -> list[Path]:
    """Committed states (those with a checksum file) in ``directory``, oldest first."""
    d = Path(directory)
    if not d.is_dir():
        return []
    found = [p for p in d.iterdir() if _NAME.match(p.name) and _checksum_path(p).is_file()]
    return sorted(found, key=lambda p: tuple(int(g) for g in _NAME.match(p.name).groups()))


def latest_state(directory: str | os.PathLike) -> Path | None:
    """The newest committed state in ``directory``, or None. An interrupted write (no checksum) is skipped."""
    d = Path(directory)
    uncommitted = [p.name for p in d.glob("state-*.pt") if not _checksum_path(p).is_file()] if d.is_dir() else []
    if uncommitted:
        logger.warning("ignoring interrupted state write(s) without checksum: %s", ", ".join(sorted(uncommitted)))
    states = list_states(d)
    return states[-1] if states else None


def prune_states(directory: str | os.PathLike, keep: int) -> None:
    """Delete all but the newest ``keep`` committed states (and any stale uncommitted ones older than them)."""
    states = list_states(directory)
    for p in states[:-keep] if keep > 0 else states:
        for f in (_checksum_path(p), p):  # checksum first: a half-deleted state is then merely uncommitted
            f.unlink(missing_ok=True)


# -- random generators --------------------------------------------------------------------------------------------
def capture_rng() -> dict[str, Any]:
    """This process's random generator states, as tensors and plain values (loadable without any global)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    version, py_state, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": version, "state": list(py_state), "gauss": py_gauss},
    }


def restore_rng(rng: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        if len(rng["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(rng["cuda"])
        else:
            logger.warning("the state saved %d CUDA generator(s) but %d device(s) are visible; CUDA random draws "
                           "(drop-path) will differ from the original run", len(rng["cuda"]),
                           torch.cuda.device_count())
    n = rng["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = rng["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
