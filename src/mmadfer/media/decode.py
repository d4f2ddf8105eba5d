"""Video + audio decoding with PyAV (which bundles FFmpeg): whole clips, time ranges, and streamed windows.

``read_clip(path)`` decodes a file (or ``[start_s, end_s)`` of it) into a :class:`Clip`: RGB frames, their
presentation times, and every audio channel at the native rate as float32 in [-1, 1]. ``open_video(path)`` gives a
:class:`VideoReader` that reads time ranges lazily and streams fixed windows through a long film in one forward
pass, holding only what the current window needs.

Frames are placed by their presentation timestamps, so variable-frame-rate video is handled; the display-matrix
rotation (phones) is applied so frames come out upright. Video and audio are demuxed by two containers on the same
file, each seeking on its own stream, so audio is sample-accurate however the file is interleaved. Every failure
to read a file is a :class:`mmadfer.errors.MediaError` that names the file and gives a one-line reason.

Colour: YUV is converted to RGB as the stream's colour tags say (BT.709 for HD video, BT.601 for SD; full or
limited range), FFmpeg's swscale doing the arithmetic. ``colorspace='bt601'`` instead converts every YUV stream with
BT.601 coefficients (limited range, full only for FFmpeg's ``yuvj`` formats) whatever its tags, as OpenCV's
``cv2.VideoCapture`` did up to OpenCV 4.12 (4.13 and later honour the tags): what reference code built on OpenCV
saw (the authors' MAFW face extraction, :mod:`mmadfer.data.mafw_reference`). On a BT.709-tagged clip the two differ
by up to tens of levels in saturated colours, which moves MTCNN's face boxes.
"""
from __future__ import annotations

import collections
import heapq
import math
import os
from dataclasses import dataclass
from typing import Iterator

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, VideoReformatter

from ..errors import MediaError

__all__ = ["Clip", "VideoReader", "open_video", "read_clip", "open_media", "audio_frame_to_float", "check_file",
           "pad_leading_silence", "COLORSPACES"]

#: ``tags``: YUV to RGB as the stream's colour tags say; ``bt601``: BT.601 whatever the tags (OpenCV <= 4.12).
COLORSPACES = ("tags", "bt601")

_EPS = 1e-6  # seconds: timestamps within this of a window edge count as on the edge
_SEEK_AHEAD_S = 10.0  # decode through gaps shorter than this instead of seeking
_TRUNCATION_TOL_S = 1.0  # a video stream ending this much before its declared end is truncated
_AUDIO_PREROLL_S = 0.5  # seek audio this much before the wanted time and discard the decoder's warm-up
_REORDER_DEPTH = 4  # frames decoded ahead to put decode-order timestamps into presentation order


@dataclass
class Clip:
    """Decoded media for ``[start_s, start_s + duration_s)`` of ``path``.

    Attributes:
        frames: uint8 ``[T, H, W, 3]`` RGB, upright (rotation metadata applied).
        fps: the stream's nominal (average) frame rate.
        waveform: float32 ``[C, N]`` in [-1, 1], all channels at the native rate; ``[0, 0]`` without audio.
        sample_rate: Hz, 0 without audio.
        has_audio: whether the file has an audio stream.
        frame_times: float64 ``[T]`` presentation time of each frame in seconds from the start of the file.
        path: the file.
        start_s: where the clip starts, seconds from the start of the file; ``waveform[:, 0]`` is at this time.
        duration_s: the time span covered (shorter than requested when the range runs past the end of the media).
    """

    frames: np.ndarray
    fps: float
    waveform: np.ndarray
    sample_rate: int
    has_audio: bool
    frame_times: np.ndarray
    path: str
    start_s: float
    duration_s: float

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    def __repr__(self) -> str:
        return (
            f"Clip({self.path!r}, {self.start_s:.2f}-{self.end_s:.2f}s, frames={tuple(self.frames.shape)}, "
            f"fps={self.fps:.3g}, audio={tuple(self.waveform.shape)}@{self.sample_rate}Hz)"
        )


