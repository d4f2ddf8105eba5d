"""Exceptions that users catch: each names the offending file and the reason."""
from __future__ import annotations

import os

from .text import terminal_text

__all__ = ["MmadferError", "MediaError", "CheckpointError", "one_line"]


class MmadferError(Exception):
    """Base class: ``path`` is the file at fault (or None) and ``reason`` says why, in one line."""

    def __init__(self, path: str | os.PathLike | None, reason: str):
        self.path = None if path is None else os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path is not None else reason)

    def __reduce__(self):  # pickles with both arguments (worker processes send these to the main one)
        return type(self), (self.path, self.reason)


class MediaError(MmadferError):
    """A video or audio file that cannot be decoded (empty, not media, truncated, no video, bad codec)."""


class CheckpointError(MmadferError):
    """A checkpoint that cannot be used: unsafe pickle, wrong format, missing or unexpected keys, corrupt file."""


def one_line(error: BaseException, path: str | os.PathLike | None = None) -> str:
    """``path: reason`` on one line, as the commands report a failed file (a :class:`MmadferError` names its own
    file), safe to print and to write as UTF-8: control characters and a file name's undecodable bytes escaped
    (:func:`mmadfer.text.terminal_text`)."""
    if isinstance(error, MmadferError) and error.path is not None:
        text = str(error)
    else:
        reason = error.reason if isinstance(error, MmadferError) else f"{type(error).__name__}: {error}"
        text = f"{path}: {reason}" if path is not None else reason
    return terminal_text(" ".join(text.split()))
