"""Before a run trains: are there enough usable clips? A run over clips that cannot load would skip every batch,
train nothing and still write a "final" model; this counts what would be skipped, and why, from the index alone
(paths and frame counts; nothing is decoded), and stops a run that would train on too few.

What only decoding can tell (a corrupt JPEG, a truncated WAV) is skipped by the loader one clip at a time
(``data.on_bad_sample='skip'``); an epoch in which no clip at all loaded stops the run as well
(:class:`~mmadfer.train.engine` checks it).
"""
from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MmadferError

__all__ = ["ClipCheck", "check_clips", "require_clips", "MIN_USABLE_FRACTION"]

#: A split must have at least this share of its clips usable (and at least one): below it, the index or the root
#: is almost certainly wrong (a moved folder, another fold's file), and training on the rest would mislead.
MIN_USABLE_FRACTION = 0.5


@dataclass
class ClipCheck:
    """``usable`` of ``total`` clips; ``skipped``: reason -> count; ``examples``: reason -> one clip's path."""

    total: int
    usable: int
    skipped: Counter = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        return "; ".join(f"{n} {reason} (e.g. {self.examples[reason]})" for reason, n in self.skipped.most_common())


def _problem(dataset: Any, record: Any) -> str | None:
    """Why ``record`` cannot load, from its index entry and the file system (one ``stat`` or two), or None."""
    if record.num_frames is not None and record.num_frames <= 0:
        return "with a frame count of 0 or less"
    if not os.path.exists(record.path):
        return "not found"
    audio_path = getattr(dataset, "audio_path", None)
    if audio_path is not None and not getattr(dataset, "allow_missing_audio", True) \
            and not Path(audio_path(record)).is_file():
        return "without their audio file"
    return None


def check_clips(dataset: Any) -> ClipCheck:
    """Count the clips of ``dataset`` (any dataset with ``records``) that could load, and why the others cannot."""
    records = getattr(dataset, "records", None)
    if records is None:  # a dataset without an index: nothing to check ahead
        return ClipCheck(len(dataset), len(dataset))
    check = ClipCheck(len(records), 0)
    for record in records:
        reason = _problem(dataset, record)
        if reason is None:
            check.usable += 1
        else:
            check.skipped[reason] += 1
            check.examples.setdefault(reason, str(record.path))
    return check


def require_clips(dataset: Any, what: str, source: str | os.PathLike | None) -> ClipCheck:
    """:func:`check_clips`, raising :class:`~mmadfer.MmadferError` (one line: the counts and the reasons) when fewer
    than :data:`MIN_USABLE_FRACTION` of the clips (or none) are usable. ``what`` names the split, ``source`` the
    index or root it came from."""
    check = check_clips(dataset)
    need = max(1, math.ceil(MIN_USABLE_FRACTION * check.total))
    if check.usable < need:
        raise MmadferError(source, f"too few usable {what} clips: {check.usable} of {check.total} "
                                   f"(at least {need} needed); skipped: {check.summary()}")
    return check
