"""Live capture: a source (file, camera, stream URL) decoded by a thread into a rolling buffer of frames and audio.

:func:`open_source` opens anything FFmpeg can open (a file, ``/dev/videoN`` via v4l2, an ``rtsp://``/``http://``
URL); :func:`capture` demuxes it into a :class:`LiveBuffer` that keeps the newest frames and audio by presentation
time, and :meth:`LiveBuffer.clip` cuts a :class:`~mmadfer.media.decode.Clip` out of it. Live recognition on top of
this is :func:`mmadfer.predict.realtime.run_realtime`.
"""
from __future__ import annotations

import collections
import math
import os
import re
import threading
import time

import av
import numpy as np

from ..errors import MediaError
from .decode import Clip, audio_frame_to_float, check_file, pad_leading_silence

__all__ = ["open_source", "LiveBuffer", "capture"]

_EPS = 1e-6


def open_source(source: str | os.PathLike, *, input_format: str | None = None):
    """Open a file, a camera (``/dev/videoN`` or an index ``N``) or a stream URL with PyAV.

    Returns ``(container, is_live)``. Raises :class:`MediaError` naming the source if it cannot be opened.
    """
    source = os.fspath(source)
    live = True
    options: dict[str, str] = {}
    if re.fullmatch(r"\d+", source):  # a camera index
        source = f"/dev/video{source}"
    if os.path.isfile(source):
        live = False
        check_file(source)
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
                wave = pad_leading_silence(wave, lead, i1 - i0)
        frames = np.stack([f for _, f, _ in picked]) if picked else np.zeros((0, 1, 1, 3), np.uint8)
        clip = Clip(frames=frames, fps=self.fps, waveform=np.ascontiguousarray(wave, np.float32),
                    sample_rate=self.sample_rate, has_audio=self.has_audio,
                    frame_times=np.array([t for t, _, _ in picked], np.float64), path=self.path, start_s=t0,
                    duration_s=t1 - t0)
        return clip, (picked[-1][2] if picked else time.perf_counter())


def capture(container, buf: LiveBuffer, *, max_side: int | None, live: bool, pace: bool,
             hold_until: list[float], keep_s: float, stop: threading.Event) -> None:
    """Demux and decode ``container`` into ``buf`` until it ends or ``stop`` is set.

    A live source is never held up: media older than ``keep_s`` seconds is dropped as new media arrives. A file read
    at full speed is not decoded beyond ``hold_until[0]`` (back-pressure), so no window is dropped before it is
    predicted.
    """
    vs = container.streams.video[0]
    vs.thread_type = "AUTO"
    streams = [vs]
    if container.streams.audio and container.streams.audio[0].codec_context is not None:
        a_s = container.streams.audio[0]
        streams.append(a_s)
        buf.has_audio = True
        buf.sample_rate = int(a_s.codec_context.sample_rate or a_s.rate or 0)
    buf.fps = float(vs.average_rate or vs.guessed_rate or 0) or 25.0
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
