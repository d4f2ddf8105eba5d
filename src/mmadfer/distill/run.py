"""Distillation end to end: teacher pass (cached), student training on softened teacher outputs, the report.

::

    mmadfer distill --teacher DFEW_set_1_best.pth --videos footage/ --student vit-tiny --out student.safetensors
    torchrun --standalone --nproc_per_node 4 -m mmadfer.cli distill --teacher ... # the teacher pass on 4 processes

Videos are split into train and held-out **by video** (a seeded permutation of the sorted paths), so no held-out
window shares a video with a training window. The student learns ``KL(softmax(t / T) ‖ softmax(s / T)) · T²``
(Hinton et al.'s distillation loss at temperature ``T``), optionally plus a feature-matching term (MSE between a
linear map of the student's clip feature and the teacher's), with optional augmentation (per-clip horizontal flip
and brightness). Training is resumable: a state after every epoch (:mod:`mmadfer.train.state`), the next run
continues from the last one. The student is an ordinary checkpoint (:func:`mmadfer.save_checkpoint`) and carries
the teacher's classes, audio window and preprocessing profile.
"""
from __future__ import annotations

import csv
import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..checkpoints import save_checkpoint
from ..config import ModelConfig
from ..evaluation.calibration import probabilities
from ..export.verify import random_inputs
from ..io import atomic_write, write_csv
from ..metrics import classification_metrics, write_json
from ..model.mmadfer import MMADFER
from ..predict.recognizer import Recognizer
from ..provenance import trained_on
from ..runtime.runner import as_runner
from ..train.state import (STATE_FORMAT, capture_rng, latest_state, load_state, prune_states, restore_rng, save_state,
                           state_path)
from .agreement import agreement_report
from .soft_targets import TeacherWindows, load_windows

__all__ = ["DistillSettings", "student_config", "split_videos", "train_student", "distill", "read_labels"]


@dataclass
class DistillSettings:
    """What ``mmadfer distill`` does besides its inputs. Defaults suit a few hours of footage on a CPU."""

    student: str = "vit-tiny"  # a preset of mmadfer.config.STUDENTS
    student_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)  # ModelConfig fields of the student
    epochs: int = 30
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.01
    temperature: float = 2.0  # distillation temperature T
    feature_weight: float = 0.0  # > 0: feature matching against the teacher's pooled clip feature
    augment: bool = False
    heldout: float = 0.2  # fraction of the videos held out (by video) for the report
    seed: int = 0


def student_config(preset: str, teacher: ModelConfig, **overrides: Any) -> ModelConfig:
    """The student preset (with ``overrides``) fitted to the teacher: its classes, audio window and preprocessing
    profile; the student's own frame count and image size."""
    base = ModelConfig.student(preset, num_classes=teacher.num_classes, **overrides)
    pre = dataclasses.replace(teacher.preprocess, img_size=base.img_size, num_frames=base.num_frames)
    return base.replace(class_names=teacher.labels, audio_frames=teacher.audio_frames,
                        audio_mel_bins=teacher.audio_mel_bins, preprocess=pre)


def split_videos(paths: Sequence[str], heldout: float, seed: int = 0) -> tuple[list[str], list[str]]:
    """``(train, held_out)`` by video: a seeded permutation of the sorted paths; at least one video each side when
    there are two or more."""
    paths = sorted(os.fspath(p) for p in paths)
    if len(paths) < 2 or heldout <= 0:
        return paths, []
    n_held = min(len(paths) - 1, max(1, round(heldout * len(paths))))
    order = np.random.default_rng(seed).permutation(len(paths))
    held = {paths[i] for i in order[:n_held]}
    return [p for p in paths if p not in held], [p for p in paths if p in held]


