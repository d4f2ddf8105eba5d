"""How big a predict job is, before any model is loaded: the windows its videos will give, from their durations.

``backend='auto'`` weighs this against the cost of converting the model (:func:`mmadfer.runtime.select.pays_off`).
"""
from __future__ import annotations

import math
from pathlib import Path

from ..config import PreprocessConfig
from ..errors import MediaError
from ..media.decode import open_media

__all__ = ["job_windows"]


def job_windows(videos: list[Path], window_s: float | None = None, stride_s: float | None = None) -> int:
    """Windows that ``videos`` will give at ``stride_s`` (default: one ``window_s``, default the usual 5.12 s), from
    each container's declared duration; a file that cannot be opened, or declares none, counts as one window."""
    window_s = window_s or PreprocessConfig().window_s
    stride_s = stride_s or window_s
    total = 0
    for video in videos:
        try:
            container = open_media(video)
        except (MediaError, OSError):
            total += 1
            continue
        with container:
            duration = container.duration / 1e6 if container.duration else 0.0
        total += max(1, math.ceil(duration / stride_s))
    return total
