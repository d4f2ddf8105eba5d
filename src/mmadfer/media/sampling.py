"""Which frames of a clip the model sees: the reference's segment-based index rules.

A clip of ``N`` frames is split into ``num_segments`` (16) equal segments and one frame is taken from each, so that
the 16 model frames span the whole clip whatever its length. These rules decide which faces the model was trained
and evaluated on; reproducing a published number needs them exactly, including their integer rounding.
"""
from __future__ import annotations

import torch

__all__ = ["sample_indices"]


def sample_indices(
    num_frames_total: int,
    num_segments: int = 16,
    train: bool = False,
    generator: torch.Generator | None = None,
) -> list[int]:
    """Return ``num_segments`` frame indices into a clip of ``num_frames_total`` frames (0-based, non-decreasing).

    The rules are those of the reference data loader (``_get_test_indices`` / ``_get_train_indices``):

    * ``N <= num_segments``: every frame once, then the last frame repeated to fill ``num_segments``
      (``numpy.pad(range(N), (0, S - N), 'edge')``). Train and test agree here.
    * test, ``N > num_segments``: the centre of each segment, ``int(tick / 2 + tick * k)`` with
      ``tick = N / num_segments`` (a float) for ``k = 0..S-1``.
    * train, ``N > num_segments``: segments of the *integer* length ``d = N // num_segments``, and a uniformly random
      frame in each, ``k * d + randint(0, d)`` (upper bound exclusive). As in the reference, the last
      ``N - S * d`` frames (fewer than ``S``) are never drawn.

    ``generator`` makes the train draw reproducible; the test rule is deterministic.

    Raises:
        ValueError: if the clip has no frames or ``num_segments`` is not positive.
    """
    n, s = int(num_frames_total), int(num_segments)
    if s <= 0:
        raise ValueError(f"num_segments must be positive, got {num_segments}")
    if n <= 0:
        raise ValueError(f"cannot sample frames from a clip with {num_frames_total} frames: the clip is empty")
    if n <= s:
        return list(range(n)) + [n - 1] * (s - n)
    if train:
        d = n // s  # >= 1 because n > s
        offsets = torch.randint(d, (s,), generator=generator).tolist()
        return [k * d + o for k, o in enumerate(offsets)]
    tick = n / float(s)
    return [int(tick / 2.0 + tick * k) for k in range(s)]