# --------------------------------------------------------------------------------------------------------------
# opening and validating
# --------------------------------------------------------------------------------------------------------------
def check_file(path: str) -> None:
    """Raise :class:`MediaError` naming ``path`` unless it is a non-empty regular file."""
    if not os.path.exists(path):
        raise MediaError(path, "file not found")
    if os.path.isdir(path):
        raise MediaError(path, "is a directory, not a media file")
    if not os.path.isfile(path):
        raise MediaError(path, "not a regular file")
    if os.path.getsize(path) == 0:
        raise MediaError(path, "file is empty (0 bytes)")


def _open_container(path: str) -> av.container.InputContainer:
    try:
        return av.open(path, metadata_errors="ignore")
    except PermissionError:
        raise MediaError(path, "permission denied") from None
    except av.error.FFmpegError as e:
        with open(path, "rb") as f:
            head = f.read(12)
        if head[4:8] == b"ftyp":
            reason = "truncated or corrupt MP4/MOV: its index (moov atom) is missing, so the file was cut short"
        else:
            reason = f"not a media file FFmpeg can read ({getattr(e, 'strerror', None) or e})"
        raise MediaError(path, reason) from None


def open_media(path: str | os.PathLike) -> av.container.InputContainer:
    """Open ``path`` with PyAV for demuxing (the caller closes the container).

    The file is checked first, so every failure is a :class:`MediaError` that names it with a one-line reason
    (missing, a directory, empty, permission denied, an MP4 cut short, not media) instead of an FFmpeg error code.
    :class:`VideoReader` and :func:`mmadfer.media.wav.read_audio` open files through it.
    """
    path = os.fspath(path)
    check_file(path)
    return _open_container(path)


def audio_frame_to_float(frame: av.AudioFrame) -> np.ndarray:
    """A decoded audio frame of any sample format and channel layout -> float32 ``[C, n]`` in [-1, 1].

    Planar and packed (interleaved) layouts both come out channel-first; integer samples are scaled by their full
    range (unsigned 8-bit centred on 128), float samples are kept as they are. Every audio path of the package
    (clips, WAV files, live streams) converts samples with this one function, so they agree to the bit.
    """
    fmt = frame.format
    channels = frame.layout.nb_channels
    x = frame.to_ndarray()
    x = x if fmt.is_planar else x.reshape(-1, channels).T  # packed is [1, n*C], interleaved
    if x.dtype.kind == "f":
        return x.astype(np.float32, copy=False)
    if x.dtype.kind == "u":  # unsigned 8-bit: 128 is silence
        half = float(1 << (8 * x.dtype.itemsize - 1))
        return ((x.astype(np.float32) - half) / half).astype(np.float32)
    return (x.astype(np.float32) / float(1 << (8 * x.dtype.itemsize - 1))).astype(np.float32)


def pad_leading_silence(wave: np.ndarray, lead: int, length: int) -> np.ndarray:
    """``wave`` (float32 ``[C, n]``) preceded by ``min(lead, length)`` samples of silence: audio that starts ``lead``
    samples after a window's start is shifted so that sample 0 is at the start (``length``: the window's samples)."""
    return np.concatenate([np.zeros((wave.shape[0], min(lead, length)), np.float32), wave], axis=1)


def _rate(stream) -> float:
    for r in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if r:
            return float(r)
    return 0.0


