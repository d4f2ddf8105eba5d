"""Output-path safety for commands that write beside their inputs: checked before any input is processed.

An output is never an input (compared resolved, and by device and inode, so a hard link or a symlink to the input
counts); an existing file is replaced only when asked (``--overwrite``); every output folder must be writable
before the first video is decoded; and what a killed earlier run left (:func:`mmadfer.io.atomic_path`'s hidden
temporaries, beside our own outputs only) is removed.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable

from ..io import name_max, remove_stale_temporaries
from ..text import terminal_text

__all__ = ["output_problems", "unwritable_folders", "clean_stale_outputs", "name_too_long"]


def name_too_long(path: Path) -> str | None:
    """Why ``path`` cannot be created on its file system (a part of it longer than NAME_MAX bytes), or None. Such
    an output (a 252-byte ``.mp4`` name whose ``.json`` timeline is 253 bytes, say) fails its video alone."""
    limit = name_max(Path(path).parent)
    for part in Path(path).parts:
        size = len(os.fsencode(part))
        if size > limit:
            return (f"output name {terminal_text(part[:32])}... is {size} bytes, over this file system's limit of "
                    f"{limit} (rename the video or choose --output)")
    return None


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def output_problems(inputs: Iterable[Path], outputs: Iterable[Path], *, overwrite: bool = False) -> list[str]:
    """One line per output that must not be written: it is one of ``inputs`` (the same file under any name), it
    is a folder, or it exists and ``overwrite`` is off."""
    inputs = list(inputs)
    resolved = {Path(p).resolve() for p in inputs}
    identities = {i for i in map(_identity, inputs) if i is not None}
    problems = []
    for out in outputs:
        out = Path(out)
        if out.resolve() in resolved or (_identity(out) is not None and _identity(out) in identities):
            problems.append(f"{out}: is an input video; refusing to write over an input (choose another output)")
        elif out.is_dir():
            problems.append(f"{out}: is a folder, not a file")
        elif out.exists() and not overwrite:
            problems.append(f"{out}: exists; refusing to replace it (--overwrite replaces, --skip-existing skips)")
    return problems


def unwritable_folders(outputs: Iterable[Path]) -> list[str]:
    """One line per folder of ``outputs`` that cannot be created or written to (probed with a temporary file that
    is removed at once)."""
    problems = []
    for folder in sorted({Path(p).parent for p in outputs}):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as e:
            problems.append(f"{folder}: cannot write outputs there ({e.strerror or e})")
    return problems


def clean_stale_outputs(outputs: Iterable[Path], before: float) -> list[Path]:
    """Remove the hidden temporaries that a killed run left beside ``outputs`` and inside those that are folders
    (last modified before ``before``)."""
    return [p for out in outputs for p in remove_stale_temporaries(out, before)]
