"""How long a video is, from its container's metadata alone (no decoding): what sharding an archive needs."""
from __future__ import annotations

import os

import av

__all__ = ["probe_duration"]


def probe_duration(path: str | os.PathLike) -> float:
    """Seconds of ``path`` declared by its container (or its video stream), 0.0 when unknown or unreadable.

    Opening the container reads the header only, so an archive of thousands of files is probed in seconds. A file
    that cannot be opened gets 0.0 here and its error later, when it is decoded.
    """
    try:
        with av.open(os.fspath(path), metadata_errors="ignore") as c:
            if c.duration:
                return max(0.0, c.duration / av.time_base)
            for s in c.streams.video:
                if s.duration and s.time_base:
                    return max(0.0, float(s.duration * s.time_base))
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError):
        pass
    return 0.0
