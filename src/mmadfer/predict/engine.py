"""The one prediction engine: a stream of prepared windows in, timeline rows out, the model run in batches.

Every way of predicting feeds it: one video (:meth:`Recognizer.predict_video
<mmadfer.predict.recognizer.Recognizer.predict_video>`), an archive prepared by worker processes and shared out
over torchrun ranks (:mod:`mmadfer.predict.archive`), a live buffer (:mod:`mmadfer.predict.realtime`) and the web
app's jobs and Live view, which use those. What differs is only where windows come from::

    engine = Engine(score, labels, batch_size=8, on_progress=print)
    for event in engine.run(windows):          # windows: Window(stream, info, tracks) ..., End(stream, n, error)
        if isinstance(event, Scored): ...      # event.row, one timeline row, as soon as its batch is scored
        else: ...                              # Finished(stream, windows, error): the stream's last row is out

**Streams.** Each window belongs to a stream (a video); face tracks get stable ids per stream
(:class:`~mmadfer.predict.tracks.TrackLinker`, in window order), and a stream is finished when its :class:`End`
has arrived and its last window is scored. A stream whose :class:`End` carries an error produces no more rows.

**Batches.** A window's face tracks are queued together; when a queue holds ``batch_size`` or more the model scores
it in one call (the ``scorer``: a list of prepared inputs -> probabilities ``[B, C]``). Each stream has its own
queue, flushed at its end, so a video's batches are the same whichever way it arrives and its probabilities are
bit-identical between paths; ``mix=True`` shares one queue between streams (fuller batches for many short clips; a
matrix product's rounding depends on its batch, so the last float bits can differ).

**Rows** come from :func:`mmadfer.predict.rows.window_row`: the label rules (``no_face``, ``uncertain``) hold on every
path. **Progress** goes to ``on_progress(Progress)`` at the start, for every window that joins a batch, after every
scored batch and at the end (an exception raised there stops the run, which is how the web app cancels): stage,
windows done and expected, seconds elapsed and an estimate of the seconds left.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterable, Iterator, Mapping, Protocol, Sequence

import numpy as np

from ..errors import MmadferError
from .prepare import WindowInfo
from .rows import window_row
from .table import save_crops
from .tracks import TrackLinker

__all__ = ["Engine", "Window", "End", "Scored", "Finished", "Progress", "Scorer", "track_ids"]


class Scorer(Protocol):
    """Probabilities ``[B, C]`` for a list of prepared windows (one forward pass)."""

    def __call__(self, prepared: list[dict[str, Any]]) -> np.ndarray: ...


@dataclass
class Window:
    """One prepared window of stream ``stream``: where it is and its model inputs, one per face track. ``meta`` rides
    along to the :class:`Scored` events of its rows (e.g. the arrival time of a live window)."""

    stream: Hashable
    info: WindowInfo
    tracks: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class End:
    """Stream ``stream`` has no more windows: ``windows`` were sent; ``error``, if any, stops its rows."""

    stream: Hashable
    windows: int = 0
    error: MmadferError | None = None


@dataclass
class Scored:
    """One timeline row of ``stream``, with the model inputs it came from and its window's ``meta``."""

    stream: Hashable
    row: dict[str, Any]
    prepared: dict[str, Any]
    meta: dict[str, Any]


@dataclass
class Finished:
    """Stream ``stream`` is done: every row it will have has been yielded."""

    stream: Hashable
    windows: int
    error: MmadferError | None = None


@dataclass(frozen=True)
class Progress:
    """Where a run is: ``stage`` (``'starting'``: waiting for the first window; ``'preparing'``: a window joined the
    next batch; ``'predicting'``: a batch was scored; ``'done'``),
    ``windows_done`` (windows scored, all their faces), ``windows_total`` (None when unknown), ``elapsed_s`` since
    the run started and ``estimate_s`` (seconds left at the rate so far; None until known)."""

    stage: str
    windows_done: int
    windows_total: int | None
    elapsed_s: float
    estimate_s: float | None = None


def track_ids(tracks: Sequence[dict[str, Any]], linker: TrackLinker) -> list[int]:
    """Stable ids for a window's face tracks (``-1``: no face found, the whole frame was used)."""
    return linker.link([None if p.get("face_fallback") or p.get("boxes") is None else p["boxes"] for p in tracks])


@dataclass
class _Stream:
    linker: TrackLinker = field(default_factory=TrackLinker)
    queued: int = 0  # tracks waiting for the model
    ended: bool = False
    windows: int = 0
    error: MmadferError | None = None


