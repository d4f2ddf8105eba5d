"""Archive runs over many processes: which videos are this rank's, and the merged ``index.csv`` of every video.

Under ``torchrun`` (or Slurm), every rank discovers the same file list, plans the same output names, probes the
durations from the containers and takes its share (:func:`my_share`: longest first to the least-loaded rank, so
the split is deterministic and balanced by duration). Ranks never talk while they work: each writes its outputs and
rewrites its own ``OUT/.index/rank-<r>.csv`` atomically after every video. At the end rank 0 merges them into
``OUT/index.csv`` (:func:`merge_index`); a video no rank reported (its rank was killed) is ``done`` if its outputs
exist and are complete (:mod:`mmadfer.predict.complete`) and ``skipped`` otherwise, so a rerun with
``--skip-existing`` redoes exactly those.

Names are carried losslessly: ``video`` and ``output`` are the paths as text, with any undecodable bytes of a file
name written as ``\\xNN``; for such names ``video_bytes`` / ``output_bytes`` hold the exact bytes, percent-encoded
(:func:`mmadfer.predict.table.name_fields`), and are empty otherwise. Cells are escaped for spreadsheets by
:func:`mmadfer.io.write_csv` and unescaped by :func:`read_index`.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Sequence

from ..io import read_csv, write_csv
from .balance import balance
from .complete import output_problem

__all__ = ["INDEX_COLUMNS", "STATUSES", "my_share", "write_rank_index", "merge_index", "read_index"]

INDEX_COLUMNS = ("video", "status", "output", "rank", "duration_s", "windows", "error", "video_bytes", "output_bytes")
#: ``done``: outputs written (now or by an earlier run); ``failed``: the error says why; ``skipped``: not
#: processed (its rank stopped before reaching it) and no outputs: a rerun does it.
STATUSES = ("done", "failed", "skipped")
INDEX_DIR = ".index"


def my_share(durations: Sequence[float], rank: int, world_size: int) -> list[int]:
    """Indices of the videos rank ``rank`` of ``world_size`` processes, balanced by duration."""
    return balance(durations, world_size)[rank]


def rank_index_path(out: str | os.PathLike, rank: int) -> Path:
    return Path(out) / INDEX_DIR / f"rank-{rank}.csv"


def write_rank_index(out: str | os.PathLike, rank: int, rows: Sequence[dict]) -> Path:
    """Rewrite this rank's index atomically (a reader, or a kill, never sees half a file)."""
    path = rank_index_path(out, rank)
    return write_csv(path, INDEX_COLUMNS, rows, ignore_extra=True)


def read_index(path: str | os.PathLike) -> list[dict]:
    return read_csv(path)


def _key(row: dict) -> str:
    """A video's identity in the index: its exact bytes where its name has undecodable ones, else its name."""
    return row.get("video_bytes") or row["video"]


def merge_index(out: str | os.PathLike, planned: Sequence[dict], world_size: int) -> Path:
    """Write ``OUT/index.csv``: one row per planned video (``planned``: rows with ``video``, ``output`` and
    ``duration_s`` in plan order, plus rows of inputs that failed before planning), taking each video's row from the
    rank that reported it; then remove the rank files. Returns the index path."""
    out = Path(out)
    reported: dict[str, dict] = {}
    files = [rank_index_path(out, r) for r in range(world_size)]
    for f in files:
        if f.is_file():
            for row in read_index(f):
                reported[_key(row)] = row
    rows = []
    for p in planned:
        row = reported.get(_key(p))
        if row is None and p.get("status"):
            row = p
        if row is None:
            exists = all(output_problem(o) is None for o in p.get("outputs", [p["output"]]))
            row = {**p, "status": "done" if exists else "skipped", "rank": "",
                   "error": "" if exists else "not processed: its rank stopped before this video"}
        rows.append(row)
    index = out / "index.csv"
    write_csv(index, INDEX_COLUMNS, rows, ignore_extra=True)
    for f in files:
        with contextlib.suppress(FileNotFoundError):
            f.unlink()
    with contextlib.suppress(OSError):
        (out / INDEX_DIR).rmdir()
    return index
