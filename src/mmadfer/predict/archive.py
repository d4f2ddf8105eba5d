"""Many videos through one model, pipelined: worker processes prepare windows, the main process runs the model.

The parallel part of prediction is everything before the model: decoding, sampling frames, detecting faces and
computing the fbank. :class:`VideoWindows` is an :class:`~torch.utils.data.IterableDataset` over a list of videos;
each DataLoader worker takes whole videos (shared out by duration, :func:`~mmadfer.predict.balance.balance`) and
yields every prepared window through exactly the same path as :meth:`Recognizer.predict_video
<mmadfer.predict.recognizer.Recognizer.predict_video>`, then an end-of-video marker carrying the window count or
the error. :func:`iter_videos` collects windows from all videos into batches for the runner, gives face tracks
their ids per video in window order, and yields each video's table as soon as its last window is scored, so
outputs are written while the archive is still running and one bad file costs only itself.

With the detector on a GPU (``detect_on='main'``, the default there), workers stop after decoding, sampling and the
fbank, and the main process detects faces for a whole batch of windows in one batched MTCNN call on the device.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ..errors import MediaError, MmadferError
from ..hardware import usable_cores
from ..media.decode import open_video
from ..media.detectors import detect_clips
from ..media.pipeline import sample_window
from ..media.probe import probe_duration
from ..media.windows import kept_windows
from ..timing import timed_iter
from .balance import balance
from .prefetch import prefetch
from .prepare import Preparer, WindowInfo
from .table import save_crops
from .tracks import TrackLinker

if TYPE_CHECKING:  # pragma: no cover
    from .recognizer import Recognizer

__all__ = ["VideoWindows", "VideoResult", "iter_videos", "default_workers", "DETECT_ON"]

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


def _portable(error: BaseException, path: str) -> tuple[str, str | None, str]:
    """An error as plain data that crosses a process boundary (``MmadferError``'s constructor takes two
    arguments, which pickling exceptions does not handle)."""
    if isinstance(error, MmadferError):
        return type(error).__name__, error.path, error.reason
    return "", path, f"{type(error).__name__}: {error}"


def _rebuild(kind: str, path: str | None, reason: str) -> MmadferError:
    return (MediaError if kind == "MediaError" else MmadferError)(path, reason)


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


class VideoWindows(IterableDataset):
    """Prepared windows of ``paths``, video by video: ``('window', i, (start_s, end_s, has_audio), tracks)`` for
    each kept window, then ``('end', i, windows, error)`` (``error``: None or a portable error tuple).

    With ``detect=False`` the items are ``('sampled', i, span, window)``: decoded, sampled and fbank'd, faces
    still to detect (frames as a tensor, which crosses processes through shared memory). Under a DataLoader each
    worker takes whole videos, balanced by ``durations``.
    """

    def __init__(self, preparer: Preparer, paths: Sequence[str], durations: Sequence[float], window_s: float,
                 stride_s: float, max_side: int | None, detect: bool = True):
        self.preparer, self.paths, self.durations = preparer, list(paths), list(durations)
        self.window_s, self.stride_s, self.max_side, self.detect = window_s, stride_s, max_side, detect

    def mine(self) -> list[int]:
        info = get_worker_info()
        if info is None:
            return list(range(len(self.paths)))
        return balance(self.durations, info.num_workers)[info.id]

    def __iter__(self) -> Iterator[tuple]:
        for i in self.mine():
            yield from self._video(i)

    def _video(self, i: int) -> Iterator[tuple]:
        path, n = self.paths[i], 0
        try:
            reader = open_video(path, max_side=self.max_side)
            try:
                for clip in timed_iter(kept_windows(reader, self.window_s, self.stride_s), "decode"):
                    span = (clip.start_s, clip.end_s, clip.has_audio)
                    if self.detect:
                        item = ("window", i, span, self.preparer.prepare(clip))
                    else:
                        w = sample_window(clip, self.preparer.preprocess)
                        w.frames = torch.from_numpy(np.ascontiguousarray(w.frames))
                        item = ("sampled", i, span, w)
                    n += 1
                    yield item
            finally:
                reader.close()
        except Exception as e:  # noqa: BLE001 - travels to the main process as this video's result
            yield ("end", i, n, _portable(e, path))
            return
        yield ("end", i, n, None)


@dataclass
class _Video:
    path: str
    linker: TrackLinker = field(default_factory=TrackLinker)
    rows: list = field(default_factory=list)
    queued: int = 0  # windows or tracks waiting for detection or the model
    ended: bool = False
    windows: int = 0
    error: MmadferError | None = None


def iter_videos(rec: "Recognizer", paths: Sequence[str | os.PathLike], window_s: float | None = None,
                stride_s: float | None = None, *, workers: int | None = None, save_faces=None,
                detect_on: str = "auto", durations: Sequence[float] | None = None,
                mix_videos: bool = False) -> Iterator[VideoResult]:
    """Timelines of ``paths`` with ``rec``, pipelined (see the module docstring); yields a :class:`VideoResult`
    per video in completion order.

    Args:
        workers: preparing processes (None: :func:`default_workers`; 0: in this process, in a background thread
            when ``rec.prefetch``).
        save_faces: None, or one folder (or None) per video for the crops the model saw.
        detect_on: see :data:`DETECT_ON`.
        durations: seconds per video for sharing them out (probed from the containers when not given).
        mix_videos: fill model batches with windows of several videos (fuller batches for archives of clips shorter
            than a batch). Off by default: each video's windows are batched exactly as :meth:`predict_video` batches
            them, so the tables are bit-identical to it; mixed batches can change probabilities in the last float
            bits (a matrix product's rounding depends on its batch size).
    """
    if detect_on not in DETECT_ON:
        raise ValueError(f"detect_on must be one of {DETECT_ON}, got {detect_on!r}")
    paths = [os.fspath(p) for p in paths]
    window_s = float(window_s or rec.window_s)
    stride_s = float(stride_s or window_s)
    if durations is None:
        durations = [probe_duration(p) for p in paths] if len(paths) > 1 else [0.0] * len(paths)
    if workers is None:
        workers = default_workers(durations)
    faces = list(save_faces) if save_faces is not None else [None] * len(paths)
    detector = rec.detector
    main_detect = detector is not None and (
        detect_on == "main" or (detect_on == "auto" and workers > 0
                                and str(getattr(detector, "device", "cpu")).startswith("cuda")))
    preparer = rec.preparer
    ds = VideoWindows(preparer, paths, durations, window_s, stride_s, rec.max_side, detect=not main_detect)
    if workers > 0:
        items = iter(DataLoader(ds, batch_size=None, num_workers=workers, collate_fn=_identity,
                                worker_init_fn=_SameThreads(), multiprocessing_context="forkserver",
                                prefetch_factor=max(2, rec.batch_size // workers)))
    else:
        items = prefetch(iter(ds), depth=2 * rec.batch_size) if rec.prefetch else iter(ds)
    videos = {i: _Video(p) for i, p in enumerate(paths)}
    to_detect: list[tuple[int, Any, Any]] = []
    pending: dict[int, list[tuple[int, Any, dict, int, int]]] = {}  # batches being filled: per video, or one (-1)

    def queue_tracks(i: int, span, tracks: list[dict]) -> None:
        v, key = videos[i], -1 if mix_videos else i
        batch = pending.setdefault(key, [])
        for prepared, tid in zip(tracks, rec.track_ids(tracks, v.linker)):
            batch.append((i, span, prepared, tid, len(tracks)))
            v.queued += 1
        if len(batch) >= rec.batch_size:  # checked per window, as Recognizer.iter_video does
            flush(key)

    def detect_queued() -> None:
        """Faces for every sampled window waiting, one detector call per frame size, then their tracks."""
        by_shape: dict[tuple, list[int]] = {}
        for k, (_, _, w) in enumerate(to_detect):
            w.frames = w.frames.numpy() if isinstance(w.frames, torch.Tensor) else w.frames
            by_shape.setdefault(w.frames.shape[1:], []).append(k)
        found: dict[int, list] = {}
        for ks in by_shape.values():
            found.update(zip(ks, detect_clips(detector, [to_detect[k][2].frames for k in ks])))
        waiting = to_detect[:]
        to_detect.clear()
        for k, (i, span, w) in enumerate(waiting):
            videos[i].queued -= 1
            queue_tracks(i, span, preparer.prepare_sampled(w, found[k]))

    def flush(key: int) -> None:
        batch = pending.pop(key, [])
        if not batch:
            return
        probs = rec.predict_prepared([p for _, _, p, _, _ in batch])  # [B, C]
        for (i, span, prepared, tid, n_tracks), p in zip(batch, probs):
            v = videos[i]
            v.queued -= 1
            if v.error is not None:
                continue
            row = rec.window_row(WindowInfo(v.path, *span), prepared, p, tid)
            if faces[i] is not None:
                save_crops(faces[i], row, prepared["video"], with_track=n_tracks > 1)
            v.rows.append(row)

    def finished() -> Iterator[VideoResult]:
        for i in [i for i, v in videos.items() if v.ended and v.queued == 0]:
            v = videos.pop(i)
            table = None if v.error is not None else rec.timeline(v.path, v.rows, window_s, stride_s)
            yield VideoResult(i, v.path, table, v.error, v.windows)

    try:
        for kind, i, payload, extra in items:
            v = videos[i]
            if kind == "end":
                v.ended, v.windows = True, payload
                if extra is not None:
                    v.error = _rebuild(*extra)
                if any(j == i for j, _, _ in to_detect):
                    detect_queued()
                if not mix_videos:
                    flush(i)  # the video's last, partial batch
            elif kind == "sampled":
                to_detect.append((i, payload, extra))
                v.queued += 1
                if len(to_detect) >= rec.batch_size:
                    detect_queued()
            else:
                queue_tracks(i, payload, extra)
            yield from finished()
        if to_detect:
            detect_queued()
        for key in list(pending):
            flush(key)
        yield from finished()
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()  # the prefetch thread, or the generator of VideoWindows
        del items  # a DataLoader iterator stops its workers when dropped
