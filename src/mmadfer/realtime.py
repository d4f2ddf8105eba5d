"""Live recognition: a rolling 5.12 s buffer over a camera, a stream or a file, with a prediction every stride.

::

    rec = mmadfer.Recognizer.from_checkpoint("dfew_fold1.pth")
    for row in run_realtime(rec, "/dev/video0", stride_s=1.0):       # or "rtsp://...", or "clip.mp4"
        print(f"{row['end_s']:7.2f}s {row['label']:>9} {row['confidence']:.2f}  latency {row['latency_ms']:.0f} ms")

A capture thread demuxes the source with PyAV (anything FFmpeg can open: a file, ``/dev/videoN`` via v4l2, an
``rtsp://``/``http://`` URL) into a rolling buffer that keeps the last window of frames and audio. The main loop waits
until the window ending at the next due time is complete (its last frame and its audio have arrived), prepares it
exactly as :meth:`mmadfer.Recognizer.predict_video` does, runs the model and yields a timeline row with two more
fields:

* ``latency_ms``: wall-clock time from the arrival of the window's last frame to its prediction (decoding of later
  media, face detection, features and the model included).
* ``skipped``: windows dropped so far because the model fell behind a live source. A live source never waits for
  the model: the buffer keeps only the newest window, and when a prediction takes longer than a stride the due time
  jumps to the newest complete window. A file is read at decoding speed and every window is predicted, unless
  ``pace=True`` replays it at its own frame rate, like a camera.

Windows follow the same rule as :func:`mmadfer.predict.window_spans`: every ``stride_s`` from the start, and
at the end of a file a cut window is kept if it is at least half a window long (or the only one).
"""
from __future__ import annotations

import collections
import math
import os
import re
import threading
import time
from typing import Any, Iterator

import numpy as np

from .errors import MediaError
from .predict import TrackLinker, keep_window

__all__ = ["run_realtime", "open_source", "LiveBuffer", "predict_buffer"]

_EPS = 1e-6
_AUDIO_WAIT_S = 0.5  # emit without the last bit of audio if it lags the video by more than this


def open_source(source: str | os.PathLike, *, input_format: str | None = None):
    """Open a file, a camera (``/dev/videoN`` or an index ``N``) or a stream URL with PyAV.

    Returns ``(container, is_live)``. Raises :class:`MediaError` naming the source if it cannot be opened.
    """
    import av

    source = os.fspath(source)
    live = True
    options: dict[str, str] = {}
    if re.fullmatch(r"\d+", source):  # a camera index
        source = f"/dev/video{source}"
    if os.path.isfile(source):
        live = False
        if os.path.getsize(source) == 0:
            raise MediaError(source, "file is empty (0 bytes)")
    elif source.startswith("/dev/video"):
        input_format = input_format or "v4l2"
    elif "://" in source:
        options = {"rw_timeout": "10000000"}  # µs: a stalled stream is an error, not a hang
    elif not os.path.exists(source):
        raise MediaError(source, "no such file, camera or stream URL")
    try:
        container = av.open(source, format=input_format, options=options, metadata_errors="ignore")
    except (av.error.FFmpegError, OSError) as e:
        raise MediaError(source, f"cannot open ({getattr(e, 'strerror', None) or e})") from None
    if not container.streams.video:
        container.close()
        raise MediaError(source, "no video stream")
    return container, live


