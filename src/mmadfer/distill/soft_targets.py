"""The teacher pass: every window of every video, cut as ``predict`` cuts it, scored once by the teacher and cached.

For each video one file ``CACHE/<key>.safetensors`` holds, per window: the student's inputs (the window prepared
with the *student's* profile by the same :class:`~mmadfer.predict.prepare.Preparer` that ``predict`` uses, so the
student trains on exactly what it will see), the teacher's logits (and, with ``features``, its pooled clip feature),
the window's start and end, face coverage and whether it had audio. Files are written atomically, one per finished
video, so a killed pass resumes at the first video without a file. Under torchrun each rank does its share of the
videos (:func:`mmadfer.predict.shard.my_share`, balanced by duration) into the same cache folder.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from ..config import PreprocessConfig
from ..errors import MediaError
from ..io import atomic_path, sha256_file
from ..media.decode import open_video
from ..media.windows import kept_windows
from ..predict.prepare import Preparer
from ..predict.recognizer import Recognizer
from ..predict.shard import my_share

__all__ = ["TeacherWindows", "cache_key", "teacher_pass", "load_windows"]


@dataclass
class TeacherWindows:
    """Cached windows of some videos: student inputs, teacher outputs and where each window is."""

    video: torch.Tensor  # [N, T, 3, S, S] uint8: the student's frames
    audio: torch.Tensor  # [N, 1, F, M] float32: the fbank
    logits: torch.Tensor  # [N, C] float32: the teacher's logits
    features: torch.Tensor | None  # [N, D] float32: the teacher's pooled clip feature (with --features)
    video_index: np.ndarray  # [N] int: which video (index into ``paths``)
    start_s: np.ndarray  # [N]
    end_s: np.ndarray  # [N]
    paths: list[str]

    def __len__(self) -> int:
        return len(self.logits)


def cache_key(video: str | os.PathLike, teacher_id: str, preprocess: PreprocessConfig, detector: str) -> str:
    """A file name for one video's cached windows: changes with the video's path, the teacher, the student's
    preprocessing and the face detector (its canonical name), so a cache never serves windows made by another
    teacher, for another student shape, or cropped by another detector."""
    text = json.dumps([os.path.abspath(video), teacher_id, preprocess.to_dict(), detector], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def teacher_id(path: str | os.PathLike) -> str:
    """The teacher checkpoint's identity for the cache: its SHA-256."""
    return sha256_file(path)


def _score(teacher: Recognizer, prepared: list[dict], features: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    video = torch.stack([torch.as_tensor(p["video"]) for p in prepared])  # [B, T, 3, S, S]
    audio = torch.stack([torch.as_tensor(p["audio"]) for p in prepared])  # [B, 1, F, M]
    if not features:
        return torch.as_tensor(teacher.runner(video, audio)).float(), None
    net = getattr(teacher.runner, "net", None)
    if net is None:
        raise ValueError(f"teacher features need the torch backend (the teacher runs on {teacher.backend})")
    with torch.no_grad():
        feats = net.forward_features(video.to(teacher.device).float().div(255), audio.to(teacher.device))
        return net.head(feats["clip"]).float().cpu(), feats["clip"].float().cpu()


def _one_video(teacher: Recognizer, student: Preparer, path: str, out: Path, features: bool,
               batch_size: int) -> int:
    """Score one video's windows; write its cache file. Returns the number of windows."""
    rows: dict[str, list] = {k: [] for k in ("video", "audio", "logits", "features", "start_s", "end_s",
                                             "face_coverage", "has_audio")}
    pending: list[tuple[dict, dict]] = []

    def flush():
        if not pending:
            return
        logits, feats = _score(teacher, [t for t, _ in pending], features)
        rows["logits"].append(logits)
        if feats is not None:
            rows["features"].append(feats)
        pending.clear()

    reader = open_video(path, max_side=teacher.max_side)
    try:
        window_s = teacher.window_s
        for clip in kept_windows(reader, window_s, window_s):
            # one track per window (the union box): the teacher and the student see the same face
            t_in, s_in = teacher.preparer.prepare(clip)[0], student.prepare(clip)[0]
            pending.append((t_in, s_in))
            rows["video"].append(torch.as_tensor(s_in["video"]))
            rows["audio"].append(torch.as_tensor(s_in["audio"]))
            rows["start_s"].append(clip.start_s)
            rows["end_s"].append(clip.end_s)
            rows["face_coverage"].append(float(s_in.get("face_coverage", float("nan"))))
            rows["has_audio"].append(bool(clip.has_audio))
            if len(pending) >= batch_size:
                flush()
        flush()
    finally:
        reader.close()
    n = len(rows["video"])
    tensors = {"start_s": torch.tensor(rows["start_s"], dtype=torch.float64),
               "end_s": torch.tensor(rows["end_s"], dtype=torch.float64),
               "face_coverage": torch.tensor(rows["face_coverage"], dtype=torch.float32),
               "has_audio": torch.tensor(rows["has_audio"], dtype=torch.bool)}
    if n:
        tensors.update(video=torch.stack(rows["video"]), audio=torch.stack(rows["audio"]).float(),
                       logits=torch.cat(rows["logits"]))
        if rows["features"]:
            tensors["features"] = torch.cat(rows["features"])
    with atomic_path(out, suffix=".safetensors") as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata={"video": path})
    return n


