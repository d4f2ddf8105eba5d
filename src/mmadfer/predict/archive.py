"""Many videos through one model, pipelined: worker processes prepare windows, the main process runs the model.

The parallel part of prediction is everything before the model: decoding, sampling frames, detecting faces and
computing the fbank. :class:`VideoWindows` is an :class:`~torch.utils.data.IterableDataset` over a list of videos;
each DataLoader worker takes whole videos (shared out by duration, :func:`~mmadfer.predict.balance.balance`) and
yields every prepared window (:class:`~mmadfer.predict.engine.Window`) through exactly the same path as
:meth:`Recognizer.predict_video <mmadfer.predict.recognizer.Recognizer.predict_video>`, then an
:class:`~mmadfer.predict.engine.End` carrying the window count or the error. :func:`iter_videos` runs them through
the one :class:`~mmadfer.predict.engine.Engine` (batches, track ids per video, rows) and yields each video's table
as soon as its last window is scored, so outputs are written while the archive is still running and one bad file
costs only itself.

With the detector on a GPU (``detect_on='main'``, the default there), workers stop after decoding, sampling and the
fbank, and the main process detects faces for a whole batch of windows in one batched MTCNN call on the device.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ..errors import MmadferError
from ..hardware import usable_cores
from ..media.decode import open_video
from ..media.detectors import detect_clips
from ..media.pipeline import sample_window
from ..media.probe import probe_duration
from ..media.windows import kept_windows
from ..timing import timed_iter
from .balance import balance
from .engine import End, Engine, Finished, Scored, Window
from .prefetch import prefetch
from .prepare import Preparer, WindowInfo

__all__ = ["VideoWindows", "VideoResult", "Sampled", "detect_in_batches", "iter_videos", "default_workers", "DETECT_ON"]

#: Where faces are detected: ``'workers'`` (inside each worker, per window), ``'main'`` (batched across windows in
#: the main process, on the recogniser's device), ``'auto'`` (``'main'`` when the detector is on a GPU).
DETECT_ON = ("auto", "workers", "main")
#: Videos shorter than this in total are prepared in the main process by default (workers cost a start-up).
SHORT_JOB_S = 30.0
#: Default ceiling on worker processes (each holds a face detector and a decoded window or two).
MAX_WORKERS = 8


def default_workers(durations: Sequence[float], cores: int | None = None) -> int:
    """Worker processes for a list of videos: none for a single short job (starting workers costs more than it
    saves), else one per spare core (one core is left to the model), at most MAX_WORKERS and one per video.
    Under torchrun each local rank counts only its share of the cores."""
    if cores is None:
        cores = max(1, usable_cores() // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    if len(durations) <= 1 and sum(durations) < SHORT_JOB_S:
        return 0
    return max(1, min(MAX_WORKERS, cores - 1, len(durations)))


@dataclass
class VideoResult:
    """One finished video: its ``table`` (None when it failed) or ``error``, and the windows it produced."""

    index: int
    path: str
    table: pd.DataFrame | None = None
    error: MmadferError | None = None
    windows: int = 0


def _identity(x):
    return x


class _SameThreads:
    """A DataLoader ``worker_init_fn`` that gives each worker the main process's intra-op thread count.

    DataLoader starts workers with one thread; face detection (MTCNN's convolutions) and the fbank then sum in
    another order than in the main process, and the last bits of a window's inputs, hence its probabilities, could
    differ from sequential predict's. Same threads, same arithmetic: the timelines stay bit-identical. Workers start
    from a fork server, not a fork of this process: a forked child that starts an OpenMP pool the parent already
    used can deadlock.
    """

    def __init__(self) -> None:
        self.threads = torch.get_num_threads()

    def __call__(self, worker_id: int) -> None:
        torch.set_num_threads(self.threads)


@dataclass
class Sampled:
    """A window of video ``stream`` decoded, sampled and fbank'd, its faces still to detect (in the main process)."""

    stream: int
    info: WindowInfo
    window: Any  # a SampledWindow whose frames are a tensor (it crosses processes through shared memory)


class VideoWindows(IterableDataset):
    """Prepared windows of ``paths``, video by video: a :class:`~mmadfer.predict.engine.Window` (stream: the video's
    index) for each kept window, then an :class:`~mmadfer.predict.engine.End` with the count or the error.

    With ``detect=False`` the windows come as :class:`Sampled` (faces still to detect). Under a DataLoader each
    worker takes whole videos, balanced by ``durations``.
    """

    def __init__(self, preparer: Preparer, paths: Sequence[str], durations: Sequence[float], window_s: float,
                 stride_s: float, max_side: int | None, detect: bool = True, start_s: float = 0.0,
                 end_s: float | None = None):
        self.preparer, self.paths, self.durations = preparer, list(paths), list(durations)
        self.window_s, self.stride_s, self.max_side, self.detect = window_s, stride_s, max_side, detect
        self.start_s, self.end_s = start_s, end_s  # the part of each video to analyse

    def mine(self) -> list[int]:
        info = get_worker_info()
        if info is None:
            return list(range(len(self.paths)))
        return balance(self.durations, info.num_workers)[info.id]

    def __iter__(self) -> Iterator[Window | Sampled | End]:
        for i in self.mine():
            yield from self._video(i)

    def _video(self, i: int) -> Iterator[Window | Sampled | End]:
        path, n = self.paths[i], 0
        try:
            reader = open_video(path, max_side=self.max_side)
            try:
                spans = kept_windows(reader, self.window_s, self.stride_s, start_s=self.start_s, end_s=self.end_s)
                for clip in timed_iter(spans, "decode"):
                    info = WindowInfo(clip.path, clip.start_s, clip.end_s, clip.has_audio)
                    if self.detect:
                        item = Window(i, info, self.preparer.prepare(clip))
                    else:
                        w = sample_window(clip, self.preparer.preprocess)
                        w.frames = torch.from_numpy(np.ascontiguousarray(w.frames))
                        item = Sampled(i, info, w)
                    n += 1
                    yield item
            finally:
                reader.close()
        except Exception as e:  # noqa: BLE001 - travels to the main process as this video's result
            if not isinstance(e, MmadferError):
                wrapped = MmadferError(path, f"{type(e).__name__}: {e}")
                wrapped.__cause__ = e  # the traceback, where it does not cross a process
                e = wrapped
            yield End(i, n, e)
            return
        yield End(i, n)


def detect_in_batches(items: Iterable[Window | Sampled | End], preparer: Preparer,
                      batch_size: int) -> Iterator[Window | End]:
    """Faces for :class:`Sampled` windows, ``batch_size`` windows per detector call (one call per frame size),
    as :class:`~mmadfer.predict.engine.Window` in arrival order; a video's :class:`End` follows its windows."""
    waiting: list[Sampled] = []

    def detect() -> Iterator[Window]:
        by_shape: dict[tuple, list[int]] = {}
        for k, item in enumerate(waiting):
            w = item.window
            w.frames = w.frames.numpy() if isinstance(w.frames, torch.Tensor) else w.frames
            by_shape.setdefault(w.frames.shape[1:], []).append(k)
        found: dict[int, list] = {}
        for ks in by_shape.values():
            found.update(zip(ks, detect_clips(preparer.detector, [waiting[k].window.frames for k in ks])))
        ready = waiting[:]
        waiting.clear()
        for k, item in enumerate(ready):
            yield Window(item.stream, item.info, preparer.prepare_sampled(item.window, found[k]))

    for item in items:
        if isinstance(item, Sampled):
            waiting.append(item)
            if len(waiting) >= batch_size:
                yield from detect()
        else:
            if isinstance(item, End) and any(w.stream == item.stream for w in waiting):
                yield from detect()
            yield item
    if waiting:
        yield from detect()


def iter_videos(engine: Engine, preparer: Preparer, paths: Sequence[str | os.PathLike],
                to_table: Callable[[str, list[dict[str, Any]]], pd.DataFrame], window_s: float, stride_s: float, *,
                workers: int | None = None, batch_size: int = 8, prefetch_windows: bool = True,
                max_side: int | None = None, detect_on: str = "auto",
                durations: Sequence[float] | None = None) -> Iterator[VideoResult]:
    """Timelines of ``paths`` through ``engine``, pipelined (see the module docstring); yields a
    :class:`VideoResult` per video in completion order (its ``table`` from ``to_table(path, rows)``).

    Args:
        preparer: what the workers run (:attr:`Recognizer.preparer <mmadfer.predict.recognizer.Recognizer.preparer>`).
        workers: preparing processes (None: :func:`default_workers`; 0: in this process, in a background thread
            when ``prefetch_windows``).
        batch_size: windows per face-detection call when faces are detected here (``detect_on='main'``); the
            engine's own batch size is the model's.
        detect_on: see :data:`DETECT_ON`.
        durations: seconds per video for sharing them out (probed from the containers when not given).
    """
    if detect_on not in DETECT_ON:
        raise ValueError(f"detect_on must be one of {DETECT_ON}, got {detect_on!r}")
    paths = [os.fspath(p) for p in paths]
    if durations is None:
        durations = [probe_duration(p) for p in paths] if len(paths) > 1 else [0.0] * len(paths)
    if workers is None:
        workers = default_workers(durations)
    detector = preparer.detector
    main_detect = detector is not None and (
        detect_on == "main" or (detect_on == "auto" and workers > 0
                                and str(getattr(detector, "device", "cpu")).startswith("cuda")))
    ds = VideoWindows(preparer, paths, durations, window_s, stride_s, max_side, detect=not main_detect)
    if workers > 0:
        items = iter(DataLoader(ds, batch_size=None, num_workers=workers, collate_fn=_identity,
                                worker_init_fn=_SameThreads(), multiprocessing_context="forkserver",
                                prefetch_factor=max(2, batch_size // workers)))
    else:
        items = prefetch(iter(ds), depth=2 * batch_size) if prefetch_windows else iter(ds)
    rows: dict[int, list[dict[str, Any]]] = {i: [] for i in range(len(paths))}
    try:
        windows = detect_in_batches(items, preparer, batch_size) if main_detect else items
        for event in engine.run(windows):
            if isinstance(event, Scored):
                rows[event.stream].append(event.row)
            elif isinstance(event, Finished):
                i = event.stream
                table = None if event.error is not None else to_table(paths[i], rows.pop(i))
                yield VideoResult(i, paths[i], table, event.error, event.windows)
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()  # the prefetch thread, or the generator of VideoWindows
        del items  # a DataLoader iterator stops its workers when dropped
