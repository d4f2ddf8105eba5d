"""Is an existing output complete? What ``predict --skip-existing`` keeps, and what it makes again.

mmadfer writes every output atomically (:func:`mmadfer.io.atomic_path`: a hidden temporary, flushed to disk, then
renamed), so a kill, a full disk or a power cut leaves either the whole file under its name or none (and a stale
temporary, removed by the next run). A file under an output's name may still be something else: a copy cut short,
a file from an older tool. So an existing output is accepted only when it reads back whole; verifying costs a
fraction of making it again, and needs no marker files beside the user's outputs:

* a timeline CSV: the header a timeline starts with, at least one window, every row as long as the header, and
  a final line end; a timeline JSON: a document with a non-empty ``windows`` list;
* a chart (PNG): Pillow's ``verify`` (every chunk's CRC, up to the closing ``IEND``); a report (HTML): it ends
  with ``</html>``;
* an anonymised copy: the container opens and every packet of its video stream demuxes, at least one of them;
* a ``--save-faces`` folder: one image per window of the (complete) timeline.
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

__all__ = ["output_problem", "faces_problem"]

_TABLE_HEAD = ("start_s", "end_s")


def output_problem(path: str | os.PathLike) -> str | None:
    """None when the output at ``path`` is complete, else why not (``missing``, or what is wrong with it)."""
    path = Path(path)
    if not path.is_file():
        return "missing"
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return _csv_problem(path)
        if suffix == ".json":
            return _json_problem(path)
        if suffix == ".png":
            return _png_problem(path)
        if suffix == ".html":
            return None if path.read_text(encoding="utf-8").rstrip().endswith("</html>") else "cut short (no </html>)"
        return _video_problem(path)
    except (OSError, ValueError) as e:  # UnicodeDecodeError, JSONDecodeError, csv.Error are ValueErrors
        return f"unreadable ({type(e).__name__}: {e})"


def faces_problem(folder: str | os.PathLike, table: str | os.PathLike) -> str | None:
    """None when ``folder`` holds one face image per window of the timeline ``table`` (itself complete)."""
    folder = Path(folder)
    if not folder.is_dir():
        return "missing"
    if output_problem(table) is not None:
        return "its timeline is incomplete"
    windows = _count_windows(Path(table))
    images = sum(1 for e in os.scandir(folder) if e.name.endswith(".jpg") and not e.name.startswith("."))
    return None if images == windows else f"{images} face images for {windows} windows"


def _count_windows(table: Path) -> int:
    if table.suffix.lower() == ".json":
        return len(json.loads(table.read_text(encoding="utf-8"))["windows"])
    with open(table, newline="", encoding="utf-8") as f:
        return sum(1 for _ in csv.reader(f)) - 1


def _csv_problem(path: Path) -> str | None:
    text = path.read_text(encoding="utf-8")
    if not text.endswith("\n"):
        return "cut short (no final line end)"
    rows = list(csv.reader(text.splitlines()))
    if not rows or tuple(rows[0][:2]) != _TABLE_HEAD:
        return "not a timeline (no start_s,end_s header)"
    if len(rows) < 2:
        return "no windows"
    if any(len(r) != len(rows[0]) for r in rows[1:]):
        return "cut short (a row is shorter than the header)"
    return None


def _json_problem(path: Path) -> str | None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or not isinstance(doc.get("windows"), list):
        return "not a timeline (no windows list)"
    return None if doc["windows"] else "no windows"


def _png_problem(path: Path) -> str | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.verify()
    except (SyntaxError, EOFError, Image.UnidentifiedImageError) as e:  # Pillow's errors for broken files
        return f"damaged image ({e})"
    return None


def _video_problem(path: Path) -> str | None:
    import av

    try:
        with av.open(os.fspath(path), metadata_errors="ignore") as c:
            if not c.streams.video:
                return "no video stream"
            packets = sum(1 for p in c.demux(c.streams.video[0]) if p.size)
    except av.FFmpegError as e:
        return f"damaged video ({e})"
    return None if packets else "no video frames"
