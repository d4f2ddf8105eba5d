"""Sharing videos out by duration: between the worker processes of one predict, and between torchrun ranks."""
from __future__ import annotations

import heapq
from typing import Sequence

__all__ = ["balance"]


def balance(durations: Sequence[float], parts: int) -> list[list[int]]:
    """Split item indices into ``parts`` lists of about equal total duration: longest first, each to the part with
    the least so far (ties: the lowest part number; equal durations: the earlier item first). Deterministic, so
    every rank computes the same split from the same file list. Each part lists its items in their original order.
    """
    if parts < 1:
        raise ValueError(f"parts must be at least 1, got {parts}")
    heap = [(0.0, p) for p in range(parts)]
    out: list[list[int]] = [[] for _ in range(parts)]
    for i in sorted(range(len(durations)), key=lambda i: (-float(durations[i]), i)):
        load, p = heapq.heappop(heap)
        out[p].append(i)
        # an unknown (0 s) video still counts a little, so many of them spread out instead of piling on one part
        heapq.heappush(heap, (load + max(float(durations[i]), 1e-3), p))
    return [sorted(o) for o in out]
