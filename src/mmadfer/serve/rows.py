"""Timeline rows (and summaries) as JSON: the one conversion the jobs API (windows as they are predicted) and Live
share."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["json_safe"]


def json_safe(row: dict[str, Any]) -> dict[str, Any]:
    """A timeline row (or any dict of them, nested dicts included) with plain JSON values: numpy scalars as Python
    numbers, NaN and infinities as null (as ``timeline.json`` writes them)."""
    out: dict[str, Any] = {}
    for k, v in row.items():
        v = v.item() if isinstance(v, np.generic) else v
        out[k] = json_safe(v) if isinstance(v, dict) else None if isinstance(v, float) and not math.isfinite(v) else v
    return out
