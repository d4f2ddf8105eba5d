"""Timeline outputs: the table's columns, writing it as CSV or JSON, and the face crops a window fed the model.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import quote_from_bytes

import pandas as pd
import torch
from PIL import Image

from ..io import atomic_path, atomic_write, read_frame_csv, write_frame_csv
from ..text import terminal_text

__all__ = ["table_columns", "write_table", "read_table", "save_crops", "name_fields", "BOX_COLUMNS"]

#: The face crop of a window's track as fractions of the frame's width and height (NaN: no face found).
BOX_COLUMNS = ("box_x0", "box_y0", "box_x1", "box_y1")


def name_fields(name: str, key: str) -> dict[str, str]:
    """A file name for a CSV row or a JSON document, losslessly: ``{key: name}`` for a printable UTF-8 name; else
    ``{key: the name with undecodable bytes and control characters escaped (\\xNN, as on the terminal), key +
    "_bytes": its bytes percent-encoded}`` (read back with ``urllib.parse.unquote_to_bytes``). Python keeps
    undecodable bytes in a ``str`` as surrogate escapes, which no UTF-8 writer accepts; control characters (a
    carriage return, ESC) would break a CSV row or a terminal."""
    shown = terminal_text(name)
    if shown == name:
        return {key: name}
    return {key: shown, f"{key}_bytes": quote_from_bytes(os.fsencode(name), safe="/")}


def table_columns(labels: Iterable[str], tracks: bool = False) -> list[str]:
    """Columns of a timeline table, in order."""
    return (["start_s", "end_s"] + (["track_id"] if tracks else []) + ["label", "confidence"]
            + [f"p_{c}" for c in labels] + ["face_coverage", "has_audio", *BOX_COLUMNS])


def write_table(df, path: str | os.PathLike, fmt: str | None = None) -> Path:
    """Write a timeline atomically as CSV or JSON (``fmt`` from the suffix by default).

    JSON is ``{"video", "model", "window_s", "stride_s", "labels", ..., "windows": [row, ...]}``. CSV text cells
    (labels) are escaped for spreadsheets by :func:`mmadfer.io.write_frame_csv` (a leading ``'`` before ``=`` ``+``
    ``-`` ``@``...). A ``video`` whose name is not printable UTF-8 (undecodable bytes from the file system, control
    characters) is written escaped, and the exact name goes in ``video_bytes``, percent-encoded (:func:`name_fields`).
    """
    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".") or "csv").lower()
    if fmt == "csv":
        write_frame_csv(df, path, index=False, float_format="%.6g")
    elif fmt == "json":
        attrs = dict(df.attrs)
        if "video" in attrs:
            attrs.update(name_fields(os.fspath(attrs["video"]), "video"))
        doc = {**attrs, "windows": json.loads(df.to_json(orient="records", double_precision=6))}
        with atomic_write(path) as f:
            json.dump(doc, f, indent=1)
    else:
        raise ValueError(f"unknown table format {fmt!r} (csv or json)")
    return path


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """A timeline :func:`write_table` wrote, back as a DataFrame (JSON: with its header in ``attrs``; CSV: only
    empty cells are missing values, so a class named ``NA`` stays a name)."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        doc = json.loads(path.read_text(encoding="utf-8"))
        df = pd.DataFrame(doc.pop("windows"))
        df.attrs.update(doc)
        return df
    return read_frame_csv(path, keep_default_na=False, na_values=[""])


def save_crops(folder: str | os.PathLike, row: dict[str, Any], video: Any, with_track: bool = False) -> Path:
    """Write the crops one window fed the model as one grid JPEG (4 per row): ``<folder>/<start>s[_face<id>].jpg``."""
    frames = torch.as_tensor(video)  # [T, 3, S, S] uint8
    if frames.dtype != torch.uint8:
        frames = (frames.float().clamp(0, 1) * 255).round().to(torch.uint8)
    t, _, s, _ = frames.shape
    cols = min(4, t)
    rows = math.ceil(t / cols)
    grid = torch.zeros(3, rows * s, cols * s, dtype=torch.uint8)
    for i in range(t):
        r, c = divmod(i, cols)
        grid[:, r * s:(r + 1) * s, c * s:(c + 1) * s] = frames[i]
    track = f"_face{row['track_id']}" if with_track else ""
    out = Path(folder) / f"{row['start_s']:09.3f}s{track}.jpg"
    with atomic_path(out, suffix=".jpg") as tmp:
        Image.fromarray(grid.permute(1, 2, 0).numpy()).save(tmp, format="JPEG", quality=92)
    return out
