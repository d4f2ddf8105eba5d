"""Command-line inputs shared by commands: the videos named by files and folders."""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from ..data.annotations import VIDEO_SUFFIXES, is_video_name

__all__ = ["discover"]


def discover(inputs: list[str]) -> tuple[list[tuple[Path, Path]], list[tuple[str, str]]]:
    """Videos to process as ``(path, name)`` (``name``: the path relative to the folder it was found in), and
    ``(input, reason)`` for inputs that are neither a file nor a folder with videos, and for entries of a folder
    with a video's name that are not a readable file (a symlink loop, a dangling link, a FIFO, a folder): each is
    reported and counts as failed, never skipped silently."""
    found: list[tuple[Path, Path]] = []
    bad: list[tuple[str, str]] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            named = sorted(p for p in path.rglob("*") if is_video_name(p))
            videos = [p for p in named if p.is_file()]
            bad += [(str(p), _not_a_file(p)) for p in named if not p.is_file()]
            if not named:
                bad.append((item, f"no video files ({' '.join(VIDEO_SUFFIXES)}) in this folder"))
            found += [(v, v.relative_to(path)) for v in videos]
        elif path.exists():
            found.append((path, Path(path.name)))
        else:
            bad.append((item, "file not found"))
    return found, bad


def _not_a_file(path: Path) -> str:
    """Why ``path``, named like a video, is not one to read."""
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        if path.is_symlink():
            return "a symbolic link loop" if e.errno == errno.ELOOP else f"a broken symbolic link ({e.strerror})"
        return e.strerror or "cannot be read"
    if stat.S_ISDIR(mode):
        return "a folder, not a video file"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe), not a video file"
    return "not a regular file"
