"""Video + audio encoding with PyAV: :func:`write_video` writes frames (and optionally audio) to a file, atomically.

Used for synthetic data, tests and anonymised copies; reading lives in :mod:`mmadfer.media.decode`.
"""
from __future__ import annotations

import itertools
import math
import os
from fractions import Fraction
from typing import Iterable, Iterator

import av
import numpy as np

from ..io import atomic_path

__all__ = ["write_video"]


def _encoder_available(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
        return True
    except Exception:
        return False


def _video_codec(ext: str) -> str:
    if ext == ".webm":
        return "libvpx-vp9"
    for name in ("mpeg4",) if ext == ".avi" else ("libx264", "h264", "mpeg4"):
        if _encoder_available(name):
            return name
    raise RuntimeError("this PyAV build has no H.264 or MPEG-4 encoder")


def _as_chunks(waveform, chunk: int = 1 << 15) -> Iterator[np.ndarray]:
    """An array ``[C, N]``/``[N]`` or an iterable of ``[C, n]`` chunks -> float32 ``[C, n]`` chunks."""
    if isinstance(waveform, np.ndarray):
        w = waveform[None] if waveform.ndim == 1 else waveform
        for i in range(0, w.shape[1], chunk):
            yield np.ascontiguousarray(w[:, i : i + chunk], dtype=np.float32)
    else:
        for c in waveform:
            c = np.asarray(c, dtype=np.float32)
            yield np.ascontiguousarray(c[None] if c.ndim == 1 else c)


class _AudioTrack:
    """An output audio stream fed from chunks, written in step with the video so the file is well interleaved."""

    def __init__(self, out, chunks: Iterator[np.ndarray], sample_rate: int, ext: str):
        self._out, self._chunks, self._rate = out, chunks, int(sample_rate)
        self._next = next(chunks, None)
        self._pos = 0  # samples written
        self.stream = None
        if self._next is not None:
            channels = self._next.shape[0]
            layout = {1: "mono", 2: "stereo"}.get(channels) or av.AudioLayout(f"{channels}c").name
            codec = {".webm": "libopus", ".avi": "pcm_s16le"}.get(ext, "aac")
            self.stream = out.add_stream(codec, rate=self._rate, layout=layout)

    def write_until(self, t: float) -> None:
        while self._next is not None and self._pos < t * self._rate:
            x = np.clip(self._next, -1.0, 1.0)
            frame = av.AudioFrame.from_ndarray(x, format="fltp", layout=self.stream.layout.name)
            frame.sample_rate, frame.pts, frame.time_base = self._rate, self._pos, Fraction(1, self._rate)
            self._out.mux(self.stream.encode(frame))
            self._pos += x.shape[1]
            self._next = next(self._chunks, None)

    def close(self) -> None:
        if self.stream is not None:
            self.write_until(math.inf)
            self._out.mux(self.stream.encode())


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray | Iterable[np.ndarray],
    fps: float,
    waveform: np.ndarray | Iterable[np.ndarray] | None = None,
    sample_rate: int | None = None,
    *,
    frame_times: Iterable[float] | None = None,
    rotation: int = 0,
    crf: int = 18,
) -> str:
    """Encode RGB frames (and optionally audio) into a video file, atomically (temp file, then rename).

    Args:
        path: output; the container comes from the extension (.mp4, .mov, .mkv, .avi, .webm).
        frames: uint8 ``[T, H, W, 3]``, or an iterable of ``[H, W, 3]`` frames (streamed: long videos never need to
            be in memory).
        fps: nominal frame rate.
        waveform: float ``[C, N]`` / ``[N]`` in [-1, 1], or an iterable of ``[C, n]`` chunks; encoded as AAC
            (Opus for .webm). Needs ``sample_rate``.
        frame_times: per-frame presentation times in seconds, for variable-frame-rate output.
        rotation: display-matrix rotation to record (counter-clockwise degrees, as phones write it); the pixels are
            stored as given, so a reader must rotate them back.
        crf: H.264 quality (lower is better).
    Returns:
        ``path`` as a string.
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    with atomic_path(path, suffix=ext or ".mp4") as tmp:  # the muxer is chosen from the temp file's extension
        _encode(str(tmp), frames, fps, waveform, sample_rate, frame_times, rotation, crf, ext)
    return path


def _encode(tmp, frames, fps, waveform, sample_rate, frame_times, rotation, crf, ext) -> None:
    frame_iter = iter(frames)
    first = next(frame_iter, None)
    if first is None:
        raise ValueError("write_video: no frames")
    first = np.asarray(first)
    shape = first.shape
    if len(shape) != 3 or shape[2] != 3 or first.dtype != np.uint8:
        raise ValueError(f"write_video: frames must be uint8 [T, H, W, 3], got a frame {shape} {first.dtype}")
    if waveform is not None and not sample_rate:
        raise ValueError("write_video: waveform given without sample_rate")
    codec = _video_codec(ext)
    rate = Fraction(fps).limit_denominator(1001)
    times = iter(frame_times) if frame_times is not None else None
    time_base = Fraction(1, 1000) if times is not None else 1 / rate  # ms timestamps for variable frame rate

    with av.open(tmp, "w") as out:
        vs = out.add_stream(codec, rate=rate)
        vs.height, vs.width = shape[:2]
        odd = shape[0] % 2 or shape[1] % 2
        vs.pix_fmt = "yuv444p" if odd and codec in ("libx264", "libvpx-vp9") else "yuv420p"
        if codec == "libx264":
            vs.options = {"crf": str(crf), "preset": "veryfast"}
        elif codec == "mpeg4":
            vs.options = {"qmin": "1", "qmax": str(max(2, crf // 6))}
        vs.codec_context.time_base = time_base
        if rotation:
            vs.set_display_rotation(rotation)
        audio = _AudioTrack(out, _as_chunks(waveform), sample_rate, ext) if waveform is not None else None

        for i, frame in enumerate(itertools.chain([first], frame_iter)):
            frame = np.ascontiguousarray(frame)
            if frame.shape != shape:
                raise ValueError(f"write_video: frame {i} has shape {frame.shape}, expected {shape}")
            t = float(next(times)) if times is not None else i / float(rate)
            if audio is not None:
                audio.write_until(t + 0.5)
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts, vf.time_base = (round(t * 1000) if times is not None else i), time_base
            out.mux(vs.encode(vf))
        out.mux(vs.encode())
        if audio is not None:
            audio.close()
