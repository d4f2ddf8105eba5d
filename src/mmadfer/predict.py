"""Run a trained model on any video: a timeline of expressions, one row per window.

::

    rec = mmadfer.Recognizer.from_checkpoint("dfew_fold1.pth")       # or our .safetensors, or an exported .onnx
    table = rec.predict_video("interview.mp4")                        # pandas DataFrame, one row per window
    table[["start_s", "end_s", "label", "confidence"]]

**Windows.** By default a window is the model's own input: the 5.12 s that its 512-frame fbank covers, from which 16
frames are sampled (``PreprocessConfig.window_s``). The default stride is one window (no overlap); a smaller stride
gives a smoother timeline at proportionally more compute. Windows start at ``0, stride, 2·stride, …`` while the start
is before the end of the video, and are cut at the end. A cut window shorter than half a window is dropped (too little
evidence, and its fbank would be mostly padding) unless it is the first, so a video shorter than one window still gets
one row. :func:`window_spans` computes the spans for a known duration; streaming applies the same rule.

**Speed and memory.** Windows stream through :meth:`mmadfer.media.decode.VideoReader.windows` (one decode pass, one
window in memory at a time). Decoding, face detection and feature extraction run in a background thread, a bounded
queue ahead of the model, while the model runs on ``batch_size`` windows at a time on the device, so a GPU is fed
batches instead of single clips. Each window goes through :func:`mmadfer.media.pipeline.prepare_window`, the same
preprocessing as training and evaluation, with the profile stored in the checkpoint.

**Privacy.** Everything happens in memory. Nothing is written to disk unless asked (``save_faces``), and nothing here
opens a network connection.
"""
from __future__ import annotations

import math
import os
import queue
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch

from .backends import (_CPU_CONVERSIONS, _RUNNER_FILES, BACKENDS, _default_device, conversion_target, load_runner,
                       resolve_backend)
from .config import ModelConfig, PreprocessConfig
from .errors import CheckpointError
from .evaluation.calibration import probabilities

__all__ = ["Recognizer", "BACKENDS", "resolve_backend", "conversion_target", "window_spans", "keep_window",
           "kept_windows", "table_columns", "write_table", "TrackLinker", "WindowInfo", "MIN_WINDOW_FRACTION"]

#: A cut final window shorter than this fraction of a window is dropped (unless it is the only one).
MIN_WINDOW_FRACTION = 0.5
DEFAULT_BATCH_SIZE = 8
#: With ``multi_face``, a person counts as a separate track if seen in at least this fraction of a window's frames.
MIN_TRACK_PRESENCE = 0.5
#: Frames are downscaled at decode time so their longer side is at most this (bounds a window's memory on 4K video;
#: faces stay far above the model's 224 px).
DEFAULT_MAX_SIDE = 720
_EPS = 1e-6


# ---------------------------------------------------------------------------------------------------------------------
# Windows
# ---------------------------------------------------------------------------------------------------------------------
def keep_window(index: int, length_s: float, window_s: float) -> bool:
    """Whether window ``index`` (0-based), cut to ``length_s`` seconds at the end of the video, gets a row."""
    return index == 0 or length_s >= MIN_WINDOW_FRACTION * window_s - _EPS


def kept_windows(reader, window_s: float, stride_s: float | None = None, *, start_s: float = 0.0,
                 end_s: float | None = None) -> Iterator[Any]:
    """The windows of a :class:`~mmadfer.media.decode.VideoReader` that get a prediction: a cut final window is
    dropped by :func:`keep_window`, and windows past the end of the video stream (audio runs longer) are skipped."""
    for k, clip in enumerate(reader.windows(window_s, stride_s, start_s=start_s, end_s=end_s)):
        if not keep_window(k, clip.duration_s, window_s):
            break
        if clip.num_frames == 0:
            continue
        yield clip


def window_spans(duration_s: float, window_s: float, stride_s: float | None = None, *, start_s: float = 0.0,
                 end_s: float | None = None) -> list[tuple[float, float]]:
    """The ``(start_s, end_s)`` of every window :meth:`Recognizer.predict_video` produces for a video of
    ``duration_s`` seconds.

    Example: 12.0 s, window 5.12 s, stride 2.0 s gives starts 0, 2, 4, 6, 8, 10; the window at 8 is cut to 4.0 s
    (kept) and the one at 10 to 2.0 s, under half a window (dropped): 5 windows.
    """
    stride_s = window_s if stride_s is None else stride_s
    if window_s <= 0 or stride_s <= 0:
        raise ValueError(f"window and stride must be positive, got {window_s} and {stride_s}")
    stop = duration_s if end_s is None else min(end_s, duration_s)
    spans = []
    for k in range(max(0, math.ceil((stop - start_s - _EPS) / stride_s))):
        t0 = start_s + k * stride_s
        t1 = min(t0 + window_s, stop)
        if not keep_window(k, t1 - t0, window_s):
            break
        spans.append((round(t0, 6), round(t1, 6)))
    return spans