def teacher_pass(teacher: Recognizer, teacher_path: str | os.PathLike, videos: Sequence[str | os.PathLike],
                 student_preprocess: PreprocessConfig, cache_dir: str | os.PathLike, *, features: bool = False,
                 rank: int = 0, world_size: int = 1, durations: Sequence[float] | None = None,
                 progress: bool = True) -> dict[str, list[str]]:
    """Cache the teacher's outputs and the student's inputs for this rank's share of ``videos``.

    Videos with a cache file are skipped (resume). A video that cannot be decoded is reported and the others go on.
    Returns ``{'done': [...], 'skipped': [...], 'failed': ['path: reason', ...]}`` for this rank.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tid = teacher_id(teacher_path)
    student = Preparer(student_preprocess, teacher.detector, multi_face=False)
    videos = [os.fspath(v) for v in videos]
    mine = my_share(durations or [1.0] * len(videos), rank, world_size) if world_size > 1 else range(len(videos))
    result: dict[str, list[str]] = {"done": [], "skipped": [], "failed": []}
    for k in tqdm(list(mine), desc="teacher", unit="video", disable=not progress):
        path = videos[k]
        out = cache_dir / f"{cache_key(path, tid, student_preprocess, teacher.detector_spec)}.safetensors"
        if out.is_file():
            result["skipped"].append(path)
            continue
        try:
            _one_video(teacher, student, path, out, features, teacher.batch_size)
            result["done"].append(path)
        except MediaError as e:
            result["failed"].append(f"{path}: {e}")
    return result


def load_windows(videos: Sequence[str | os.PathLike], teacher_path: str | os.PathLike,
                 student_preprocess: PreprocessConfig, cache_dir: str | os.PathLike, detector: str) -> TeacherWindows:
    """The cached windows of ``videos`` (those with a cache file and at least one window), concatenated;
    ``detector``: the canonical name of the detector the teacher pass cropped with (``Recognizer.detector_spec``)."""
    tid = teacher_id(teacher_path)
    parts: dict[str, list] = {k: [] for k in ("video", "audio", "logits", "features", "start_s", "end_s", "index")}
    paths = [os.fspath(v) for v in videos]
    for i, path in enumerate(paths):
        f = Path(cache_dir) / f"{cache_key(path, tid, student_preprocess, detector)}.safetensors"
        if not f.is_file():
            continue
        with safe_open(str(f), framework="pt") as st:
            if "logits" not in st.keys():
                continue  # a video without a kept window
            for k in ("video", "audio", "logits", "start_s", "end_s"):
                parts[k].append(st.get_tensor(k))
            if "features" in st.keys():
                parts["features"].append(st.get_tensor("features"))
            parts["index"].append(np.full(len(parts["logits"][-1]), i))
    if not parts["logits"]:
        raise ValueError("no cached windows for these videos")
    return TeacherWindows(
        video=torch.cat(parts["video"]), audio=torch.cat(parts["audio"]), logits=torch.cat(parts["logits"]),
        features=torch.cat(parts["features"]) if len(parts["features"]) == len(parts["logits"]) else None,
        video_index=np.concatenate(parts["index"]), start_s=torch.cat(parts["start_s"]).numpy(),
        end_s=torch.cat(parts["end_s"]).numpy(), paths=paths)
