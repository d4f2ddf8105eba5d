"""A face detector against the reference on a video: box agreement and detection time (``bench --what faces``).

:func:`compare_detectors` cuts a video into windows and samples their frames exactly as ``predict`` does (the
decode-time downscale, the window rule, the reference's frame sampling), runs both detectors on each window's
sampled frames, and scores the candidate with :mod:`mmadfer.evaluation.detection`: the IoU of every face the
reference found, the IoU of the crop box each window gets (what the model sees), windows that lost the face, the
longest run of them, and extra faces. :func:`bench_faces` does it on a generated real-codec video of a face that
moves and changes scale.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch

from ..config import PreprocessConfig
from ..data.synthetic import make_astronaut_video
from ..evaluation.detection import extra_faces, face_ious, iou_summary, longest_run, window_lost
from ..hardware import cpu_signature
from ..media.decode import open_video
from ..media.detectors import make_detector
from ..media.faces import box_iou, crop_boxes
from ..media.pipeline import sample_window
from ..media.windows import DEFAULT_MAX_SIDE, kept_windows

__all__ = ["compare_detectors", "bench_faces", "moving_face_video"]


def compare_detectors(video: str | os.PathLike, reference: Any, candidate: Any, *,
                      preprocess: PreprocessConfig | None = None, window_s: float | None = None,
                      stride_s: float | None = None, max_side: int | None = DEFAULT_MAX_SIDE) -> dict[str, Any]:
    """Detect faces in ``video``'s sampled window frames with both detectors (objects or names of
    :data:`~mmadfer.media.detectors.DETECTORS`) and compare them. Returns a dict: ``windows``, ``frames``,
    ``face_iou`` and ``crop_iou`` (:func:`~mmadfer.evaluation.detection.iou_summary`; crop boxes under
    ``preprocess.face_crop``), ``windows_lost``, ``longest_lost_run`` (in windows), ``extra_faces``, and the
    seconds each detector spent (``reference_s``, ``candidate_s``, ``speedup``)."""
    preprocess = preprocess or PreprocessConfig()
    reference, candidate = make_detector(reference, "cpu"), make_detector(candidate, "cpu")
    window_s = float(window_s or preprocess.window_s)
    stride_s = float(stride_s or window_s)
    ious, crops, lost, extra, frames = [], [], [], 0, 0
    seconds = {"reference": 0.0, "candidate": 0.0}
    with open_video(video, max_side=max_side) as reader:
        for clip in kept_windows(reader, window_s, stride_s):
            w = sample_window(clip, preprocess)
            found = {}
            for name, det in (("reference", reference), ("candidate", candidate)):
                t0 = time.perf_counter()
                found[name] = det.detect(w.frames)[0]
                seconds[name] += time.perf_counter() - t0
            ref, cand = found["reference"], found["candidate"]
            H, W = w.frames.shape[1:3]
            frames += len(w.frames)
            ious.append(face_ious(ref, cand))
            lost.append(window_lost(ref, cand))
            extra += extra_faces(ref, cand)
            (rb, r_none), (cb, c_none) = (crop_boxes([b[i] for i in w.inverse], W, H, preprocess.face_crop)
                                          for b in (ref, cand))
            if not r_none:  # the reference's crop, and the candidate's (0 when it found no face at all)
                crops += [0.0 if c_none else float(box_iou(r, c)[0, 0]) for r, c in zip(rb, cb)]
    return {"windows": len(lost), "frames": frames, "face_iou": iou_summary(np.concatenate(ious) if ious else []),
            "crop_iou": iou_summary(np.asarray(crops)), "windows_lost": int(sum(lost)),
            "longest_lost_run": longest_run(lost), "extra_faces": extra,
            "reference_s": round(seconds["reference"], 3), "candidate_s": round(seconds["candidate"], 3),
            "speedup": round(seconds["reference"] / max(seconds["candidate"], 1e-9), 2)}


def moving_face_video(path: str | os.PathLike, seconds: float = 20.0, height: int = 720, width: int = 1280,
                      fps: float = 25.0) -> str:
    """The footage of :func:`bench_faces` (made once, kept): the astronaut's face sliding across a wide frame
    (``travel=0.8``) and changing size by ±25% (``zoom=0.25``), H.264 with audio
    (:func:`~mmadfer.data.synthetic.make_astronaut_video`)."""
    path = Path(path)
    if not path.is_file():
        make_astronaut_video(path, seconds=seconds, fps=fps, size=height, width=width, zoom=0.25, travel=0.8, seed=1)
    return str(path)


def bench_faces(candidate: str = "mtcnn-fast", reference: str = "mtcnn", *, seconds: float = 20.0,
                stride_s: float | None = 1.0, video: str | os.PathLike | None = None, log=print) -> dict[str, Any]:
    """:func:`compare_detectors` on ``video`` (default: :func:`moving_face_video`, 720p, in the system temp
    folder) at ``stride_s`` (default 1 s: overlapping windows, so more windows to lose a face in), with the
    machine (:func:`~mmadfer.hardware.cpu_signature`) and date. One row for ``mmadfer bench``."""
    if video is None:
        video = moving_face_video(Path(tempfile.gettempdir()) / f"mmadfer-bench-moving-face-{seconds:g}s.mp4",
                                  seconds=seconds)
    with av.open(str(video)) as c:
        vs = c.streams.video[0]
        shape = f"{vs.codec_context.width}x{vs.codec_context.height} {vs.codec_context.name}"
        duration = c.duration / av.time_base
    cpu = cpu_signature()
    row = {"kind": "faces", "mode": f"{candidate} vs {reference}", "video": f"{shape} {duration:.1f}s",
           "stride_s": stride_s, "cpu": f"{cpu['model']} (cpuid {cpu['cpuid']})", "cpu_flags": " ".join(cpu["flags"]),
           "cores": cpu["cores"], "torch_threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d"),
           **compare_detectors(video, reference, candidate, stride_s=stride_s)}
    row.update(face_iou_median=row["face_iou"].get("median"), face_iou_p10=row["face_iou"].get("p10"),
               crop_iou_median=row["crop_iou"].get("median"))
    log(str(row))
    return row