class LiveBuffer:
    """The newest frames and audio of a source, by presentation time (seconds from the start of the source).

    Thread-safe: the capture thread pushes, the predicting thread takes :meth:`clip` snapshots. Memory is bounded by
    :meth:`trim`, which drops everything before a time.
    """

    def __init__(self, path: str):
        self.path = path
        self.cond = threading.Condition()
        self.frames: collections.deque = collections.deque()  # (time, rgb [H, W, 3], arrival wall time)
        self.audio: collections.deque = collections.deque()  # float32 [C, n] chunks, contiguous
        self.audio_start = 0.0  # time of the first buffered sample
        self.audio_samples = 0
        self.sample_rate = 0
        self.has_audio = False
        self.fps = 0.0
        self.video_head = -math.inf  # time of the newest frame
        self.ended = False
        self.error: BaseException | None = None

    @property
    def audio_head(self) -> float:
        return self.audio_start + self.audio_samples / self.sample_rate if self.sample_rate else -math.inf

    def push_frame(self, t: float, rgb: np.ndarray) -> None:
        with self.cond:
            self.frames.append((t, rgb, time.perf_counter()))
            self.video_head = max(self.video_head, t)
            self.cond.notify_all()

    def push_audio(self, t: float, samples: np.ndarray) -> None:
        with self.cond:
            if not self.audio_samples and not self.audio:
                self.audio_start = t
            self.audio.append(samples)
            self.audio_samples += samples.shape[1]
            self.cond.notify_all()

    def trim(self, before: float) -> None:
        """Forget frames and samples before ``before`` seconds."""
        with self.cond:
            while self.frames and self.frames[0][0] < before - _EPS:
                self.frames.popleft()
            if self.sample_rate:
                drop = int((before - self.audio_start) * self.sample_rate)
                while self.audio and drop >= self.audio[0].shape[1]:
                    n = self.audio.popleft().shape[1]
                    drop -= n
                    self.audio_samples -= n
                    self.audio_start += n / self.sample_rate
                if self.audio and drop > 0:
                    self.audio[0] = self.audio[0][:, drop:]
                    self.audio_samples -= drop
                    self.audio_start += drop / self.sample_rate

    def clip(self, t0: float, t1: float):
        """A :class:`~mmadfer.media.decode.Clip` of ``[t0, t1)`` and the arrival time of its last frame."""
        from .media.decode import Clip

        with self.cond:
            picked = [(t, f, w) for t, f, w in self.frames if t0 - _EPS <= t < t1 - _EPS]
            channels = self.audio[0].shape[0] if self.audio else 0
            wave = np.concatenate(list(self.audio), axis=1) if self.audio else np.zeros((channels, 0), np.float32)
            start = self.audio_start
        if self.sample_rate:
            i0 = int(round((t0 - start) * self.sample_rate))
            i1 = int(round((t1 - start) * self.sample_rate))
            lead = max(0, -i0)  # audio starts after t0: pad with silence so sample 0 is at t0
            wave = wave[:, max(0, i0):max(0, i1)]
            if lead:
                wave = np.concatenate([np.zeros((wave.shape[0], min(lead, i1 - i0)), np.float32), wave], axis=1)
        frames = np.stack([f for _, f, _ in picked]) if picked else np.zeros((0, 1, 1, 3), np.uint8)
        clip = Clip(frames=frames, fps=self.fps, waveform=np.ascontiguousarray(wave, np.float32),
                    sample_rate=self.sample_rate, has_audio=self.has_audio,
                    frame_times=np.array([t for t, _, _ in picked], np.float64), path=self.path, start_s=t0,
                    duration_s=t1 - t0)
        return clip, (picked[-1][2] if picked else time.perf_counter())


