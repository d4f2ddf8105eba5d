"""The timeline chart: class probabilities over time, stacked, with the top label of each window.

Each window is a stacked bar of its class probabilities (they sum to 1), drawn from its start over one stride (or
to its end, if shorter), so overlapping windows tile the time axis without overdrawing. A strip above names the top
label, merging consecutive windows with the same label. A dashed line shows the fraction of sampled frames in which
a face was found; windows without audio are marked. With several face tracks there is one panel per track.

Class and file names are drawn as written (:func:`mmadfer.text.chart_text`: no mathtext, undecodable bytes as
``\\xNN``). Uses matplotlib's object API (``Figure`` + Agg canvas), never pyplot, so it works headless and in threads.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .._optional import require
from ..io import atomic_path
from ..text import chart_text

__all__ = ["plot_timeline", "class_colors"]


def class_colors(labels: Sequence[str]) -> dict[str, tuple]:
    """A fixed colour per class (tab10, or tab20 beyond 10 classes), in label order."""
    mpl = require("matplotlib", "timeline plots")
    cmap = mpl.colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {c: cmap(i % cmap.N) for i, c in enumerate(labels)}


def _segments(labels: Sequence[str], x0: np.ndarray, x1: np.ndarray) -> list[tuple[str, float, float]]:
    """Runs of equal consecutive labels as ``(label, start, end)``."""
    out: list[tuple[str, float, float]] = []
    for lab, a, b in zip(labels, x0, x1):
        if out and out[-1][0] == lab and a <= out[-1][2] + 1e-6:
            out[-1] = (lab, out[-1][1], max(out[-1][2], b))
        else:
            out.append((lab, float(a), float(b)))
    return out


def _rects(x0: np.ndarray, x1: np.ndarray, y0: np.ndarray, y1: np.ndarray) -> np.ndarray:
    """Rectangles as polygon vertices ``[N, 4, 2]`` (for one PolyCollection instead of N patches)."""
    return np.stack([np.stack([x0, y0], -1), np.stack([x1, y0], -1), np.stack([x1, y1], -1),
                     np.stack([x0, y1], -1)], axis=1)


def _panel(ax, strip, df, labels: Sequence[str], colors: dict, stride_s: float) -> None:
    from matplotlib.collections import PolyCollection

    start = df["start_s"].to_numpy(float)
    end = df["end_s"].to_numpy(float)
    stop = start + np.minimum(end - start, stride_s)  # overlapping windows tile instead of overdrawing
    bottom = np.zeros(len(df))
    for c in labels:  # one collection per class: hours of windows draw as fast as a few
        p = df[f"p_{c}"].to_numpy(float)
        ax.add_collection(PolyCollection(_rects(start, stop, bottom, bottom + p), facecolors=colors[c],
                                         linewidths=0, label=chart_text(c)))
        bottom = bottom + p
    centre = (start + stop) / 2
    if "face_coverage" in df:
        ax.plot(centre, df["face_coverage"].to_numpy(float), "k--", lw=1, label="face coverage")
    if "has_audio" in df and not df["has_audio"].all():
        silent = ~df["has_audio"].to_numpy(bool)
        ax.plot(centre[silent], np.full(silent.sum(), 1.03), "kx", ms=4, clip_on=False, label="no audio")
    lo, hi = (start.min(), stop.max()) if len(df) else (0.0, 1.0)
    ax.set_xlim(lo, hi)
    ax.set_ylim(0, 1)
    ax.set_ylabel("probability")

    inches_per_s = 0.8 * ax.figure.get_figwidth() / max(hi - lo, 1e-6)
    segments = _segments(df["label"].tolist(), start, stop)
    for lab in dict.fromkeys(lab for lab, _, _ in segments):
        strip.broken_barh([(a, b - a) for name, a, b in segments if name == lab], (-0.5, 1),
                          facecolors=colors.get(lab, "grey"), edgecolors="white", linewidths=0.5)
    for lab, a, b in segments:
        room = (b - a) * inches_per_s
        text = next((t for t in (lab, lab[:3]) if room >= 0.075 * len(t) + 0.04), None)  # 8 pt: ~0.075 in/char
        if text:
            strip.text((a + b) / 2, 0, chart_text(text), ha="center", va="center", fontsize=8, color="white",
                       fontweight="bold", clip_on=True)
    strip.set_ylim(-0.5, 0.5)
    strip.set_yticks([])
    strip.set_ylabel("top", rotation=0, ha="right", va="center")


def plot_timeline(df, path: str | os.PathLike | None = None, *, title: str | None = None, dpi: int = 120):
    """Draw a timeline table (:meth:`mmadfer.Recognizer.predict_video`'s output) and return the Figure.

    ``path``: also save it there (PNG, SVG or PDF by suffix), atomically. Class names come from ``df.attrs['labels']``
    or the ``p_<class>`` columns.
    """
    require("matplotlib", "timeline plots")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = list(df.attrs.get("labels") or [c[2:] for c in df.columns if c.startswith("p_")])
    colors = class_colors(labels)
    stride_s = float(df.attrs.get("stride_s") or (df["end_s"] - df["start_s"]).max() or 1.0)
    tracks = sorted(df["track_id"].unique()) if "track_id" in df and len(df) else [None]

    fig = Figure(figsize=(max(8.0, min(24.0, 0.25 * len(df) / len(tracks) + 6)), 1.0 + 2.6 * len(tracks)),
                 dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2 * len(tracks), 1, height_ratios=[1, 6] * len(tracks))
    ax = None
    for i, track in enumerate(tracks):
        part = df if track is None else df[df["track_id"] == track]
        strip = fig.add_subplot(grid[2 * i], sharex=ax)
        ax = fig.add_subplot(grid[2 * i + 1], sharex=strip)
        _panel(ax, strip, part, labels, colors, stride_s)
        strip.tick_params(labelbottom=False)
        if track is not None:
            strip.set_title(f"face track {track}", fontsize=9, loc="left")
    ax.set_xlabel("time (s)")
    handles, names = ax.get_legend_handles_labels()
    fig.legend(handles, names, loc="outside right upper", fontsize=8, frameon=False)
    name = title or Path(str(df.attrs.get("video", ""))).name
    if name:
        fig.suptitle(chart_text(name), fontsize=10)
    if path is not None:
        path = Path(path)
        with atomic_path(path, suffix=path.suffix) as tmp:
            fig.savefig(tmp, format=(path.suffix.lstrip(".") or "png").lower())
    return fig
