"""A playable copy for uploads the browser cannot play (a phone's HEVC ``.mov``, MPEG-4 Part 2 in ``.avi``...).

:func:`playback` reads the upload's codecs; when the browser cannot play them, :func:`make_preview` transcodes the
file locally with PyAV to H.264 (yuv420p, upright, at most ``max_side`` pixels) with AAC audio, into the job folder,
so it is deleted with the job. The preview is only for watching: predictions always read the upload itself.
"""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av
import numpy as np

from ..io import atomic_path

__all__ = ["playback", "make_preview", "BROWSER_VIDEO", "BROWSER_AUDIO"]

#: codecs every current browser plays in MP4/WebM (Chromium has no HEVC decoder without hardware support)
BROWSER_VIDEO = frozenset({"h264", "vp8", "vp9", "av1"})
BROWSER_AUDIO = frozenset({"aac", "mp3", "opus", "vorbis", "flac"})
_CONTAINERS = ("mp4", "mov", "webm", "matroska")


def playback(path: str | os.PathLike) -> tuple[bool, str | None]:
    """``(playable, reason)``: whether a browser can play ``path`` as it is, and if not, why (one line)."""
    try:
        with av.open(os.fspath(path)) as c:
            formats = set(c.format.name.split(","))
            video = c.streams.video[0].codec_context.name if c.streams.video else None
            audio = c.streams.audio[0].codec_context.name if c.streams.audio else None
    except (av.FFmpegError, OSError, IndexError) as e:
        return False, f"cannot read the file's codecs ({e})"
    if not formats & set(_CONTAINERS):
        return False, f"browsers do not play the {c.format.name} container"
    if video not in BROWSER_VIDEO:
        return False, f"browsers do not play {video or 'this'} video"
    if audio is not None and audio not in BROWSER_AUDIO:
        return False, f"browsers do not play {audio} audio"
    return True, None


def _encoder() -> str:
    for name in ("libx264", "h264"):
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # noqa: BLE001 - not in this build
            continue
    raise RuntimeError("this PyAV build has no H.264 encoder")


def make_preview(src: str | os.PathLike, dst: str | os.PathLike, *, max_side: int = 1280,
                 on_frame: Callable[[float], None] | None = None) -> Path:
    """Write ``dst`` (MP4): ``src`` as H.264 + AAC, upright, longer side at most ``max_side``, atomically.

    ``on_frame(t)`` is called with each video frame's time in seconds (progress; it may raise to stop).
    """
    dst = Path(dst)
    with av.open(os.fspath(src)) as inp, atomic_path(dst, suffix=".mp4") as tmp, av.open(str(tmp), "w") as out:
        vin = inp.streams.video[0]
        ain = inp.streams.audio[0] if inp.streams.audio else None
        vin.thread_type = "AUTO"
        rate = vin.average_rate or vin.guessed_rate or Fraction(25)
        vout = out.add_stream(_encoder(), rate=rate)
        vout.pix_fmt = "yuv420p"
        vout.options = {"crf": "23", "preset": "veryfast"}
        vout.codec_context.time_base = Fraction(1, 1000)
        aout = None
        if ain is not None and ain.codec_context is not None:
            layout = "mono" if ain.codec_context.channels == 1 else "stereo"
            aout = out.add_stream("aac", rate=ain.codec_context.sample_rate or 48000, layout=layout)
        size = None
        t0 = None
        last = -1
        waiting: list = []  # audio frames decoded before the first video frame
        streams = [vin] + ([ain] if aout is not None else [])
        for packet in inp.demux(*streams):
            for frame in packet.decode():
                if frame.pts is None:
                    continue
                t = float(frame.pts * frame.time_base)
                t0 = t if t0 is None else t0
                if isinstance(frame, av.AudioFrame):
                    if t >= t0:
                        frame.pts = None  # the encoder numbers the samples
                        waiting.append(frame)
                    if size is not None:  # nothing is muxed before the video stream's size is fixed
                        for f in waiting:
                            out.mux(aout.encode(f))
                        waiting.clear()
                    continue
                if on_frame is not None:
                    on_frame(t - t0)
                rgb = frame.to_ndarray(format="rgb24")  # [H, W, 3]
                rot = int(round((frame.rotation or 0) / 90.0)) % 4
                rgb = np.ascontiguousarray(np.rot90(rgb, rot)) if rot else rgb
                if size is None:
                    h, w = rgb.shape[:2]
                    s = min(1.0, max_side / max(h, w))
                    size = (max(2, round(w * s) // 2 * 2), max(2, round(h * s) // 2 * 2))  # even, for yuv420p
                    vout.width, vout.height = size
                vf = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(width=size[0], height=size[1],
                                                                              format="yuv420p")
                pts = round(max(0.0, t - t0) * 1000)
                if pts <= last:  # two frames within a millisecond: keep the first
                    continue
                last = pts
                vf.pts, vf.time_base = pts, Fraction(1, 1000)
                out.mux(vout.encode(vf))
        if size is None:
            raise ValueError(f"{os.fspath(src)}: no decodable video frames")
        out.mux(vout.encode())
        if aout is not None:
            for f in waiting:
                out.mux(aout.encode(f))
            out.mux(aout.encode())
    return dst
