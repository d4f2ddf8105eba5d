"""Tables that compare runs (folds of a cross-validation, ablation variants), as markdown and CSV."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from ..io import atomic_write

__all__ = ["write_table", "mean_std", "format_cell"]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value) of the finite values."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not xs:
        return float("nan"), float("nan")
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return m, sd


def format_cell(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def write_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]], *, md_path: str | Path,
                csv_path: str | Path, title: str, notes: Sequence[str] = (), footer: Sequence[dict[str, Any]] = (),
                csv_footer: Sequence[dict[str, Any]] = ()) -> None:
    """Write ``rows`` (dicts) as a markdown table under ``title`` and as CSV, both atomically.

    ``columns`` are ``(key, header)`` pairs. ``footer`` rows follow the body in markdown (values may be preformatted
    text such as ``0.6701 ± 0.0123``); ``csv_footer`` rows follow it in the CSV (numbers, e.g. a mean and a std row).
    """
    lines = [f"# {title}", ""]
    lines += [*notes, ""] if notes else []
    lines.append("| " + " | ".join(h for _, h in columns) + " |")
    lines.append("|" + "|".join("---" for _ in columns) + "|")
    for row in [*rows, *footer]:
        lines.append("| " + " | ".join(format_cell(row.get(k)) for k, _ in columns) + " |")
    with atomic_write(md_path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    frame = pd.DataFrame([{h: row.get(k) for k, h in columns} for row in [*rows, *csv_footer]])
    with atomic_write(csv_path, "w", encoding="utf-8", newline="") as f:
        frame.to_csv(f, index=False, float_format="%.6g")
