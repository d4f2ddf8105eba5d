"""The window rule: which spans of a video get a prediction.

By default a window is the model's own input: the 5.12 s that its 512-frame fbank covers, from which 16 frames are
sampled (``PreprocessConfig.window_s``). The default stride is one window (no overlap); a smaller stride gives a
smoother timeline at proportionally more compute. Windows start at ``0, stride, 2·stride, …`` while the start is
before the end of the video, and are cut at the end. A cut window shorter than half a window is dropped (too little
evidence, and its fbank would be mostly padding) unless it is the first, so a video shorter than one window still gets
one row. :func:`window_spans` computes the spans for a known duration, :func:`kept_windows` streams them from a
reader, and live capture (:mod:`mmadfer.predict.realtime`) applies the same :func:`keep_window`.
"""
from __future__ import annotations

import math
from typing import Any, Iterator

__all__ = ["keep_window", "kept_windows", "window_spans", "count_windows", "MIN_WINDOW_FRACTION", "DEFAULT_MAX_SIDE"]

#: A cut final window shorter than this fraction of a window is dropped (unless it is the only one).
MIN_WINDOW_FRACTION = 0.5
#: Frames are downscaled at decode time so their longer side is at most this (bounds a window's memory on 4K video;
#: faces stay far above the model's 224 px).
DEFAULT_MAX_SIDE = 720
_EPS = 1e-6


def keep_window(index: int, length_s: float, window_s: float) -> bool:
    """Whether window ``index`` (0-based), cut to ``length_s`` seconds at the end of the video, gets a row."""
    return index == 0 or length_s >= MIN_WINDOW_FRACTION * window_s - _EPS


def kept_windows(reader, window_s: float, stride_s: float | None = None, *, start_s: float = 0.0,
                 end_s: float | None = None) -> Iterator[Any]:
    """The windows of a :class:`~mmadfer.media.decode.VideoReader` that get a prediction: a cut final window is
    dropped by :func:`keep_window`, and windows without video frames (past the end of the video stream, or in a
    gap of its timestamps) are skipped without being walked one by one, so the work is bounded by the decoded
    content, never by a timestamp."""
    stride_s = window_s if stride_s is None else stride_s
    for clip in reader.windows(window_s, stride_s, start_s=start_s, end_s=end_s, skip_empty=True):
        k = round((clip.start_s - start_s) / stride_s)
        if not keep_window(k, clip.duration_s, window_s):
            break
        yield clip


def count_windows(duration_s: float, window_s: float, stride_s: float | None = None, *, start_s: float = 0.0,
                  end_s: float | None = None) -> int:
    """``len(window_spans(...))`` without building the list: constant time and memory for any duration."""
    stride_s = window_s if stride_s is None else stride_s
    if window_s <= 0 or stride_s <= 0:
        raise ValueError(f"window and stride must be positive, got {window_s} and {stride_s}")
    stop = duration_s if end_s is None else min(end_s, duration_s)
    n = max(0, math.ceil((stop - start_s - _EPS) / stride_s))  # windows that start before the end
    long_enough = math.floor((stop - start_s - MIN_WINDOW_FRACTION * window_s + _EPS) / stride_s) + 1
    return max(min(n, long_enough), min(n, 1))  # the first window is kept however short


def window_spans(duration_s: float, window_s: float, stride_s: float | None = None, *, start_s: float = 0.0,
                 end_s: float | None = None) -> list[tuple[float, float]]:
    """The ``(start_s, end_s)`` of every window :meth:`Recognizer.predict_video` produces for a video of
    ``duration_s`` seconds.

    Example: 12.0 s, window 5.12 s, stride 2.0 s gives starts 0, 2, 4, 6, 8, 10; the window at 8 is cut to 4.0 s
    (kept) and the one at 10 to 2.0 s, under half a window (dropped): 5 windows.
    """
    stride_s = window_s if stride_s is None else stride_s
    if window_s <= 0 or stride_s <= 0:
        raise ValueError(f"window and stride must be positive, got {window_s} and {stride_s}")
    stop = duration_s if end_s is None else min(end_s, duration_s)
    spans = []
    for k in range(max(0, math.ceil((stop - start_s - _EPS) / stride_s))):
        t0 = start_s + k * stride_s
        t1 = min(t0 + window_s, stop)
        if not keep_window(k, t1 - t0, window_s):
            break
        spans.append((round(t0, 6), round(t1, 6)))
    return spans