def table_columns(labels: Iterable[str], tracks: bool = False) -> list[str]:
    """Columns of a timeline table, in order."""
    return (["start_s", "end_s"] + (["track_id"] if tracks else []) + ["label", "confidence"]
            + [f"p_{c}" for c in labels] + ["face_coverage", "has_audio"])


# ---------------------------------------------------------------------------------------------------------------------
# Background preparation
# ---------------------------------------------------------------------------------------------------------------------
_END = object()


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


def _prefetch(items: Iterator[Any], depth: int) -> Iterator[Any]:
    """Iterate ``items`` in a worker thread, at most ``depth`` ahead of the consumer; errors re-raise here.

    Stopping early (an exception or ``close()`` in the consumer) stops the worker and closes ``items`` in it, so the
    readers it holds are released before this returns.
    """
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(x) -> bool:
        while not stop.is_set():
            try:
                q.put(x, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for x in items:
                if not put(x):
                    return
            put(_END)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which re-raises it
            put(_Failure(e))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=work, name="mmadfer-prepare", daemon=True)
    worker.start()
    try:
        while True:
            x = q.get()
            if x is _END:
                return
            if isinstance(x, _Failure):
                raise x.error
            yield x
    finally:
        stop.set()
        while worker.is_alive():
            try:
                q.get(timeout=0.05)
            except queue.Empty:
                pass
        worker.join()


# ---------------------------------------------------------------------------------------------------------------------
# The recogniser
# ---------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WindowInfo:
    """Where a window is (what a timeline row needs of it, without its decoded frames)."""

    path: str
    start_s: float
    end_s: float
    has_audio: bool


class _Recorded:
    """Detector adapter that remembers what the wrapped detector found (so several tracks need one detection)."""

    def __init__(self, detector):
        self.detector, self.found = detector, None

    def detect(self, frames: np.ndarray):
        boxes, probs = self.detector.detect(frames)
        self.found = boxes
        return boxes, probs


class _Given:
    """Detector adapter that serves one face track's boxes to :func:`prepare_window`."""

    def __init__(self, boxes: list[np.ndarray]):
        self.boxes = boxes

    def detect(self, frames: np.ndarray):
        if len(frames) != len(self.boxes):
            raise RuntimeError(f"track has {len(self.boxes)} frames, detector asked for {len(frames)}")
        return self.boxes, [np.ones(len(b), np.float32) for b in self.boxes]


class TrackLinker:
    """Gives face tracks of consecutive windows stable ids: a track keeps the id of the previous window's track whose
    mean crop box overlaps it most (IoU ≥ ``min_iou``); otherwise it gets a new id."""

    def __init__(self, min_iou: float = 0.1):
        self.min_iou = min_iou
        self.last: dict[int, np.ndarray] = {}
        self.next_id = 0

    def link(self, boxes: list[np.ndarray | None]) -> list[int]:
        from .media.faces import box_iou

        means = [None if b is None else np.asarray(b, np.float64).reshape(-1, 4).mean(0) for b in boxes]
        ids: list[int] = [-1] * len(boxes)
        prev = list(self.last.items())
        if prev and any(m is not None for m in means):
            iou = box_iou(np.stack([b for _, b in prev]), np.stack([m if m is not None else np.zeros(4) for m in means]))
            for flat in np.argsort(-iou, axis=None):
                k, d = np.unravel_index(flat, iou.shape)
                if iou[k, d] < self.min_iou:
                    break
                if means[d] is not None and ids[d] < 0 and prev[k][0] not in ids:
                    ids[d] = prev[k][0]
        current = {}
        for d, m in enumerate(means):
            if m is None:
                continue
            if ids[d] < 0:
                ids[d], self.next_id = self.next_id, self.next_id + 1
            current[ids[d]] = m
        self.last = current or self.last
        return ids