class Engine:
    """Scores :class:`Window` streams in batches and yields :class:`Scored` rows and :class:`Finished` streams.

    Args:
        scorer: prepared inputs -> probabilities ``[B, C]`` (:meth:`Recognizer.predict_prepared
            <mmadfer.predict.recognizer.Recognizer.predict_prepared>`).
        labels: the class names, in the model's order.
        batch_size: tracks per forward pass (a window's tracks are never split).
        mix: share one batch queue between streams (see the module docstring).
        min_confidence, min_face_coverage: the label rules of :func:`~mmadfer.evaluation.selective.evidence_label`.
        on_window: ``on_window(row, prepared)`` for every row as it is produced (it may raise to stop the run).
        on_progress: ``on_progress(Progress)``, see the module docstring.
        windows_total: windows expected over all streams, for the progress estimate (None: unknown).
        save_faces: ``{stream: folder}``: write the crops each row's model saw there (:func:`save_crops`).
    """

    def __init__(self, scorer: Scorer, labels: Sequence[str], *, batch_size: int = 8, mix: bool = False,
                 min_confidence: float | None = None, min_face_coverage: float | None = None,
                 on_window: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
                 on_progress: Callable[[Progress], None] | None = None, windows_total: int | None = None,
                 save_faces: Mapping[Hashable, Any] | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.scorer, self.labels, self.batch_size, self.mix = scorer, tuple(labels), batch_size, mix
        self.min_confidence, self.min_face_coverage = min_confidence, min_face_coverage
        self.on_window, self.on_progress, self.windows_total = on_window, on_progress, windows_total
        self.save_faces = dict(save_faces or {})

    def run(self, items: Iterable[Window | End]) -> Iterator[Scored | Finished]:
        """Score ``items`` (see the class docstring); streams finish in the order their last row is scored."""
        streams: dict[Hashable, _Stream] = {}
        queues: dict[Hashable, list[tuple[Window, dict[str, Any], int, bool]]] = {}
        t0, done = time.perf_counter(), 0

        def progress(stage: str) -> None:
            if self.on_progress is None:
                return
            elapsed = time.perf_counter() - t0
            left = None
            if self.windows_total is not None and done:
                left = max(0.0, elapsed / done * (self.windows_total - done))
            self.on_progress(Progress(stage, done, self.windows_total, elapsed, left))

        def flush(key: Hashable) -> Iterator[Scored]:
            nonlocal done
            batch = queues.pop(key, [])
            if not batch:
                return
            probs = self.scorer([prepared for _, prepared, _, _ in batch])  # [B, C]
            for (window, prepared, tid, last), p in zip(batch, probs):
                s = streams[window.stream]
                s.queued -= 1
                done += last
                if s.error is not None:
                    continue
                row = window_row(window.info, prepared, p, self.labels, tid, min_confidence=self.min_confidence,
                                 min_face_coverage=self.min_face_coverage)
                folder = self.save_faces.get(window.stream)
                if folder is not None:
                    save_crops(folder, row, prepared["video"], with_track=len(window.tracks) > 1)
                if self.on_window is not None:
                    self.on_window(row, prepared)
                yield Scored(window.stream, row, prepared, window.meta)
            progress("predicting")

        def finished() -> Iterator[Finished]:
            for key in [k for k, s in streams.items() if s.ended and s.queued == 0]:
                s = streams.pop(key)
                yield Finished(key, s.windows, s.error)

        progress("starting")
        for item in items:
            s = streams.setdefault(item.stream, _Stream())
            queue = None if self.mix else item.stream
            if isinstance(item, End):
                s.ended, s.windows = True, item.windows
                s.error = s.error or item.error
                if not self.mix:
                    yield from flush(queue)  # the stream's last, partial batch
            else:
                batch = queues.setdefault(queue, [])
                for k, (prepared, tid) in enumerate(zip(item.tracks, track_ids(item.tracks, s.linker))):
                    batch.append((item, prepared, tid, k == len(item.tracks) - 1))
                    s.queued += 1
                if len(batch) >= self.batch_size:  # checked per window: its tracks stay in one batch
                    yield from flush(queue)
                else:
                    progress("preparing")  # per window, so a caller can stop between windows, not only batches
            yield from finished()
        for key in list(queues):
            yield from flush(key)
        yield from finished()
        progress("done")
