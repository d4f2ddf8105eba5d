"""A shareable copy of a video: every face pixelated, the recognised expression written on each frame.

``anonymize_video(src, dst, timeline)`` streams ``src`` in short chunks (bounded memory), detects faces with MTCNN
at ``detect_fps`` frames per second, pixelates every box found within ``hold_s`` seconds of a frame (the union of
them, grown by ``margin``: it covers the motion between detections and a detector miss in a frame or two), draws the
timeline's top label for that moment and writes the result with :func:`mmadfer.media.encode.write_video`.

Privacy first, so the defaults are conservative:

* A frame with no face detected anywhere within ``hold_s`` is pixelated whole (``no_face='frame'``): a face the
  detector missed is never shown. Pass ``no_face='keep'`` to leave such frames as they are.
* The audio track is left out (a voice identifies a person too); ``keep_audio=True`` copies it.
* Pixelation (``blocks`` cells across the face, each the mean of its pixels) destroys the detail that
  deblurring or face recognition would need, unlike a light Gaussian blur.
"""
from __future__ import annotations

import collections
import math
import os
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..config import NO_FACE
from ..media.decode import open_video
from ..media.encode import write_video
from ..media.faces import FaceDetector

__all__ = ["anonymize_video", "pixelate", "label_at", "caption"]

_HOLD_S = 0.3
_CHUNK_S = 2.0


