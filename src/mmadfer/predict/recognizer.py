"""Run a trained model on any video: a timeline of expressions, one row per window.

::

    rec = mmadfer.Recognizer.from_checkpoint("dfew_fold1.pth")       # or our .safetensors, or an exported .onnx
    table = rec.predict_video("interview.mp4")                        # pandas DataFrame, one row per window
    table[["start_s", "end_s", "label", "confidence"]]

**Windows** follow the rule of :mod:`mmadfer.media.windows`: by default the model's own 5.12 s, one stride apart, a
short last window dropped unless it is the only one.

**Speed and memory.** Windows stream through :meth:`mmadfer.media.decode.VideoReader.windows` (one decode pass, one
window in memory at a time). Decoding, face detection and feature extraction run in a background thread, a bounded
queue ahead of the model, while the model runs on ``batch_size`` windows at a time on the device, so a GPU is fed
batches instead of single clips. Each window goes through :func:`mmadfer.media.pipeline.prepare_window`, the same
preprocessing as training and evaluation, with the profile stored in the checkpoint.

**Privacy.** Everything happens in memory. Nothing is written to disk unless asked (``save_faces``), and nothing here
opens a network connection.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..accel import default_device
from ..config import DEFAULT_MIN_FACE_COVERAGE, ModelConfig, PreprocessConfig
from ..evaluation.calibration import probabilities
from ..evaluation.selective import check_thresholds
from ..media.decode import open_video
from ..media.detectors import detector_spec, make_detector
from ..media.windows import DEFAULT_MAX_SIDE, count_windows
from ..provenance import provenance, read_provenance
from ..runtime.load import load_runner
from ..runtime.runner import as_runner
from ..timing import stage
from .archive import VideoResult, VideoWindows, iter_videos
from .engine import Engine, Progress, Scored, track_ids
from .prefetch import prefetch
from .prepare import MIN_TRACK_PRESENCE, Preparer, WindowInfo
from .rows import window_row
from .table import table_columns
from .tracks import TrackLinker

__all__ = ["Recognizer", "WindowInfo", "DEFAULT_BATCH_SIZE", "MIN_TRACK_PRESENCE"]

DEFAULT_BATCH_SIZE = 8


# ---------------------------------------------------------------------------------------------------------------------
# The recogniser
# ---------------------------------------------------------------------------------------------------------------------
class Recognizer:
    """Expression recognition on prepared tensors, clips or whole videos.

    Args:
        model: an :class:`~mmadfer.MMADFER` (run by a :class:`~mmadfer.runtime.runner.TorchRunner`), or any
            :class:`~mmadfer.runtime.runner.Runner`, e.g. from :func:`mmadfer.runtime.load.load_runner`.
        device: ``'cuda'`` if available, else ``'cpu'``.
        batch_size: windows per forward pass.
        detector: ``'auto'`` (MTCNN on ``device``), a name of :data:`mmadfer.media.detectors.DETECTORS` (e.g.
            ``'mtcnn-fast'``), ``None`` (no detection: frames are used whole, for footage that is already
            face-cropped), or any :class:`mmadfer.media.detectors.Detector`.
        precision: ``'fp32'``, ``'bf16'`` (autocast) or ``'fp8'`` (see :mod:`mmadfer.accel`; torch backend only).
            Default: :func:`mmadfer.accel.default_precision` (bf16 on CUDA and on CPUs with native bf16, else fp32).
        compile: ``torch.compile`` the model (worth it for long videos on a GPU: the first batch pays the compile).
        max_side: frames are downscaled at decode time to at most this many pixels on their longer side.
        prefetch: prepare windows in a background thread while the model runs.
        multi_face: when several people are in view, recognise each one (rows get a ``track_id``) instead of one
            crop around all faces (the reference's union box).
        min_face_coverage: a window whose face was found in fewer than this fraction of its sampled frames is
            labelled ``no_face``, with no confidence (default :data:`~mmadfer.config.DEFAULT_MIN_FACE_COVERAGE`,
            half; None: always the top class). Without a detector the frames count as faces.
        min_confidence: a window whose top probability is below this is labelled ``uncertain`` (None: off).
            Either way the ``p_<class>`` columns keep the model's probabilities.
    """

    def __init__(self, model, *, device: str | torch.device | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                 detector: Any = "auto", precision: str | None = None, compile: bool = False,
                 max_side: int | None = DEFAULT_MAX_SIDE, prefetch: bool = True, multi_face: bool = True,
                 source: str | None = None, min_face_coverage: float | None = DEFAULT_MIN_FACE_COVERAGE,
                 min_confidence: float | None = None):
        self.device = torch.device(device or default_device())
        self.runner = as_runner(model, device=self.device, precision=precision, compile=compile)
        self.backend = self.runner.backend
        self.precision = self.runner.precision  # torch: as asked; a file's runner: fp32 or int8, from its metadata
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.model = model
        self.batch_size = batch_size
        self.detector = make_detector(detector, str(self.device))
        #: the detector's canonical name (:func:`mmadfer.media.detectors.detector_spec`)
        self.detector_spec = detector_spec(detector, self.detector)
        self.max_side = max_side
        self.prefetch = prefetch
        self.multi_face = multi_face
        self.source = source
        check_thresholds(min_confidence, min_face_coverage)
        self.min_face_coverage = min_face_coverage
        self.min_confidence = min_confidence
        self._provenance: dict[str, Any] | None = None

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, *, device: str | torch.device | None = None,
                        backend: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE, detector: Any = "auto",
                        precision: str | None = None, cache_dir: str | os.PathLike | bool | None = None,
                        job_windows: int | None = None, **kw: Any) -> "Recognizer":
        """Load a checkpoint: mmadfer ``.safetensors``, the reference's released ``.pth``, or an exported ``.onnx`` or
        OpenVINO ``.xml``.

        ``backend`` (:data:`mmadfer.runtime.backends.BACKENDS`): ``'torch'``, ``'onnx'``, ``'onnx-int8'``,
        ``'openvino-int8'`` or ``'auto'`` (the default), which picks the fastest path that keeps predictions
        (:func:`mmadfer.runtime.select.choose`): exported files run on their own runtime; on the CPU, unless
        ``precision`` or ``compile`` asks for torch, the installed int8 paths are converted, checked against PyTorch
        on held-out clips and timed on this machine, and the fastest whose top-1 agreement is at least 99% runs
        (torch when none is faster); the decision is cached per checkpoint and CPU. ``job_windows``: the clips the
        job will run, when known: a job too short to repay a conversion runs in PyTorch. Elsewhere ``'torch'``.

        A PyTorch checkpoint is converted once for an int8 backend (calibration included for OpenVINO) and the
        result kept in ``cache_dir`` (default :func:`mmadfer.runtime.cache.default_cache_dir`; ``False``: convert in
        a temporary place every time). ``'onnx'`` exports to ONNX in memory.
        """
        device = device or default_device()
        runner = load_runner(backend or "auto", path, device=device, precision=precision,
                             compile=kw.pop("compile", False), cache_dir=cache_dir, job_windows=job_windows)
        return cls(runner, device=device, batch_size=batch_size, detector=detector, source=str(Path(path)), **kw)

    # -- properties ------------------------------------------------------------------------------------------------
    @property
    def cfg(self) -> ModelConfig:
        return self.runner.cfg

    @property
    def labels(self) -> tuple[str, ...]:
        return self.cfg.labels

    @property
    def preprocess(self) -> PreprocessConfig:
        """The preprocessing profile the model was trained with (from its checkpoint)."""
        return self.cfg.preprocess

    @property
    def provenance(self) -> dict[str, Any]:
        """What the model was trained on (:func:`mmadfer.provenance.provenance`): ``dataset`` (None when not
        recorded), ``classes``, ``synthetic``, ``demo``, ``recorded`` and ``note``, one sentence to show beside its
        predictions (e.g. that a demo model's labels say nothing about real people)."""
        if self._provenance is None:
            record = getattr(self.model, "trained_on", None)  # loaded models and exported files carry theirs
            if record is None and self.source is not None and Path(self.source).is_file():
                self._provenance = read_provenance(self.source, self.labels)  # says why nothing is recorded
            else:
                self._provenance = provenance(record, self.labels)
        return self._provenance

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
        with stage("model"):
            logits = torch.as_tensor(self.runner(video, audio))  # [B, C]
            return probabilities(logits, self.cfg.temperature).cpu().numpy()

    # -- videos -------------------------------------------------------------------------------------------------------
    @property
    def preparer(self) -> Preparer:
        """What preparing a window needs (profile, detector, ``multi_face``), without the model."""
        return Preparer(self.preprocess, self.detector, self.multi_face)

    def prepare(self, clip) -> list[dict[str, Any]]:
        """Model inputs for one decoded window: a list with one entry per face track (usually one).

        Faces are detected once on the sampled frames (:func:`~mmadfer.media.pipeline.prepare_window`). If
        ``multi_face`` is on and two or more people each appear in at least ``MIN_TRACK_PRESENCE`` of those frames,
        each person is cropped on their own (:func:`~mmadfer.media.faces.split_tracks`) instead of one crop that
        spans them all, and gets its own row (:class:`~mmadfer.predict.prepare.Preparer`).
        """
        return self.preparer.prepare(clip)

    def engine(self, **kw: Any) -> Engine:
        """The prediction :class:`~mmadfer.predict.engine.Engine` on this recogniser's model: its batch size, labels
        and label thresholds (``kw`` overrides them and passes callbacks)."""
        kw.setdefault("batch_size", self.batch_size)
        kw.setdefault("min_confidence", self.min_confidence)
        kw.setdefault("min_face_coverage", self.min_face_coverage)
        return Engine(self.predict_prepared, self.labels, **kw)

    def track_ids(self, tracks: list[dict[str, Any]], linker: TrackLinker) -> list[int]:
        """Stable ids for a window's face tracks (:func:`mmadfer.predict.engine.track_ids`)."""
        return track_ids(tracks, linker)

    def iter_video(self, path: str | os.PathLike, window_s: float | None = None, stride_s: float | None = None, *,
                   start_s: float = 0.0, end_s: float | None = None, progress: bool | dict = False,
                   save_faces: str | os.PathLike | None = None,
                   on_window: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
                   on_progress: Callable[[Progress], None] | None = None,
                   poll: Callable[[], None] | None = None) -> Iterator[dict[str, Any]]:
        """Stream timeline rows (dicts, in time order) for ``path``; see :meth:`predict_video` for the arguments.

        Every row has a ``track_id`` here (``predict_video`` keeps the column only when a window had several faces).
        ``on_window(row, prepared)`` is called for each row as it is produced, with the window's model inputs;
        ``on_progress(Progress)`` at the start, after each batch and at the end (:class:`~mmadfer.predict.engine.
        Progress`: stage, windows done and expected, elapsed seconds, an estimate of the seconds left); ``poll()``
        about every 50 ms while the next window is being prepared (see :meth:`predict_video`).
        """
        path = os.fspath(path)
        window_s = float(window_s or self.window_s)
        stride_s = float(stride_s or window_s)
        total = bar = None
        if progress or on_progress is not None:
            with open_video(path, max_side=self.max_side) as reader:
                plausible = reader.plausible_duration_s()  # never a list of every window: counted
            total = count_windows(plausible, window_s, stride_s, start_s=start_s, end_s=end_s) if plausible else None
        if progress:
            bar = tqdm(total=total, desc=Path(path).name, unit="window", leave=False,
                       **(progress if isinstance(progress, dict) else {}))

        def report(p: Progress) -> None:
            if bar is not None:
                bar.update(p.windows_done - bar.n)
            if on_progress is not None:
                on_progress(p)

        source = VideoWindows(self.preparer, [path], [0.0], window_s, stride_s, self.max_side, start_s=start_s,
                              end_s=end_s)
        items = prefetch(iter(source), depth=2 * self.batch_size, poll=poll) if self.prefetch else iter(source)
        engine = self.engine(on_window=on_window, on_progress=report, windows_total=total,
                             save_faces={0: save_faces} if save_faces is not None else None)
        try:
            for event in engine.run(items):
                if isinstance(event, Scored):
                    yield event.row
                elif event.error is not None:
                    raise event.error
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # stops the preparing thread before its reader is closed
            if bar is not None:
                bar.close()

    def predict_prepared(self, prepared: list[dict[str, Any]]) -> np.ndarray:
        """Probabilities ``[B, C]`` for a list of :meth:`prepare` outputs, in one forward pass."""
        video = torch.stack([torch.as_tensor(p["video"]) for p in prepared])  # [B, T, 3, S, S] uint8
        audio = torch.stack([torch.as_tensor(p["audio"]) for p in prepared])  # [B, 1, 512, 128]
        return self.predict_batch(video, audio)

    def window_row(self, clip: "WindowInfo", prepared: dict[str, Any], probs: np.ndarray,
                   track: int | None = None) -> dict[str, Any]:
        """One timeline row (:func:`mmadfer.predict.rows.window_row`) under this recogniser's thresholds."""
        return window_row(clip, prepared, probs, self.labels, track, min_confidence=self.min_confidence,
                          min_face_coverage=self.min_face_coverage)

    def predict_video(self, path: str | os.PathLike, window_s: float | None = None, stride_s: float | None = None,
                      *, start_s: float = 0.0, end_s: float | None = None, progress: bool | dict = False,
                      save_faces: str | os.PathLike | None = None, on_window=None,
                      on_progress: Callable[[Progress], None] | None = None,
                      poll: Callable[[], None] | None = None):
        """A timeline of ``path``: a :class:`pandas.DataFrame` with one row per window (and per face track).

        Columns: ``start_s``, ``end_s``, ``track_id`` (only when several faces are tracked), ``label`` (the most likely
        class; ``no_face`` below ``min_face_coverage``, ``uncertain`` below ``min_confidence``), ``confidence`` (its
        probability; NaN for ``no_face``), ``p_<class>`` for every class (the model's probabilities, summing to 1,
        whatever the label), ``face_coverage`` (fraction of the sampled frames with a detected face; 0 means the frames
        were used whole), ``has_audio`` and ``box_x0, box_y0, box_x1, box_y1`` (the face crop as fractions of the
        frame; NaN without a face).
        ``df.attrs`` records the file, model source, window, stride and classes.

        Args:
            window_s: seconds per window; default the model's own (5.12 s).
            stride_s: seconds between window starts; default one window.
            start_s, end_s: analyse only this part of the file.
            progress: show a progress bar over the windows (a dict passes options to tqdm).
            save_faces: a folder for this video: write the face crops the model saw there, one grid image per window
                (off by default; nothing is written unless asked).
            on_window: ``on_window(row, prepared)`` for each row as it is scored (raise in it to stop).
            on_progress: ``on_progress(Progress)``: stage, windows done of expected, elapsed, estimate left.
            poll: ``poll()`` about every 50 ms while the next window is decoded and its faces found (with
                ``prefetch``); raise in it to stop at once, without waiting for that window (the web app's Cancel).
        Raises:
            MediaError: the file cannot be decoded (names the file and the reason).
        """
        window_s = float(window_s or self.window_s)
        stride_s = float(stride_s or window_s)
        rows = list(self.iter_video(path, window_s, stride_s, start_s=start_s, end_s=end_s, progress=progress,
                                    save_faces=save_faces, on_window=on_window, on_progress=on_progress,
                                    poll=poll))
        return self.timeline(path, rows, window_s, stride_s)

    def timeline(self, path: str | os.PathLike, rows: list[dict[str, Any]], window_s: float,
                 stride_s: float) -> pd.DataFrame:
        """The table of :meth:`predict_video` from its rows (``track_id`` kept only when a window had several)."""
        multi = len({r["start_s"] for r in rows}) < len(rows)  # some window had several faces
        df = pd.DataFrame(rows, columns=table_columns(self.labels, tracks=multi))
        df.attrs.update(video=os.fspath(path), model=self.source, window_s=window_s, stride_s=stride_s,
                        labels=list(self.labels), audio_profile=self.preprocess.audio_profile)
        return df

    def predict_videos(self, paths, window_s: float | None = None, stride_s: float | None = None, *,
                       workers: int | None = None, save_faces=None, detect_on: str = "auto",
                       mix_videos: bool = False, durations=None,
                       on_progress: Callable[[Progress], None] | None = None) -> Iterator[VideoResult]:
        """Timelines of many videos, pipelined: yields a :class:`~mmadfer.predict.archive.VideoResult` per video
        as soon as it is finished (in completion order; ``result.index`` is its position in ``paths``).

        Decoding, sampling, face detection and fbank run in ``workers`` processes (default
        :func:`~mmadfer.predict.archive.default_workers`; 0: in this process) while the model runs here on batches
        drawn from all videos. A video that fails yields its error and the others go on. The tables equal
        :meth:`predict_video`'s bit for bit (unless ``mix_videos``: batches shared between videos). ``save_faces``:
        None or one folder (or None) per video. ``on_progress``: as in :meth:`iter_video`, over all the videos (the
        total is known when ``durations`` are given). See :func:`mmadfer.predict.archive.iter_videos`.
        """
        paths = [os.fspath(p) for p in paths]
        window_s = float(window_s or self.window_s)
        stride_s = float(stride_s or window_s)
        total = None
        if durations is not None and all(d > 0 for d in durations):
            total = sum(count_windows(d, window_s, stride_s) for d in durations)
        faces = {i: f for i, f in enumerate(save_faces) if f is not None} if save_faces is not None else None
        engine = self.engine(mix=mix_videos, save_faces=faces, on_progress=on_progress, windows_total=total)
        return iter_videos(engine, self.preparer, paths, lambda path, rows: self.timeline(path, rows, window_s, stride_s),
                           window_s, stride_s, workers=workers, batch_size=self.batch_size,
                           prefetch_windows=self.prefetch, max_side=self.max_side, detect_on=detect_on,
                           durations=durations)
