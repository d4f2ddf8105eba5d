"""Live recognition: a rolling 5.12 s buffer over a camera, a stream or a file, with a prediction every stride.

::

    rec = mmadfer.Recognizer.from_checkpoint("dfew_fold1.pth")
    for row in run_realtime(rec, "/dev/video0", stride_s=1.0):       # or "rtsp://...", or "clip.mp4"
        print(f"{row['end_s']:7.2f}s {row['label']:>9} {row['confidence']:.2f}  latency {row['latency_ms']:.0f} ms")

A capture thread (:mod:`mmadfer.media.live`) demuxes the source with PyAV (anything FFmpeg can open: a file,
``/dev/videoN`` via v4l2, an ``rtsp://``/``http://`` URL) into a rolling buffer that keeps the last window of frames and audio. The main loop waits
until the window ending at the next due time is complete (its last frame and its audio have arrived), prepares it
exactly as :meth:`mmadfer.Recognizer.predict_video` does, runs the model and yields a timeline row with two more
fields:

* ``latency_ms``: wall-clock time from the arrival of the window's last frame to its prediction (decoding of later
  media, face detection, features and the model included).
* ``skipped``: windows dropped so far because the model fell behind a live source. A live source never waits for
  the model: the buffer keeps only the newest window, and when a prediction takes longer than a stride the due time
  jumps to the newest complete window. A file is read at decoding speed and every window is predicted, unless
  ``pace=True`` replays it at its own frame rate, like a camera.

On a CPU the loop runs PyTorch with one thread fewer than the cores the process may use (:func:`live_threads`), so the
capture thread that decodes the source always has a core: with as many intra-op threads as cores, MTCNN's many
small operations wait at OpenMP barriers for the core the decoder holds, and when other processes also want the
cores each window's face detection takes several times longer (on an idle machine the two counts are within about
10%; BENCHMARKS.md, issue 21). The previous count is restored when the loop ends.

Windows follow the same rule as :func:`mmadfer.media.windows.window_spans`: every ``stride_s`` from the start, and
at the end of a file a cut window is kept if it is at least half a window long (or the only one).
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any, Iterator

import torch

from ..errors import MediaError
from ..hardware import usable_cores
from ..media.live import LiveBuffer, capture, open_source
from ..media.windows import keep_window
from .engine import Scored, Window
from .prepare import WindowInfo

__all__ = ["run_realtime", "predict_buffer", "live_threads"]

_EPS = 1e-6
_AUDIO_WAIT_S = 0.5  # emit without the last bit of audio if it lags the video by more than this


def run_realtime(recognizer, source: str | os.PathLike, *, stride_s: float | None = None,
                 window_s: float | None = None, pace: bool = False, max_windows: int | None = None,
                 input_format: str | None = None) -> Iterator[dict[str, Any]]:
    """Yield a prediction row every ``stride_s`` seconds of media (default 1 s) over a rolling ``window_s`` buffer
    (default the model's 5.12 s). Rows are :meth:`Recognizer.predict_video` rows plus ``latency_ms`` and ``skipped``.

    ``pace=True`` replays a file at its own frame rate (to measure latency as a camera would see it).
    ``max_windows`` stops after that many predictions (a camera never ends by itself).
    """
    window_s = float(window_s or recognizer.window_s)
    stride_s = float(stride_s or 1.0)
    container, live = open_source(source, input_format=input_format)
    live = live or pace
    buf = LiveBuffer(os.fspath(source))
    stop = threading.Event()
    hold = [window_s]  # media time the capture may run ahead to (files at full speed only)
    worker = threading.Thread(target=capture, args=(container, buf), daemon=True, name="mmadfer-capture",
                              kwargs=dict(max_side=recognizer.max_side, live=live, pace=pace, hold_until=hold,
                                          keep_s=window_s + 2 * stride_s + 1.0, stop=stop))
    threads = torch.get_num_threads()
    worker.start()
    try:
        torch.set_num_threads(live_threads(recognizer.device, threads))
        yield from predict_buffer(recognizer, buf, window_s=window_s, stride_s=stride_s, live=live, hold=hold,
                                  max_windows=max_windows)
    finally:
        stop.set()
        with buf.cond:
            buf.cond.notify_all()
        worker.join(timeout=5)
        container.close()
        torch.set_num_threads(threads)


def live_threads(device: Any, threads: int, cores: int | None = None) -> int:
    """PyTorch's intra-op threads while a capture thread decodes beside the model on ``device``: on a CPU, at most one
    fewer than ``cores`` (default :func:`~mmadfer.hardware.usable_cores`), at least 1, never more than ``threads``
    (the current count); on a GPU, ``threads`` unchanged."""
    if torch.device(device).type != "cpu":
        return threads
    return max(1, min(threads, (cores or usable_cores()) - 1))


def predict_buffer(recognizer, buf: LiveBuffer, *, window_s: float, stride_s: float, live: bool,
                   hold: list[float] | None = None, max_windows: int | None = None) -> Iterator[dict[str, Any]]:
    """The rolling-window loop over a :class:`LiveBuffer` that another thread fills (a capture thread, or the web
    app's Live WebSocket): waits for each window ``[due - window_s, due)``, due every ``stride_s``, predicts it with
    the recogniser's :class:`~mmadfer.predict.engine.Engine` (one window per batch: no waiting for a second) and
    yields its rows with ``latency_ms`` and ``skipped``; returns when ``buf.ended`` is set and no window is left.

    ``hold`` (files read at full speed): a one-item list the loop sets to how far ahead the producer may decode.
    """
    windows = _live_windows(recognizer, buf, window_s=window_s, stride_s=stride_s, live=live, hold=hold,
                            max_windows=max_windows)
    for event in recognizer.engine(batch_size=1).run(windows):
        if isinstance(event, Scored):
            meta = event.meta  # shared by the rows of one window: one latency for all its faces
            latency = meta.setdefault("latency_ms", 1000.0 * (time.perf_counter() - meta["arrival"]))
            yield {**event.row, "latency_ms": latency, "skipped": meta["skipped"]}


def _live_windows(recognizer, buf: LiveBuffer, *, window_s: float, stride_s: float, live: bool,
                  hold: list[float] | None, max_windows: int | None) -> Iterator[Window]:
    """The windows of :func:`predict_buffer`, prepared, as they complete (``meta``: arrival time, windows skipped)."""
    k = skipped = emitted = 0
    while max_windows is None or emitted < max_windows:
        due = window_s + k * stride_s  # window k is [due - window_s, due)
        t0 = due - window_s
        with buf.cond:
            if hold is not None:
                hold[0] = due + stride_s + 1.0
            buf.cond.notify_all()
            while not buf.ended and not _complete(buf, due):
                buf.cond.wait(0.1)
            if buf.error is not None:
                raise MediaError(buf.path, f"stream failed near {max(buf.video_head, 0):.2f}s ({buf.error})")
            end = due
            if buf.ended and not _complete(buf, due):  # the source ended inside this window
                end = min(due, buf.video_head + 1.0 / buf.fps)
                if t0 >= buf.video_head + _EPS or not keep_window(k, end - t0, window_s):
                    return
            if live and buf.video_head >= due + stride_s:  # fell behind a live source: jump ahead
                jump = int((buf.video_head - due) // stride_s)
                k += jump
                skipped += jump
                continue
        clip, last_arrival = buf.clip(t0, end)
        buf.trim(t0 + stride_s)  # the next window starts there
        info = WindowInfo(clip.path, clip.start_s, clip.end_s, clip.has_audio)
        yield Window(0, info, recognizer.prepare(clip), {"arrival": last_arrival, "skipped": skipped})
        emitted += 1
        k += 1


def _complete(buf: LiveBuffer, due: float) -> bool:
    """Whether the window ending at ``due`` has all its frames and (within a tolerance) its audio."""
    video_done = buf.video_head >= due - 1.0 / buf.fps + _EPS if buf.fps else buf.video_head >= due
    audio_done = (not buf.has_audio or buf.audio_head >= due - _EPS
                  or buf.video_head >= due + _AUDIO_WAIT_S)
    return video_done and audio_done