def pixelate(frame: np.ndarray, box: np.ndarray | tuple, blocks: int = 8) -> None:
    """Pixelate ``box`` (x1, y1, x2, y2) of an RGB uint8 ``[H, W, 3]`` frame in place: ``blocks`` cells across its
    longer side, each filled with its mean colour."""
    h, w = frame.shape[:2]
    x1, y1 = max(0, int(math.floor(box[0]))), max(0, int(math.floor(box[1])))
    x2, y2 = min(w, int(math.ceil(box[2]))), min(h, int(math.ceil(box[3])))
    if x2 <= x1 or y2 <= y1:
        return
    region = Image.fromarray(np.ascontiguousarray(frame[y1:y2, x1:x2]))
    cell = max(1, math.ceil(max(x2 - x1, y2 - y1) / blocks))
    small = region.resize((max(1, (x2 - x1) // cell), max(1, (y2 - y1) // cell)), Image.Resampling.BOX)
    frame[y1:y2, x1:x2] = np.asarray(small.resize(region.size, Image.Resampling.NEAREST))


def _grow(box: np.ndarray, margin: float) -> np.ndarray:
    """Grow a box by ``margin`` of its size on each side (more at the top for hair and forehead)."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    return np.array([x1 - margin * w, y1 - 1.5 * margin * h, x2 + margin * w, y2 + margin * h])


def label_at(timeline, t: float) -> list[str]:
    """The caption(s) for time ``t``: the top label and confidence of the window containing ``t`` whose centre is
    nearest (per face track when there are several), or of the last window that started before ``t``."""
    if timeline is None or not len(timeline):
        return []
    start = timeline["start_s"].to_numpy(float)
    end = timeline["end_s"].to_numpy(float)
    inside = (start <= t) & (t < end)
    if not inside.any():
        before = start <= t
        inside = start == (start[before].max() if before.any() else start.min())
    rows = timeline[inside]
    centre = (rows["start_s"] + rows["end_s"]) / 2
    rows = rows.assign(_dist=(centre - t).abs())
    if "track_id" in rows:
        rows = rows.sort_values("_dist").drop_duplicates("track_id").sort_values("track_id")
        return [f"face {int(r.track_id)}: {caption(r.label, r.confidence)}" if r.track_id >= 0 else
                caption(r.label, r.confidence) if r.label == NO_FACE else
                f"no face: {caption(r.label, r.confidence)}" for r in rows.itertuples()]
    r = rows.sort_values("_dist").iloc[0]
    return [caption(r["label"], r["confidence"])]


def caption(label: str, confidence: float) -> str:
    """A row's label as written on a frame: ``'no face'`` for ``no_face`` (no confidence: nothing was read), else
    the label and its confidence."""
    return "no face" if label == NO_FACE else f"{label} {confidence:.2f}"


def _draw_caption(frame: np.ndarray, lines: list[str]) -> np.ndarray:
    if not lines:
        return frame
    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    size = max(10, frame.shape[0] // 18)
    font = ImageFont.load_default(size=size)
    y = size // 3
    for line in lines:
        x0, y0, x1, y1 = draw.textbbox((size // 3, y), line, font=font)
        draw.rectangle((x0 - 3, y0 - 3, x1 + 3, y1 + 3), fill=(0, 0, 0))
        draw.text((size // 3, y), line, fill=(255, 255, 255), font=font)
        y = y1 + size // 3
    return np.asarray(image)


class _Faces:
    """Face boxes by time, detected on a fixed grid of frames and kept for ``hold_s`` seconds."""

    def __init__(self, detector, every: int, hold_s: float):
        self.detector, self.every, self.hold_s = detector, every, hold_s
        self.found: dict[int, tuple[float, np.ndarray]] = {}  # frame number -> (time, boxes [k, 4])

    def update(self, frames: np.ndarray, times: np.ndarray, first_number: int) -> None:
        """Detect on the grid frames of this chunk not seen yet (frame numbers count from the start of the file)."""
        numbers = first_number + np.arange(len(frames))
        todo = [i for i, n in enumerate(numbers) if n % self.every == 0 and n not in self.found]
        if todo:
            boxes, _ = self.detector.detect(frames[todo])
            for i, b in zip(todo, boxes):
                self.found[int(numbers[i])] = (float(times[i]), np.asarray(b, np.float64).reshape(-1, 4))

    def near(self, t: float) -> np.ndarray:
        """All boxes detected within ``hold_s`` of ``t``: ``[k, 4]`` (``k = 0``: no face nearby)."""
        near = [b for tt, b in self.found.values() if abs(tt - t) <= self.hold_s + 1e-6 and len(b)]
        return np.concatenate(near) if near else np.zeros((0, 4))

    def forget(self, before: float) -> None:
        self.found = {n: v for n, v in self.found.items() if v[0] >= before - self.hold_s}


def anonymize_video(src: str | os.PathLike, dst: str | os.PathLike, timeline=None, *, detector=None,
                    detect_fps: float = 5.0, hold_s: float = _HOLD_S, margin: float = 0.2, blocks: int = 8,
                    no_face: str = "frame", keep_audio: bool = False, max_side: int | None = None,
                    on_frame: Callable[[float], None] | None = None) -> Path:
    """Write ``dst``: ``src`` with faces pixelated and ``timeline``'s labels drawn (see the module docstring).

    Args:
        timeline: a :meth:`Recognizer.predict_video` DataFrame, or None for no captions.
        detector: a :class:`~mmadfer.media.faces.FaceDetector` (default: a new one on the best device). A detector
            that tracks faces between keyframes (``per_frame`` false, such as ``mtcnn-fast``) is replaced by MTCNN
            on every frame looked at: a face the copy must hide is never left to interpolation.
        detect_fps: detections per second of video (every frame if the video is slower).
        no_face: ``'frame'`` pixelates frames with no face detected nearby; ``'keep'`` leaves them.
        keep_audio: copy the audio track (off by default: voices identify people too).
        max_side: downscale the output so its longer side is at most this.
        on_frame: called with each frame's time in seconds before it is made (progress); an exception it raises
            stops the copy at once and leaves no output (how the web app cancels within a frame).
    Returns:
        ``dst``. Raises :class:`~mmadfer.MediaError` if ``src`` cannot be read.
    """
    if no_face not in ("frame", "keep"):
        raise ValueError(f"no_face must be 'frame' or 'keep', got {no_face!r}")
    if not getattr(detector, "per_frame", False):  # none given, or one that tracks between keyframes
        detector = FaceDetector(getattr(detector, "device", None))
    dst = Path(dst)
    with open_video(src, max_side=max_side) as reader:
        fps = reader.fps or 25.0
        faces = _Faces(detector, every=max(1, round(fps / detect_fps)), hold_s=hold_s)
        with_audio = keep_audio and reader.has_audio
        stream = _Tee(reader.windows(_CHUNK_S + hold_s, _CHUNK_S), reader.sample_rate if with_audio else 0)
        times: collections.deque = collections.deque()  # presentation time of each frame handed to the writer

        def frames() -> Iterator[np.ndarray]:
            number = 0  # frames written so far: numbers the detection grid
            while (clip := stream.next_clip()) is not None:
                c1 = clip.start_s + _CHUNK_S
                faces.update(clip.frames, clip.frame_times, number)
                own = np.flatnonzero(clip.frame_times < c1 - 1e-6)  # the chunk's frames; the rest is look-ahead
                for i in own:
                    t = float(clip.frame_times[i])
                    if on_frame is not None:
                        on_frame(t)
                    frame = clip.frames[i].copy()
                    boxes = faces.near(t)
                    for box in boxes:
                        pixelate(frame, _grow(box, margin), blocks)
                    if not len(boxes) and no_face == "frame":
                        pixelate(frame, (0, 0, frame.shape[1], frame.shape[0]), 2 * blocks)
                    times.append(t)
                    yield _draw_caption(frame, label_at(timeline, t))
                number += len(own)
                faces.forget(c1)

        frame_times = (times.popleft() for _ in iter(int, 1))  # in lockstep with frames()
        write_video(dst, frames(), fps, waveform=stream.audio() if with_audio else None,
                    sample_rate=reader.sample_rate or None, frame_times=frame_times)
    return dst


class _Tee:
    """One pass over the chunks feeds two consumers: the frames and the audio the writer muxes slightly ahead of
    them. Whichever consumer is ahead decodes the next chunk; the other finds it queued (at most a chunk or two)."""

    def __init__(self, chunks: Iterator, sample_rate: int):
        self.chunks, self.sample_rate = chunks, sample_rate
        self.clips: collections.deque = collections.deque()
        self.waves: collections.deque = collections.deque()

    def _pull(self) -> bool:
        clip = next(self.chunks, None)
        if clip is None:
            return False
        self.clips.append(clip)
        if self.sample_rate:  # the chunk's own samples, without the look-ahead
            n = round((clip.start_s + _CHUNK_S) * self.sample_rate) - round(clip.start_s * self.sample_rate)
            self.waves.append(clip.waveform[:, :n])
        return True

    def next_clip(self):
        return self.clips.popleft() if self.clips or self._pull() else None

    def audio(self) -> Iterator[np.ndarray]:
        while self.waves or self._pull():
            yield self.waves.popleft()