# --------------------------------------------------------------------------------------------------------------
# the reader
# --------------------------------------------------------------------------------------------------------------
class VideoReader:
    """Lazy, seekable reader of one media file. Use as a context manager, or call :meth:`close`.

    ``read(t0, t1)`` returns the :class:`Clip` for ``[t0, t1)``. Consecutive reads that move forward (as
    :meth:`windows` does) continue the same decode pass and keep only frames and samples at or after the latest
    ``t0``, so memory is bounded by one window whatever the file's length; reads that go backwards, or jump far
    ahead, seek.

    Args:
        path: the file.
        max_side: if set, frames are downscaled at decode time (FFmpeg swscale) so that their longer side is at most
            this many pixels. This bounds a window's memory for high-resolution video.
        colorspace: ``tags`` (default) converts YUV to RGB as the stream's colour tags say; ``bt601`` uses BT.601
            whatever they say, as OpenCV's ``VideoCapture`` did (see the module docstring).
    """

    def __init__(self, path: str | os.PathLike, *, max_side: int | None = None, colorspace: str = "tags"):
        if colorspace not in COLORSPACES:
            raise ValueError(f"colorspace must be one of {COLORSPACES}, got {colorspace!r}")
        self.path = os.fspath(path)
        self._colorspace = colorspace
        self._containers: list = []
        try:
            self._open(max_side)
        except BaseException:
            self.close()
            raise

    def _open(self, max_side: int | None) -> None:
        vc = open_media(self.path)
        self._containers.append(vc)
        if not vc.streams.video:
            kinds = collections.Counter(s.type for s in vc.streams)
            found = ", ".join(f"{n} {k}" for k, n in kinds.items()) or "no streams"
            raise MediaError(self.path, f"no video stream (found: {found})")
        self._vs = vc.streams.video[0]
        if self._vs.codec_context is None:
            raise MediaError(self.path, "undecodable video codec: this FFmpeg build has no decoder for it")
        self._vs.thread_type = "AUTO"
        self._vc = vc
        self._origin = (vc.start_time or 0) / av.time_base  # container start: file time 0
        self.fps = _rate(self._vs)
        self.duration_s: float | None = vc.duration / av.time_base if vc.duration else None
        self._expected_video_end, self._end_from_stream = self._declared_video_end()
        if self._end_from_stream and self._expected_video_end > (self.duration_s or 0.0):
            self.duration_s = self._expected_video_end  # e.g. a cut AVI: its header still counts every frame

        self._ac = None
        self.sample_rate = 0
        self.num_channels = 0
        if vc.streams.audio and vc.streams.audio[0].codec_context is not None:
            ac = _open_container(self.path)
            self._containers.append(ac)
            self._as = ac.streams.audio[0]
            self._ac = ac
            self.sample_rate = int(self._as.codec_context.sample_rate or self._as.rate or 0)
            self.num_channels = int(self._as.codec_context.channels or self._as.codec_context.layout.nb_channels)
        self.has_audio = self._ac is not None

        # Frames come out at the first frame's display size (stable even if the stream changes resolution).
        self._out_size: tuple[int, int] | None = None  # (width, height) passed to swscale, before rotation
        self._max_side = max_side
        self._reformatter = VideoReformatter()  # one swscale context per file: a fresh one per frame is 10x slower
        self._restart_video(0.0)
        self._restart_audio(0.0)
        self._pull_video()  # decode the first frame: validates the stream and fixes size and rotation
        if not self._vbuf:
            raise MediaError(self.path, "no decodable video frames")
        first = self._vbuf[0][1]
        self.height, self.width = first.shape[:2]

    def _declared_video_end(self) -> tuple[float | None, bool]:
        """Where the container says the video stream ends, and whether the stream itself says so."""
        s = self._vs
        ends = []
        if s.duration and s.time_base:
            ends.append(float(s.duration * s.time_base))
        if s.frames and self.fps:
            ends.append(s.frames / self.fps)
        if ends:
            return max(ends), True
        return self.duration_s, False

    # -- video -----------------------------------------------------------------------------------------------
    def _restart_video(self, t0: float) -> None:
        if t0 > 0:
            self._vc.seek(int((t0 + self._origin) / self._vs.time_base), stream=self._vs, backward=True)
        self._vit = iter(self._vc.demux(self._vs))
        self._vpending: collections.deque = collections.deque()  # decoded frames not yet converted
        self._vtimes: list[float] = []  # heap of their timestamps
        self._vlast_ts = -math.inf
        self._vdrained = False
        self._vbuf: collections.deque = collections.deque()  # (time, rgb [H, W, 3]) with time >= floor
        self._vfloor = t0  # frames before this were discarded (or skipped by a seek)
        self._vhead = -math.inf  # time of the last frame pulled from the decoder
        self._veof = False
        self._decode_errors = 0

    def _next_video_frame(self) -> tuple[float, av.VideoFrame] | None:
        """Next frame in presentation order with its time (file seconds), or None at the end of the stream.

        Decoders emit frames in presentation order, but some containers (AVI) carry decode-order timestamps that
        then arrive permuted; so a few frames are decoded ahead and each gets the smallest timestamp pending.
        """
        while len(self._vpending) < _REORDER_DEPTH and not self._vdrained:
            try:
                packet = next(self._vit)
            except StopIteration:
                self._vdrained = True
                break
            except av.error.FFmpegError as e:
                raise MediaError(self.path, f"cannot demux video near {max(self._vhead, 0):.2f}s ({e})") from None
            try:
                decoded = packet.decode()  # the final (empty) packet drains the decoder
            except av.error.FFmpegError:
                self._decode_errors += 1  # a damaged packet: skip it, as ffmpeg does
                continue
            for frame in decoded:
                t = frame.time
                t = self._vlast_ts + 1.0 / (self.fps or 25.0) if t is None else t - self._origin
                self._vlast_ts = max(self._vlast_ts, t) if math.isfinite(self._vlast_ts) else t
                self._vpending.append(frame)
                heapq.heappush(self._vtimes, t)
        if not self._vpending:
            return None
        return heapq.heappop(self._vtimes), self._vpending.popleft()

    def _convert(self, frame: av.VideoFrame) -> np.ndarray:
        rot = int(round((frame.rotation or 0) / 90.0)) % 4
        if self._out_size is None:
            w, h = frame.width, frame.height
            if self._max_side and max(w, h) > self._max_side:
                s = self._max_side / max(w, h)
                w, h = max(2, round(w * s)), max(2, round(h * s))
            self._out_size = (w, h)
        w, h = self._out_size
        rgb = self._reformatter.reformat(frame, width=w, height=h, format="rgb24", **self._source_colour(frame)
                                         ).to_ndarray()  # [h, w, 3]
        return np.rot90(rgb, rot) if rot else rgb  # display matrix angle is counter-clockwise

    def _source_colour(self, frame: av.VideoFrame) -> dict:
        """swscale's source colour arguments: none (the frame's tags) or, for ``bt601``, BT.601 with the range
        swscale assumes for an untagged stream of the frame's pixel format (full for ``yuvj*``, else limited)."""
        if self._colorspace == "tags":
            return {}
        full = frame.format.name.startswith("yuvj")
        return {"src_colorspace": Colorspace.ITU601, "src_color_range": ColorRange.JPEG if full else ColorRange.MPEG}

    def _pull_video(self) -> bool:
        """Decode one more frame into the buffer (frames before the floor are dropped). False at end of stream."""
        while True:
            item = self._next_video_frame()
            if item is None:
                self._veof = True
                return False
            t, frame = item
            self._vhead = t
            if t >= self._vfloor - _EPS:
                self._vbuf.append((t, self._convert(frame)))
                return True

    def _video_range(self, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
        if t0 < self._vfloor - _EPS or t0 > self._vhead + _SEEK_AHEAD_S:
            self._restart_video(t0)
        self._vfloor = max(self._vfloor, t0)
        while self._vbuf and self._vbuf[0][0] < t0 - _EPS:
            self._vbuf.popleft()
        while not self._veof and self._vhead < t1 - _EPS:
            self._pull_video()
        if self._veof:
            self._check_truncation(t1)
        picked = [(t, f) for t, f in self._vbuf if t < t1 - _EPS]
        if not picked:
            return np.zeros((0, self.height, self.width, 3), np.uint8), np.zeros(0, np.float64)
        times = np.array([t for t, _ in picked], dtype=np.float64)
        return np.stack([f for _, f in picked]), times

    def _check_truncation(self, t1: float) -> None:
        """At the end of the video stream: raise if the data stops well before where the file says it ends."""
        declared = self._expected_video_end
        if declared is None or not math.isfinite(self._vhead):
            return
        reached = self._vhead + (1.0 / self.fps if self.fps else 0.0)
        if reached >= min(t1, declared) - _TRUNCATION_TOL_S:
            return
        if not self._end_from_stream and self.has_audio:
            # Only the container's duration is known, and audio may legitimately outlast the video:
            # call it truncated only if the audio stops early too.
            self._audio_range(self._vhead, self._vhead + 2 * _TRUNCATION_TOL_S)
            if not self._aeof or self._ahead_s() >= declared - _TRUNCATION_TOL_S:
                return
        raise MediaError(
            self.path, f"truncated: video data ends at {reached:.2f}s but the file declares {declared:.2f}s"
        )

    # -- audio -----------------------------------------------------------------------------------------------
    def _restart_audio(self, t0: float) -> None:
        self._achunks: collections.deque = collections.deque()  # float32 [C, n] chunks, contiguous
        self._astart = 0  # sample index (relative to _aorigin) of the first buffered sample
        self._aend = 0  # sample index one past the last buffered sample
        self._aorigin: float | None = None  # file time of sample index 0
        self._afloor = t0
        self._aeof = not self.has_audio
        if not self.has_audio:
            return
        if t0 > 0:  # land a little early: decoders need a frame or two of pre-roll (AAC, MP3, Opus) to be exact
            target = max(0.0, t0 - _AUDIO_PREROLL_S) + self._origin
            self._ac.seek(int(target / self._as.time_base), stream=self._as, backward=True)
        self._ait = iter(self._ac.decode(self._as))

    def _ahead_s(self) -> float:
        return -math.inf if self._aorigin is None else self._aorigin + self._aend / self.sample_rate

    def _pull_audio(self) -> None:
        try:
            frame = next(self._ait)
        except StopIteration:
            self._aeof = True
            return
        except av.error.FFmpegError:
            return  # a damaged audio packet: skip it (the gap is filled with silence below)
        x = audio_frame_to_float(frame)  # [C, n]
        if x.shape[0] != self.num_channels:  # a mid-stream layout change: keep the declared channels
            fixed = np.zeros((self.num_channels, x.shape[1]), np.float32)
            fixed[: x.shape[0]] = x[: self.num_channels]
            x = fixed
        t = None if frame.time is None else frame.time - self._origin
        if self._aorigin is None:
            self._aorigin = t if t is not None else self._afloor
            self._astart = self._aend = 0
        pos = self._aend if t is None else int(round((t - self._aorigin) * self.sample_rate))
        if pos > self._aend:  # a gap in the timestamps: silence
            self._achunks.append(np.zeros((self.num_channels, pos - self._aend), np.float32))
            self._aend = pos
        elif pos < self._aend:  # overlap: keep what is already buffered
            x = x[:, self._aend - pos :]
        if x.shape[1]:
            self._achunks.append(x)
            self._aend += x.shape[1]

    def _sample(self, t: float) -> int:
        return int(round((t - self._aorigin) * self.sample_rate))

    def _audio_range(self, t0: float, t1: float) -> np.ndarray:
        if not self.has_audio:
            return np.zeros((0, 0), np.float32)
        if t0 < self._afloor - _EPS or (self._aorigin is not None and t0 > self._ahead_s() + _SEEK_AHEAD_S):
            self._restart_audio(t0)
        self._afloor = max(self._afloor, t0)
        while not self._aeof and (self._aorigin is None or self._aend < self._sample(t1)):
            self._pull_audio()
        if self._aorigin is None:  # the audio stream has no samples
            return np.zeros((self.num_channels, 0), np.float32)
        i0, i1 = self._sample(t0), self._sample(t1)
        while self._achunks and self._astart + self._achunks[0].shape[1] <= i0:  # drop what no later read needs
            self._astart += self._achunks.popleft().shape[1]
        if self._achunks and self._astart < i0:
            self._achunks[0] = self._achunks[0][:, i0 - self._astart :]
            self._astart = i0
        buf = np.concatenate(self._achunks, axis=1) if self._achunks else np.zeros((self.num_channels, 0), np.float32)
        if len(self._achunks) > 1:
            self._achunks = collections.deque([buf])  # keep one contiguous chunk
        out = buf[:, : max(0, i1 - self._astart)]
        lead = self._astart - i0  # audio starts after t0: pad with silence so sample 0 is at t0
        if lead > 0 and out.shape[1]:
            out = pad_leading_silence(out, lead, i1 - i0)
        return np.ascontiguousarray(out[:, : max(0, i1 - i0)])

    # -- public ----------------------------------------------------------------------------------------------
    def read(self, t0: float = 0.0, t1: float | None = None) -> Clip:
        """Frames with presentation time in ``[t0, t1)`` and the audio samples of the same span (``t1=None``: to
        the end). Raises :class:`MediaError` if the file turns out to be truncated before ``t1``."""
        t0 = max(0.0, float(t0))
        if t1 is not None and t1 < t0:
            raise ValueError(f"read: end {t1} is before start {t0}")
        end = math.inf if t1 is None else float(t1)
        if self.duration_s is not None:  # a range past the end of the media is cut there (possibly to nothing)
            end = max(t0, min(end, self.duration_s) if t1 is not None else self.duration_s)
        frames, times = self._video_range(t0, end if t1 is not None else math.inf)
        if not math.isfinite(end):  # duration unknown: the clip ends with the last frame
            end = (times[-1] + 1.0 / (self.fps or 25.0)) if times.size else t0
        wave = self._audio_range(t0, end)
        return Clip(
            frames=frames, fps=self.fps, waveform=wave, sample_rate=self.sample_rate, has_audio=self.has_audio,
            frame_times=times, path=self.path, start_s=t0, duration_s=end - t0,
        )

    def windows(
        self, window_s: float, stride_s: float | None = None, *, start_s: float = 0.0, end_s: float | None = None,
        skip_empty: bool = False,
    ) -> Iterator[Clip]:
        """Stream ``[t, t + window_s)`` for ``t = start_s, start_s + stride_s, ...`` while ``t`` is before the end.

        One forward pass through the file; only the frames and samples that the current and later windows share
        are kept. Windows that run past the end are cut there, so the last ones may be shorter than ``window_s``
        (check ``clip.duration_s``). ``stride_s`` defaults to ``window_s`` (no overlap).

        ``skip_empty``: leave out windows with no video frame, and stop at the end of the video stream. The work
        is then bounded by the decoded frames, not by the timestamps: a gap (a crafted last frame at 1e9 s) is
        jumped over in one step instead of walked window by window.
        """
        stride_s = window_s if stride_s is None else stride_s
        if window_s <= 0 or stride_s <= 0:
            raise ValueError(f"window_s and stride_s must be positive, got {window_s} and {stride_s}")
        stop = self.duration_s if end_s is None else min(end_s, self.duration_s or math.inf)
        k = 0
        while True:
            t = start_s + k * stride_s
            if stop is not None and t >= stop - _EPS:
                return
            clip = self.read(t, t + window_s if stop is None else min(t + window_s, stop))
            if stop is None and clip.num_frames == 0 and self._veof:
                return
            if skip_empty and clip.num_frames == 0:
                if self._veof:
                    return
                # the next decoded frame is at self._vhead (>= the window's end): go to the first window holding it
                k = max(k + 1, math.floor((self._vhead - start_s - window_s) / stride_s) + 1)
                continue
            yield clip
            k += 1

    def plausible_duration_s(self) -> float | None:
        """The duration, unless the stream's frame count says it is far shorter (a crafted timestamp): then the
        frame count over the frame rate. For progress bars and estimates only; decoding stops at the content."""
        frames = self._vs.frames
        if self.duration_s and frames and self.fps:
            return min(self.duration_s, max(frames / self.fps, 1.0 / self.fps) * 2 + 1.0)
        return self.duration_s

    def close(self) -> None:
        for c in self._containers:
            c.close()
        self._containers = []

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        dur = "?" if self.duration_s is None else f"{self.duration_s:.2f}s"
        audio = f"{self.num_channels}ch@{self.sample_rate}Hz" if self.has_audio else "no audio"
        return f"VideoReader({self.path!r}, {self.width}x{self.height}@{self.fps:.3g}fps, {dur}, {audio})"


def open_video(path: str | os.PathLike, *, max_side: int | None = None, colorspace: str = "tags") -> VideoReader:
    """Open ``path`` for lazy reading (see :class:`VideoReader`). Raises :class:`MediaError` if it is unreadable."""
    return VideoReader(path, max_side=max_side, colorspace=colorspace)


def read_clip(path: str | os.PathLike, start_s: float = 0.0, end_s: float | None = None) -> Clip:
    """Decode ``[start_s, end_s)`` of a video file (the whole file by default) into a :class:`Clip`."""
    with open_video(path) as reader:
        return reader.read(start_s, end_s)
