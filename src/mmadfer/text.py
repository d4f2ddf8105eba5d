"""Untrusted text (class names from a checkpoint, file names from a folder) made safe where mmadfer shows it.

* :func:`printable_name`: undecodable bytes of a file name (kept by Python as surrogate escapes, which no UTF-8
  writer accepts) written as ``\\xNN``; every other name comes back unchanged.
* :func:`terminal_text`: also control and format characters (ESC, OSC sequences, CR, bidirectional overrides)
  escaped, so a name can neither drive the terminal nor hide what it says.
* :func:`chart_text`: every ``$`` escaped for matplotlib, which would otherwise parse ``$...$`` as mathtext (a
  class named ``cost $5 or $6`` is drawn as written, and one with an unbalanced ``$`` cannot fail a chart).
"""
from __future__ import annotations

import os
import unicodedata

__all__ = ["printable_name", "terminal_text", "chart_text"]


def printable_name(text: str) -> str:
    """``text`` with undecodable bytes (surrogate escapes from the file system) written as ``\\xNN``: always
    encodable as UTF-8. Text without them comes back unchanged."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return os.fsencode(text).decode("utf-8", "backslashreplace")


def terminal_text(text: object) -> str:
    """``text`` (a ``str`` or a path) safe to print: undecodable bytes as ``\\xNN``, and control, format and line-
    or paragraph-separator characters as Python escapes them (``\\t``, ``\\x1b``, ``\\u202e``); printable text
    unchanged."""
    text = printable_name(os.fspath(text) if isinstance(text, os.PathLike) else str(text))
    return "".join(ch if unicodedata.category(ch)[0] != "C" and ch not in "\u2028\u2029"
                   else ascii(ch)[1:-1] for ch in text)


def chart_text(text: object) -> str:
    """``text`` as a matplotlib label drawn literally: no mathtext, escaped as :func:`terminal_text` escapes."""
    return terminal_text(text).replace("$", r"\$")