def _augment(video: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Per clip: a horizontal flip (p = 0.5) and a brightness factor in [0.7, 1.3], the same for all its frames."""
    # video: [B, T, 3, S, S] uint8 -> float in [0, 1]
    v = video.float().div(255)
    flip = torch.rand(v.shape[0], generator=g) < 0.5
    v[flip] = v[flip].flip(-1)
    gain = 0.7 + 0.6 * torch.rand(v.shape[0], 1, 1, 1, 1, generator=g)
    return (v * gain).clamp_(0, 1)


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float) -> torch.Tensor:
    """``KL(softmax(t / T) ‖ softmax(s / T)) · T²``, averaged over the batch."""
    # student_logits, teacher_logits: [B, C]
    return F.kl_div(F.log_softmax(student_logits / T, -1), F.log_softmax(teacher_logits / T, -1),
                    reduction="batchmean", log_target=True) * T * T


def train_student(model: MMADFER, data: TeacherWindows, rows: np.ndarray, s: DistillSettings,
                  state_dir: str | os.PathLike, *, progress: bool = True,
                  on_epoch: Callable[[int, float], None] | None = None) -> list[dict[str, float]]:
    """Train ``model`` on the windows ``rows`` of ``data``; resume from the latest state in ``state_dir``.
    Returns the per-epoch history (``epoch``, ``loss``)."""
    model.set_trainable("all").train()
    regressor = None
    if s.feature_weight > 0:
        if data.features is None:
            raise ValueError("feature matching needs the teacher's features in the cache (--features)")
        regressor = nn.Linear(model.cfg.temporal_dim, data.features.shape[1])
    params = list(model.parameters()) + (list(regressor.parameters()) if regressor is not None else [])
    opt = torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=s.epochs)
    start, history = 0, []
    last = latest_state(state_dir)
    if last is not None:
        st = load_state(last)
        model.load_state_dict(st["model"])
        if regressor is not None and "regressor" in st:
            regressor.load_state_dict(st["regressor"])
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        start, history = int(st["epoch"]), list(st["history"])
        restore_rng(st["rng"])
    rows = np.asarray(rows)
    for epoch in range(start, s.epochs):
        g = torch.Generator().manual_seed(s.seed * 100_003 + epoch)  # the epoch's order and augmentation
        order = rows[torch.randperm(len(rows), generator=g).numpy()]
        total, n = 0.0, 0
        bar = tqdm(range(0, len(order), s.batch_size), desc=f"student epoch {epoch + 1}/{s.epochs}",
                   disable=not progress, leave=False)
        for b in bar:
            idx = torch.as_tensor(order[b:b + s.batch_size])
            video = _augment(data.video[idx], g) if s.augment else data.video[idx]
            feats = model.forward_features(video, data.audio[idx])
            loss = distillation_loss(model.head(feats["clip"]), data.logits[idx], s.temperature)
            if regressor is not None:
                loss = loss + s.feature_weight * F.mse_loss(regressor(feats["clip"]), data.features[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, n = total + loss.item() * len(idx), n + len(idx)
        sched.step()
        history.append({"epoch": epoch + 1, "loss": total / max(n, 1)})
        state = {"format": STATE_FORMAT, "epoch": epoch + 1, "step": 0, "global_step": (epoch + 1) * len(bar),
                 "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                 "rng": capture_rng(), "history": history, "epoch_stats": {}, "config": dataclasses.asdict(s),
                 "world_size": 1}
        if regressor is not None:
            state["regressor"] = regressor.state_dict()
        save_state(state_path(state_dir, epoch + 1, 0), state)
        prune_states(state_dir, keep=1)
        if on_epoch is not None:
            on_epoch(epoch + 1, history[-1]["loss"])
    return history


def read_labels(path: str | os.PathLike, paths: Sequence[str], class_names: Sequence[str]) -> dict[str, int]:
    """A ``video,label`` CSV (a header; class names or indices): label index per video of ``paths`` it names
    (matched by full path, then by file name)."""
    by_name = {Path(p).name: p for p in paths}
    out: dict[str, int] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            video, label = (row.get("video") or "").strip(), (row.get("label") or "").strip()
            target = video if video in paths else by_name.get(Path(video).name)
            if target is None or not label:
                continue
            if label in class_names:
                out[target] = list(class_names).index(label)
            elif label.isdigit() and int(label) < len(class_names):
                out[target] = int(label)
            else:
                raise ValueError(f"{path}: label {label!r} of {video} is not one of {list(class_names)}")
    return out


def seconds_per_clip(runner, cfg: ModelConfig, repeats: int = 3) -> float:
    """Median wall time of one clip through ``runner`` (after one warm-up run), on random inputs of ``cfg``."""
    video, audio = random_inputs(cfg, 1)
    runner(video, audio)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        runner(video, audio)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _logits(model: MMADFER, data: TeacherWindows, rows: np.ndarray, batch_size: int = 32) -> torch.Tensor:
    model.eval()
    out = []
    with torch.no_grad():
        for b in range(0, len(rows), batch_size):
            idx = torch.as_tensor(rows[b:b + batch_size])
            out.append(model(data.video[idx], data.audio[idx]))  # [b, C]
    return torch.cat(out) if out else data.logits.new_zeros(0, data.logits.shape[1])  # no rows: [0, C]


def report(teacher: Recognizer, student: MMADFER, data: TeacherWindows, rows: np.ndarray,
           labels: dict[str, int] | None, settings: DistillSettings, out_dir: Path,
           extra: dict[str, Any]) -> dict[str, Any]:
    """Held-out agreement, speed and (with labels) accuracy of both; written as ``report.json``, ``report.txt`` and
    ``heldout.csv`` (one row per held-out window: both top classes and probabilities)."""
    names = list(teacher.labels)
    tp = probabilities(data.logits[rows], teacher.cfg.temperature).numpy()
    sp = probabilities(_logits(student, data, rows), student.cfg.temperature).numpy()
    groups = data.video_index[rows]
    rep: dict[str, Any] = {"heldout": agreement_report(tp, sp, groups, names) if len(rows) else None}
    rep["speed"] = {
        "teacher_s_per_clip": seconds_per_clip(teacher.runner, teacher.cfg),
        "teacher_backend": teacher.backend,
        "student_s_per_clip": seconds_per_clip(as_runner(student, device="cpu", precision="fp32"), student.cfg),
        "student_backend": "torch fp32",
        "what": "one clip (batch 1), model only, median of 3 after a warm-up, on this machine",
        "cpu_threads": torch.get_num_threads(),
    }
    rep["speed"]["speedup"] = rep["speed"]["teacher_s_per_clip"] / rep["speed"]["student_s_per_clip"]
    if labels:
        known = np.array([data.paths[g] in labels for g in groups], dtype=bool)
        if known.any():
            y = np.array([labels[data.paths[g]] for g in groups[known]])
            rep["labelled"] = {"windows": int(known.sum()), "what": "held-out windows of the videos --labels names"}
            for who, p in (("teacher", tp), ("student", sp)):
                m = classification_metrics(y, p[known].argmax(1), names)
                rep["labelled"][who] = {"uar": m["uar"], "war": m["war"]}
    rep.update(settings=dataclasses.asdict(settings), **extra)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "report.json", rep)
    with atomic_write(out_dir / "report.txt", "w", encoding="utf-8") as f:
        f.write(report_text(rep))
    cols = ["video", "start_s", "end_s", "teacher_label", "student_label"] + \
        [f"teacher_p_{c}" for c in names] + [f"student_p_{c}" for c in names]
    table = [dict(video=data.paths[g], start_s=f"{data.start_s[r]:.6f}", end_s=f"{data.end_s[r]:.6f}",
                  teacher_label=names[int(t.argmax())], student_label=names[int(s.argmax())],
                  **{f"teacher_p_{c}": f"{v:.6f}" for c, v in zip(names, t)},
                  **{f"student_p_{c}": f"{v:.6f}" for c, v in zip(names, s)})
             for r, g, t, s in zip(rows, groups, tp, sp)]
    write_csv(out_dir / "heldout.csv", cols, table)
    return rep


def report_text(rep: dict[str, Any]) -> str:
    """The report as a few lines of text."""
    lines = [f"mmadfer distill: student {rep['settings']['student']} from {rep.get('teacher')}"]
    h = rep.get("heldout")
    if h:
        lines += [f"held-out: {h['windows']} windows of {h['videos']} videos (never trained on)",
                  f"  top-1 agreement {100 * h['top1_agreement']:.1f}%   Cohen's kappa {h['kappa']:.3f}   "
                  f"mean KL(teacher||student) {h['mean_kl']:.4f} nats",
                  f"  smoothed timelines ({h['smoothing_windows']}-window moving average): agreement "
                  f"{100 * h['smoothed_agreement']:.1f}%",
                  "  per class (windows the teacher gave it: student agrees)"]
        lines += [f"    {c['class']}: {c['teacher_windows']}: "
                  + ("-" if c["agreement"] is None else f"{100 * c['agreement']:.1f}%") for c in h["per_class"]]
    else:
        lines.append("held-out: none (one video, or --heldout 0): no agreement measured")
    sp = rep["speed"]
    lines.append(f"speed, {sp['what']}: teacher ({sp['teacher_backend']}) {sp['teacher_s_per_clip']:.3f} s, student "
                 f"({sp['student_backend']}) {sp['student_s_per_clip']:.3f} s: {sp['speedup']:.1f}x")
    if "labelled" in rep:
        lab = rep["labelled"]
        lines.append(f"with labels ({lab['windows']} held-out windows): teacher UAR {100 * lab['teacher']['uar']:.1f} "
                     f"WAR {100 * lab['teacher']['war']:.1f}; student UAR {100 * lab['student']['uar']:.1f} "
                     f"WAR {100 * lab['student']['war']:.1f}")
    lines.append("Licence: a student trained on a checkpoint's outputs carries that checkpoint's terms.")
    return "\n".join(lines) + "\n"


def distill(teacher: Recognizer, teacher_path: str | os.PathLike, videos: Sequence[str], out: str | os.PathLike,
            work_dir: str | os.PathLike, settings: DistillSettings, *, labels: str | os.PathLike | None = None,
            progress: bool = True) -> dict[str, Any]:
    """Train and save the student from an already-cached teacher pass (:func:`teacher_pass`); write the report.
    Returns the report dict."""
    work_dir = Path(work_dir)
    cfg = student_config(settings.student, teacher.cfg, **settings.student_overrides)
    train_v, held_v = split_videos(videos, settings.heldout, settings.seed)
    data = load_windows(train_v + held_v, teacher_path, cfg.preprocess, work_dir / "cache", teacher.detector_spec)
    index = {p: i for i, p in enumerate(data.paths)}
    is_held = np.isin(data.video_index, [index[p] for p in held_v])
    train_rows, held_rows = np.flatnonzero(~is_held), np.flatnonzero(is_held)
    if not len(train_rows):
        raise ValueError("no training windows: every video is held out or has no window")
    torch.manual_seed(settings.seed)
    model = MMADFER(cfg)
    history = train_student(model, data, train_rows, settings, work_dir / "state", progress=progress)
    model.eval()
    parent = teacher.provenance  # a student of a synthetic or demo teacher is one too
    record = trained_on(f"distilled from {Path(teacher_path).name} on {len(train_v)} unlabelled videos", cfg.labels,
                        synthetic=bool(parent.get("synthetic")), demo=bool(parent.get("demo")),
                        teacher_dataset=parent.get("dataset"), distilled_from=os.fspath(teacher_path))
    save_checkpoint(model, out, include_frozen=True, trained_on=record,
                    extra={"distilled_from": os.fspath(teacher_path), "student": settings.student,
                           "note": "trained on the teacher's outputs: it carries the teacher checkpoint's terms"})
    label_map = read_labels(labels, data.paths, teacher.labels) if labels else None
    return report(teacher, model, data, held_rows, label_map, settings, work_dir,
                  {"teacher": os.fspath(teacher_path), "student_checkpoint": os.fspath(out),
                   "train_videos": len(train_v), "heldout_videos": held_v, "train_windows": int(len(train_rows)),
                   "history": history})