def _capture(container, buf: LiveBuffer, *, max_side: int | None, live: bool, pace: bool,
             hold_until: list[float], keep_s: float, stop: threading.Event) -> None:
    """Demux and decode ``container`` into ``buf`` until it ends or ``stop`` is set.

    A live source is never held up: media older than ``keep_s`` seconds is dropped as new media arrives. A file read
    at full speed is not decoded beyond ``hold_until[0]`` (back-pressure), so no window is dropped before it is
    predicted.
    """
    from .media.decode import audio_frame_to_float

    vs = container.streams.video[0]
    vs.thread_type = "AUTO"
    streams = [vs]
    if container.streams.audio and container.streams.audio[0].codec_context is not None:
        a_s = container.streams.audio[0]
        streams.append(a_s)
        buf.has_audio = True
        buf.sample_rate = int(a_s.codec_context.sample_rate or a_s.rate or 0)
    buf.fps = float(vs.average_rate or vs.guessed_rate or 0) or 25.0
    import av

    # time 0: the container's start (files and most streams), else the first decoded frame of either stream
    origin = container.start_time / av.time_base if container.start_time is not None else None
    size = None
    wall0 = time.perf_counter()
    try:
        for packet in container.demux(*streams):
            if stop.is_set():
                return
            try:
                decoded = packet.decode()
            except Exception:  # a damaged packet: skip it, as ffmpeg does
                continue
            for frame in decoded:
                t = frame.time
                if t is None:
                    continue
                if origin is None:
                    origin = t
                t -= origin
                if packet.stream.type == "video":
                    if size is None:
                        w, h = frame.width, frame.height
                        s = min(1.0, (max_side or max(w, h)) / max(w, h))
                        size = (max(2, round(w * s)), max(2, round(h * s)))
                    if pace:  # replay a file at its own speed, like a camera
                        time.sleep(max(0.0, t - (time.perf_counter() - wall0)))
                    with buf.cond:
                        while not live and t > hold_until[0] and not stop.is_set():
                            buf.cond.wait(0.1)
                    rgb = frame.to_ndarray(format="rgb24", width=size[0], height=size[1])  # [H, W, 3]
                    buf.push_frame(t, rgb)
                    if live:
                        buf.trim(t - keep_s)
                else:
                    buf.push_audio(t, audio_frame_to_float(frame))
    except Exception as e:  # noqa: BLE001 - reported by the consumer
        buf.error = e
    finally:
        with buf.cond:
            buf.ended = True
            buf.cond.notify_all()


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
    worker = threading.Thread(target=_capture, args=(container, buf), daemon=True, name="mmadfer-capture",
                              kwargs=dict(max_side=recognizer.max_side, live=live, pace=pace, hold_until=hold,
                                          keep_s=window_s + 2 * stride_s + 1.0, stop=stop))
    worker.start()
    try:
        yield from predict_buffer(recognizer, buf, window_s=window_s, stride_s=stride_s, live=live, hold=hold,
                                  max_windows=max_windows)
    finally:
        stop.set()
        with buf.cond:
            buf.cond.notify_all()
        worker.join(timeout=5)
        container.close()


def predict_buffer(recognizer, buf: LiveBuffer, *, window_s: float, stride_s: float, live: bool,
                   hold: list[float] | None = None, max_windows: int | None = None) -> Iterator[dict[str, Any]]:
    """The rolling-window loop over a :class:`LiveBuffer` that another thread fills (a capture thread, or the web
    app's Live WebSocket): waits for each window ``[due - window_s, due)``, due every ``stride_s``, predicts it and
    yields its rows with ``latency_ms`` and ``skipped``; returns when ``buf.ended`` is set and no window is left.

    ``hold`` (files read at full speed): a one-item list the loop sets to how far ahead the producer may decode.
    """
    k = skipped = emitted = 0
    linker = TrackLinker()
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
        tracks = recognizer.prepare(clip)  # one entry per face track, usually one
        probs = recognizer.predict_prepared(tracks)  # [K, C]
        latency_ms = 1000.0 * (time.perf_counter() - last_arrival)
        for prepared, p, tid in zip(tracks, probs, recognizer.track_ids(tracks, linker)):
            row = recognizer.window_row(clip, prepared, p, tid)
            row.update(latency_ms=latency_ms, skipped=skipped)
            yield row
        emitted += 1
        k += 1


def _complete(buf: LiveBuffer, due: float) -> bool:
    """Whether the window ending at ``due`` has all its frames and (within a tolerance) its audio."""
    video_done = buf.video_head >= due - 1.0 / buf.fps + _EPS if buf.fps else buf.video_head >= due
    audio_done = (not buf.has_audio or buf.audio_head >= due - _EPS
                  or buf.video_head >= due + _AUDIO_WAIT_S)
    return video_done and audio_done

