"""End-to-end ``predict`` throughput: video seconds per wall second on a real-codec 720p face video with audio, and
where the time goes (decode, faces, fbank, crop, model, write).

Two runs of the same file through ``mmadfer predict``'s own code (:meth:`Recognizer.predict_videos
<mmadfer.predict.recognizer.Recognizer.predict_videos>` and :func:`~mmadfer.predict.table.write_table`), at the
default window and stride:

- ``sequential``: everything in one process, one stage after another, each timed (:mod:`mmadfer.timing`), so the
  stage fractions add up to the wall time (``other``: what no stage covers);
- ``pipelined``: ``workers`` processes decode, detect faces and compute features while the model runs, the way
  ``mmadfer predict`` runs an archive (stages overlap, so only the wall time is reported).

``x_realtime`` is video seconds per wall second (3600× is an hour of video in a second). Every row carries the CPU
model, ISA flags and cores (:func:`mmadfer.hardware.cpu_signature`).
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import av
import torch

from ..config import ModelConfig
from ..data.synthetic import make_astronaut_video
from ..hardware import cpu_signature
from ..media.faces import FaceDetector
from ..model.mmadfer import MMADFER
from ..timing import StageTimer, stage
from .archive import MAX_WORKERS
from .recognizer import Recognizer
from .table import write_table

__all__ = ["bench_predict", "bench_video", "STAGES"]

STAGES = ("decode", "faces", "crop", "fbank", "model", "write")


def bench_video(path: str | os.PathLike, seconds: float = 20.0, fps: float = 25.0) -> tuple[str, str]:
    """The benchmark video (made once, kept): ``seconds`` of 1280×720 at ``fps`` with 44.1 kHz stereo audio, the
    astronaut's moving face (:func:`~mmadfer.data.synthetic.make_astronaut_video`), H.264 when PyAV's FFmpeg has
    an encoder for it, else MPEG-4 Part 2. Returns ``(path, codec name)``."""
    path = Path(path)
    if not path.is_file():
        make_astronaut_video(path, seconds=seconds, fps=fps, size=720, width=1280, seed=0)
    with av.open(str(path)) as c:
        return str(path), c.streams.video[0].codec_context.name


def _run(rec: Recognizer, video: str, out: Path, workers: int, duration: float, copies: int = 1) -> dict[str, Any]:
    timer = StageTimer()
    t0 = time.perf_counter()
    with timer if workers == 0 else contextlib.nullcontext():
        windows = 0
        for res in rec.predict_videos([video] * copies, workers=workers, durations=[duration] * copies):
            if res.error is not None:
                raise res.error
            with stage("write"):
                write_table(res.table, out / f"timeline-{res.index}.csv")
            windows += len(res.table)
    wall = time.perf_counter() - t0
    row: dict[str, Any] = {"mode": "sequential" if workers == 0 else f"pipelined, {workers} workers",
                           "videos": copies, "wall_s": round(wall, 2), "windows": windows,
                           "x_realtime": round(copies * duration / wall, 3), "s_per_window": round(wall / windows, 3)}
    if workers == 0:
        secs = {k: timer.seconds.get(k, 0.0) for k in STAGES}
        secs["other"] = max(0.0, wall - sum(secs.values()))
        row["stage_s"] = {k: round(v, 3) for k, v in secs.items()}
        row["stage_fraction"] = {k: round(v / wall, 3) for k, v in secs.items()}
        row["non_model_fraction"] = round(1 - secs["model"] / wall, 3)
    return row


def bench_predict(size: str = "tiny", device: str = "cpu", *, seconds: float = 20.0, workers: int | None = None,
                  video: str | os.PathLike | None = None, precision: str | None = "fp32",
                  batch_size: int = 8, copies: int = 1, compile: bool = False, detect_max_side: int | None = None,
                  detector: str = "mtcnn", log=print) -> list[dict[str, Any]]:
    """Run the ``sequential`` and ``pipelined`` predict benchmarks with a random-weight model of ``size``
    (``'tiny'`` or ``'reference'``) on ``device``. ``video``: an existing file, else the generated 720p video is
    made (and kept) in the system temp folder. The pipelined run predicts ``copies`` copies of it (an archive for
    many workers; one worker takes a whole video). ``detect_max_side``: detect faces on frames downscaled to this
    long side (:class:`~mmadfer.media.faces.FaceDetector` ``max_side``; default full resolution, as the reference).
    ``detector``: a name of :data:`~mmadfer.media.detectors.DETECTORS` (default the reference MTCNN; e.g.
    ``'mtcnn-fast'``). Returns one row per mode."""
    torch.manual_seed(0)
    cfg = ModelConfig.tiny(num_classes=7) if size == "tiny" else ModelConfig.reference(7)
    name = f"mtcnn, max_side={detect_max_side}" if detect_max_side else detector
    detector = FaceDetector(device, max_side=detect_max_side) if detect_max_side else detector
    rec = Recognizer(MMADFER(cfg).eval(), device=device, batch_size=batch_size, precision=precision,
                     compile=compile, prefetch=False, detector=detector)
    if video is None:
        video = Path(tempfile.gettempdir()) / f"mmadfer-bench-720p-{seconds:g}s.mp4"
    path, codec = bench_video(video, seconds=seconds)
    with av.open(path) as c:
        duration = c.duration / av.time_base
        vs = c.streams.video[0]
        shape = f"{vs.codec_context.width}x{vs.codec_context.height}"
        audio = bool(c.streams.audio)
    cpu = cpu_signature()
    env = {"model": size, "device": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
           "cpu": f"{cpu['model']} (cpuid {cpu['cpuid']})", "cpu_flags": " ".join(cpu["flags"]), "cores": cpu["cores"],
           "torch_threads": torch.get_num_threads(), "precision": rec.precision, "batch": batch_size,
           "video": f"{shape} {codec} {duration:.1f}s{' +audio' if audio else ''}",
           "window_s": rec.window_s, "detector_device": str(getattr(rec.detector, "device", None)),
           "detect_max_side": detect_max_side, "detector": name,
           "date": time.strftime("%Y-%m-%d")}
    log(f"# bench predict: {env}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="mmadfer-bench-") as tmp:
        n = workers if workers is not None else max(1, min(MAX_WORKERS, cpu["cores"] - 1, copies))
        for w in (0, n):
            row = {"kind": "predict", **env, **_run(rec, path, Path(tmp), w, duration, 1 if w == 0 else copies)}
            log(str({k: row[k] for k in row if k not in env}))
            rows.append(row)
    return rows