def _make_detector(detector: Any, device: str):
    if detector != "auto":
        return detector
    try:
        from .media.faces import FaceDetector

        return FaceDetector(device)
    except ImportError as e:
        warnings.warn(f"face detection is off ({e}); whole frames are used instead of face crops", stacklevel=3)
        return None


class Recognizer:
    """Expression recognition on prepared tensors, clips or whole videos.

    Args:
        model: an :class:`~mmadfer.MMADFER`, or a runner: :class:`~mmadfer.export.OnnxModel` (ONNX Runtime) or
            :class:`~mmadfer.openvino_int8.OpenVinoModel` (OpenVINO).
        device: ``'cuda'`` if available, else ``'cpu'``.
        batch_size: windows per forward pass.
        detector: ``'auto'`` (MTCNN on ``device``), ``None`` (no detection: frames are used whole, for footage that is
            already face-cropped), or a :class:`mmadfer.media.faces.FaceDetector`.
        precision: ``'fp32'``, ``'bf16'`` (autocast) or ``'fp8'`` (see :mod:`mmadfer.accel`; torch backend only).
            Default: :func:`mmadfer.accel.default_precision` (bf16 on CUDA and on CPUs with native bf16, else fp32).
        compile: ``torch.compile`` the model (worth it for long videos on a GPU: the first batch pays the compile).
        max_side: frames are downscaled at decode time to at most this many pixels on their longer side.
        prefetch: prepare windows in a background thread while the model runs.
        multi_face: when several people are in view, recognise each one (rows get a ``track_id``) instead of one
            crop around all faces (the reference's union box).
    """

    def __init__(self, model, *, device: str | torch.device | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                 detector: Any = "auto", precision: str | None = None, compile: bool = False,
                 max_side: int | None = DEFAULT_MAX_SIDE, prefetch: bool = True, multi_face: bool = True,
                 source: str | None = None):
        from .accel import PRECISIONS, default_precision, optimize_model

        self.device = torch.device(device or _default_device())
        # an OnnxModel or OpenVinoModel runs the model itself; anything else is a torch module
        self.backend = "torch" if isinstance(model, torch.nn.Module) else model.backend
        if self.backend != "torch":
            if precision not in (None, "fp32") or compile:
                raise ValueError(f"precision and compile apply to the torch backend, not to {self.backend}; "
                                 "for int8 use backend='onnx-int8' or 'openvino-int8'")
            self.precision = model.precision  # fp32 or int8, from the file's metadata
        else:
            self.precision = precision or default_precision(self.device)
            if self.precision not in PRECISIONS:
                raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.model = model
        self._forward = model if self.backend != "torch" else optimize_model(
            model.eval(), device=self.device, precision=self.precision, compile=compile)
        self.batch_size = batch_size
        self.detector = _make_detector(detector, str(self.device))
        self.max_side = max_side
        self.prefetch = prefetch
        self.multi_face = multi_face
        self.source = source

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, *, device: str | torch.device | None = None,
                        backend: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE, detector: Any = "auto",
                        precision: str | None = None, cache_dir: str | os.PathLike | bool | None = None,
                        **kw: Any) -> "Recognizer":
        """Load a checkpoint: mmadfer ``.safetensors``, the reference's released ``.pth``, or an exported ``.onnx`` or
        OpenVINO ``.xml``.

        ``backend`` (:data:`mmadfer.backends.BACKENDS`): ``'torch'``, ``'onnx'``, ``'onnx-int8'``,
        ``'openvino-int8'`` or ``'auto'`` (the default), which picks the fastest path that keeps predictions:
        exported files run on their own runtime; on the CPU, unless ``precision`` or ``compile`` asks for torch,
        ``'openvino-int8'`` when OpenVINO and NNCF are installed (0.91 s per clip on 2 cores), else ``'onnx-int8'``
        with ONNX Runtime (1.15 s), else ``'torch'`` (bf16 2.0 s, fp32 3.7 s); elsewhere ``'torch'``. Both int8
        paths agree with fp32 on the top-1 class for every clip measured (BENCHMARKS.md). If a conversion fails,
        ``'auto'`` warns and tries the next path.

        A PyTorch checkpoint is converted once for an int8 backend (OpenVINO: about 2 min for the reference model,
        calibration included; ONNX Runtime: about 30 s) and the result kept in ``cache_dir`` (default
        :func:`mmadfer.export.default_cache_dir`; ``False``: convert in a temporary place every time). ``'onnx'``
        exports to ONNX in memory.
        """
        from .checkpoints import load_model

        path = Path(path)
        backend = backend or "auto"
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        device = device or _default_device()
        suffix = path.suffix.lower()
        if suffix in _RUNNER_FILES and backend not in ("auto", _RUNNER_FILES[suffix], f"{_RUNNER_FILES[suffix]}-int8"):
            raise ValueError(f"{path}: a {suffix} file runs with backend='{_RUNNER_FILES[suffix]}' (or 'auto')")
        if backend == "auto":
            first = resolve_backend(path, device, precision, kw.get("compile", False))
            # a failed conversion falls through to the next fastest path, and finally to torch
            later = _CPU_CONVERSIONS[_CPU_CONVERSIONS.index(first) + 1:] if first in _CPU_CONVERSIONS else ()
            candidates = [first] if suffix in _RUNNER_FILES else list(dict.fromkeys([first, *later, "torch"]))
        else:
            candidates = [backend]
        for i, name in enumerate(candidates):
            if name == "torch":
                model = load_model(path)
                break
            try:
                model = load_runner(name, path, device=device, cache_dir=cache_dir)
                break
            except CheckpointError:
                raise
            except Exception as e:
                if i == len(candidates) - 1:
                    raise
                warnings.warn(f"{name} conversion of {path} failed ({e}); trying {candidates[i + 1]} instead",
                              stacklevel=2)
        return cls(model, device=device, batch_size=batch_size, detector=detector, precision=precision,
                   source=str(path), **kw)

    # -- properties ------------------------------------------------------------------------------------------------
    @property
    def cfg(self) -> ModelConfig:
        return self.model.cfg

    @property
    def labels(self) -> tuple[str, ...]:
        return self.cfg.labels

    @property
    def preprocess(self) -> PreprocessConfig:
        """The preprocessing profile the model was trained with (from its checkpoint)."""
        return self.cfg.preprocess

    @property
    def window_s(self) -> float:
        """The model's own window: the span its 512-frame fbank covers (5.12 s)."""
        return self.preprocess.window_s

    def __repr__(self) -> str:
        return (f"Recognizer({self.source or type(self.model).__name__}, backend={self.backend}, device={self.device}, "
                f"precision={self.precision}, batch_size={self.batch_size}, classes={list(self.labels)})")

    # -- tensors -----------------------------------------------------------------------------------------------------
    def predict_batch(self, video: torch.Tensor | np.ndarray, audio: torch.Tensor | np.ndarray) -> np.ndarray:
        """Class probabilities ``[B, C]`` (float32, ``softmax(logits / cfg.temperature)``) for prepared inputs.

        ``video``: ``[B, T, 3, S, S]`` uint8 (0-255) or float in [0, 1]; ``audio``: ``[B, 1, 512, 128]`` normalised fbank.
        """
        if self.backend != "torch":
            logits = torch.from_numpy(self._forward(video, audio))  # [B, C]
        else:
            from .accel import autocast

            video = torch.as_tensor(video).to(self.device, non_blocking=True)  # [B, T, 3, S, S]
            audio = torch.as_tensor(audio).to(self.device, non_blocking=True)  # [B, 1, 512, 128]
            with torch.inference_mode(), autocast(self.device, self.precision):
                logits = self._forward(video, audio)  # [B, C]
        return probabilities(logits, self.cfg.temperature).cpu().numpy()

    # -- videos -------------------------------------------------------------------------------------------------------
    def prepare(self, clip) -> list[dict[str, Any]]:
        """Model inputs for one decoded window: a list with one entry per face track (usually one).

        Faces are detected once on the sampled frames (:func:`~mmadfer.media.pipeline.prepare_window`). If
        ``multi_face`` is on and two or more people each appear in at least ``MIN_TRACK_PRESENCE`` of those frames,
        each person is cropped on their own (:func:`~mmadfer.media.faces.split_tracks`) instead of one crop that
        spans them all, and gets its own row.
        """
        from .media.faces import split_tracks
        from .media.pipeline import prepare_window

        if self.detector is None or not self.multi_face:
            return [prepare_window(clip, self.preprocess, detector=self.detector, train=False)]
        recorded = _Recorded(self.detector)
        first = prepare_window(clip, self.preprocess, detector=recorded, train=False)
        found = recorded.found or []
        tracks = [t for t in split_tracks(found)
                  if sum(len(b) > 0 for b in t) >= MIN_TRACK_PRESENCE * max(1, len(found))]
        if len(tracks) < 2:
            return [first]
        return [prepare_window(clip, self.preprocess, detector=_Given(t), train=False) for t in tracks]

    def _prepared_windows(self, reader, window_s: float, stride_s: float, start_s: float,
                          end_s: float | None) -> Iterator[tuple[WindowInfo, list[dict[str, Any]]]]:
        """Decode and prepare each kept window. Only the small model inputs leave: the decoded frames of a window
        are dropped as soon as it is prepared, so what waits in the prefetch queue is a few MB, not whole windows."""
        for clip in kept_windows(reader, window_s, stride_s, start_s=start_s, end_s=end_s):
            yield WindowInfo(clip.path, clip.start_s, clip.end_s, clip.has_audio), self.prepare(clip)

    def track_ids(self, tracks: list[dict[str, Any]], linker: "TrackLinker") -> list[int]:
        """Stable ids for a window's face tracks (``-1``: no face found, the whole frame was used)."""
        return linker.link([None if p.get("face_fallback") or p.get("boxes") is None else p["boxes"] for p in tracks])

    def iter_video(self, path: str | os.PathLike, window_s: float | None = None, stride_s: float | None = None, *,
                   start_s: float = 0.0, end_s: float | None = None, progress: bool | dict = False,
                   save_faces: str | os.PathLike | None = None,
                   on_window: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
                   ) -> Iterator[dict[str, Any]]:
        """Stream timeline rows (dicts, in time order) for ``path``; see :meth:`predict_video` for the arguments.

        Every row has a ``track_id`` here (``predict_video`` keeps the column only when a window had several faces).
        ``on_window(row, prepared)`` is called for each row as it is produced, with the window's model inputs.
        """
        from .media.decode import open_video

        path = os.fspath(path)
        window_s = float(window_s or self.window_s)
        stride_s = float(stride_s or window_s)
        reader = open_video(path, max_side=self.max_side)
        bar = windows = None
        try:
            if progress:
                from tqdm.auto import tqdm

                total = len(window_spans(reader.duration_s, window_s, stride_s, start_s=start_s, end_s=end_s)) \
                    if reader.duration_s else None
                bar = tqdm(total=total, desc=Path(path).name, unit="window", leave=False,
                           **(progress if isinstance(progress, dict) else {}))
            windows = self._prepared_windows(reader, window_s, stride_s, start_s, end_s)
            if self.prefetch:
                windows = _prefetch(windows, depth=2 * self.batch_size)
            linker = TrackLinker()
            pending: list[tuple[WindowInfo, dict[str, Any], int, int]] = []
            for info, tracks in windows:
                for prepared, tid in zip(tracks, self.track_ids(tracks, linker)):
                    pending.append((info, prepared, tid, len(tracks)))
                if len(pending) >= self.batch_size:
                    yield from self._flush(pending, save_faces, on_window, bar)
            yield from self._flush(pending, save_faces, on_window, bar)
        finally:
            if windows is not None:
                windows.close()  # stops the preparing thread before its reader is closed
            if bar is not None:
                bar.close()
            reader.close()

    def _flush(self, pending: list, save_faces, on_window, bar) -> Iterator[dict[str, Any]]:
        if not pending:
            return
        items = pending[:]
        pending.clear()
        probs = self.predict_prepared([prepared for _, prepared, _, _ in items])  # [B, C]
        last = None
        for (info, prepared, tid, n_tracks), p in zip(items, probs):
            row = self.window_row(info, prepared, p, tid)
            if save_faces is not None:
                _save_crops(save_faces, row, prepared["video"], with_track=n_tracks > 1)
            if on_window is not None:
                on_window(row, prepared)
            if bar is not None and info is not last:
                bar.update(1)
            last = info
            yield row

    def predict_prepared(self, prepared: list[dict[str, Any]]) -> np.ndarray:
        """Probabilities ``[B, C]`` for a list of :meth:`prepare` outputs, in one forward pass."""
        video = torch.stack([torch.as_tensor(p["video"]) for p in prepared])  # [B, T, 3, S, S] uint8
        audio = torch.stack([torch.as_tensor(p["audio"]) for p in prepared])  # [B, 1, 512, 128]
        return self.predict_batch(video, audio)

    def window_row(self, clip: "WindowInfo", prepared: dict[str, Any], probs: np.ndarray,
                   track: int | None = None) -> dict[str, Any]:
        """One timeline row: the window's span, ``track_id`` if given, top label, confidence, probabilities."""
        top = int(np.argmax(probs))
        row: dict[str, Any] = {"start_s": round(float(clip.start_s), 6), "end_s": round(float(clip.end_s), 6)}
        if track is not None:
            row["track_id"] = track
        row.update(label=self.labels[top], confidence=float(probs[top]))
        row.update({f"p_{c}": float(v) for c, v in zip(self.labels, probs)})
        row.update(face_coverage=float(prepared.get("face_coverage", float("nan"))),
                   has_audio=bool(prepared.get("has_audio", clip.has_audio)))
        return row

    def predict_video(self, path: str | os.PathLike, window_s: float | None = None, stride_s: float | None = None,
                      *, start_s: float = 0.0, end_s: float | None = None, progress: bool | dict = False,
                      save_faces: str | os.PathLike | None = None, on_window=None):
        """A timeline of ``path``: a :class:`pandas.DataFrame` with one row per window (and per face track).

        Columns: ``start_s``, ``end_s``, ``track_id`` (only when several faces are tracked), ``label`` (the most likely
        class), ``confidence`` (its probability), ``p_<class>`` for every class (they sum to 1), ``face_coverage``
        (fraction of the sampled frames with a detected face; 0 means the frames were used whole) and ``has_audio``.
        ``df.attrs`` records the file, model source, window, stride and classes.

        Args:
            window_s: seconds per window; default the model's own (5.12 s).
            stride_s: seconds between window starts; default one window.
            start_s, end_s: analyse only this part of the file.
            progress: show a progress bar over the windows (a dict passes options to tqdm).
            save_faces: a folder for this video: write the face crops the model saw there, one grid image per window
                (off by default; nothing is written unless asked).
        Raises:
            MediaError: the file cannot be decoded (names the file and the reason).
        """
        import pandas as pd

        window_s = float(window_s or self.window_s)
        stride_s = float(stride_s or window_s)
        rows = list(self.iter_video(path, window_s, stride_s, start_s=start_s, end_s=end_s, progress=progress,
                                    save_faces=save_faces, on_window=on_window))
        multi = len({r["start_s"] for r in rows}) < len(rows)  # some window had several faces
        df = pd.DataFrame(rows, columns=table_columns(self.labels, tracks=multi))
        df.attrs.update(video=os.fspath(path), model=self.source, window_s=window_s, stride_s=stride_s,
                        labels=list(self.labels), audio_profile=self.preprocess.audio_profile)
        return df


