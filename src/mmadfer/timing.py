"""Wall time per pipeline stage (decode, faces, fbank, model, write), for ``mmadfer bench --what predict``.

Code marks its stages with ``with stage('decode'):``. Nothing is measured unless a :class:`StageTimer` is active
(``with StageTimer() as t:``), and then only in this process: an inactive ``stage`` is one global lookup.
"""
from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from typing import Iterator, TypeVar

__all__ = ["StageTimer", "stage", "timed_iter"]

_ACTIVE: "StageTimer | None" = None
T = TypeVar("T")


class StageTimer:
    """Accumulates seconds per stage name while active; stages do not nest (an inner stage's time is not
    subtracted from the outer one, so mark leaves only)."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._previous = None

    def __enter__(self) -> "StageTimer":
        global _ACTIVE
        self._previous, _ACTIVE = _ACTIVE, self
        return self

    def __exit__(self, *exc) -> None:
        global _ACTIVE
        _ACTIVE = self._previous


@contextlib.contextmanager
def _measure(timer: StageTimer, name: str) -> Iterator[None]:
    t0 = time.perf_counter()
    try:
        yield
    finally:
        timer.seconds[name] += time.perf_counter() - t0
        timer.calls[name] += 1


def stage(name: str):
    """A context manager that adds its wall time to stage ``name`` of the active timer (a no-op without one)."""
    timer = _ACTIVE
    return contextlib.nullcontext() if timer is None else _measure(timer, name)


def timed_iter(items: Iterator[T], name: str) -> Iterator[T]:
    """Iterate ``items``, counting the time each ``next`` takes as stage ``name`` (e.g. decoding the next window)."""
    it = iter(items)
    try:
        while True:
            with stage(name):
                try:
                    x = next(it)
                except StopIteration:
                    return
            yield x
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()
