"""Command-line inputs shared by commands: the videos named by files and folders."""
from __future__ import annotations

from pathlib import Path

from ..data.annotations import VIDEO_SUFFIXES

__all__ = ["discover"]


def discover(inputs: list[str]) -> tuple[list[tuple[Path, Path]], list[tuple[str, str]]]:
    """Videos to process as ``(path, name)`` (``name``: the path relative to the folder it was found in), and
    ``(input, reason)`` for inputs that are neither a file nor a folder with videos."""
    found: list[tuple[Path, Path]] = []
    bad: list[tuple[str, str]] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            videos = sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
            if not videos:
                bad.append((item, f"no video files ({' '.join(VIDEO_SUFFIXES)}) in this folder"))
            found += [(v, v.relative_to(path)) for v in videos]
        elif path.exists():
            found.append((path, Path(path.name)))
        else:
            bad.append((item, "file not found"))
    return found, bad