# ---------------------------------------------------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------------------------------------------------
def write_table(df, path: str | os.PathLike, fmt: str | None = None) -> Path:
    """Write a timeline atomically as CSV or JSON (``fmt`` from the suffix by default).

    JSON is ``{"video", "model", "window_s", "stride_s", "labels", ..., "windows": [row, ...]}``.
    """
    import json

    from .io import atomic_write

    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".") or "csv").lower()
    if fmt == "csv":
        with atomic_write(path, newline="") as f:
            df.to_csv(f, index=False, float_format="%.6g")
    elif fmt == "json":
        doc = {**df.attrs, "windows": json.loads(df.to_json(orient="records", double_precision=6))}
        with atomic_write(path) as f:
            json.dump(doc, f, indent=1)
    else:
        raise ValueError(f"unknown table format {fmt!r} (csv or json)")
    return path


def _save_crops(folder: str | os.PathLike, row: dict[str, Any], video: Any, with_track: bool = False) -> Path:
    """Write the crops one window fed the model as one grid JPEG (4 per row): ``<folder>/<start>s[_face<id>].jpg``."""
    from PIL import Image

    from .io import atomic_path

    frames = torch.as_tensor(video)  # [T, 3, S, S] uint8
    if frames.dtype != torch.uint8:
        frames = (frames.float().clamp(0, 1) * 255).round().to(torch.uint8)
    t, _, s, _ = frames.shape
    cols = min(4, t)
    rows = math.ceil(t / cols)
    grid = torch.zeros(3, rows * s, cols * s, dtype=torch.uint8)
    for i in range(t):
        r, c = divmod(i, cols)
        grid[:, r * s:(r + 1) * s, c * s:(c + 1) * s] = frames[i]
    track = f"_face{row['track_id']}" if with_track else ""
    out = Path(folder) / f"{row['start_s']:09.3f}s{track}.jpg"
    with atomic_path(out, suffix=".jpg") as tmp:
        Image.fromarray(grid.permute(1, 2, 0).numpy()).save(tmp, format="JPEG", quality=92)
    return out
