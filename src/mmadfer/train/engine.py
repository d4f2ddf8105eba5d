"""The training loop behind ``mmadfer train``, ``cv``, ``ablate`` and ``learning-curve``.

``fit(cfg)`` runs the paper's recipe by default (AdamW 1e-4, weight decay 1e-2, per-epoch cosine over 25 epochs,
batch 8, seed 1, cross-entropy, evaluation of the final epoch) on one device or under torchrun. A run folder holds::

    config.yaml            the resolved configuration
    checkpoints/state-*.pt resumable training states (+ .sha256), every epoch and optionally every N steps
    log.csv  curves.png  tensorboard/
    eval/                  the final evaluation: metrics.json, per_class.csv, confusion*.csv/png, predictions.csv
    final.safetensors      the final-epoch model (``mmadfer.load_checkpoint``)
    metrics.json           the final UAR/WAR and the rest of the evaluation, with training totals

``fit(cfg, resume='auto')`` continues from the newest state bit for bit (or returns the stored result of a
finished run), which is what makes ``cv`` and ``ablate`` resumable. The evaluation loop lives in
:mod:`mmadfer.evaluation.scoring` (``evaluate_model``, ``predict_dataset`` are re-exported here for old imports).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import accel
from ..checkpoint_checks import check_class_names
from ..checkpoints import load_encoder_weights, load_model, save_checkpoint
from ..data.datasets import build_dataset
from ..data.synthetic import is_synthetic_dataset, write_synthetic_dataset
from ..errors import CheckpointError, MmadferError
from ..evaluation.files import write_json
from ..evaluation.scoring import evaluate_model, predict_dataset, predict_table, prediction_table
from ..model.mmadfer import MMADFER
from ..provenance import trained_on
from .. import distributed as D
from .config import TrainConfig
from .init import from_base
from ..data.loader import build_loader, num_batches
from .logger import RunLogger, StepTimer
from .preflight import require_clips
from .state import STATE_FORMAT, capture_rng, latest_state, load_state, prune_states, restore_rng, save_state, \
    state_path

__all__ = ["fit", "evaluate_model", "predict_dataset", "predict_table", "prediction_table", "build_datasets", "build_model", "build_optimizer",
           "load_init", "validation_dataset",
           "completed_run", "seed_everything", "FINAL_CHECKPOINT"]

logger = logging.getLogger(__name__)

FINAL_CHECKPOINT = "final.safetensors"
_STATES_DIR = "checkpoints"


# ---------------------------------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and every GPU)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_datasets(cfg: TrainConfig, preprocess=None):
    """The train and test datasets of ``cfg.data`` (test is None for a CSV run without ``test_csv``)."""
    d = cfg.data
    if not d.root:
        raise ValueError("no training data: set data.root (mmadfer train --data ROOT)")
    pre = preprocess or cfg.model.model_config(("_",)).preprocess
    common = dict(preprocess=pre, on_bad_sample=d.on_bad_sample, **d.options)
    kind = "folder" if d.dataset == "synthetic" else d.dataset
    if kind == "csv":
        train = build_dataset("csv", d.root, split="train", **common)
        test = build_dataset("csv", d.test_csv, split="test", class_names=train.class_names, **common) \
            if d.test_csv else None
    else:
        train = build_dataset(kind, d.root, fold=d.fold, split="train", **common)
        test = build_dataset(kind, d.root, fold=d.fold, split="test", **common)
    if len(train) == 0:
        raise ValueError(f"the training split of {d.root} (fold {d.fold}) is empty")
    return train, test


def load_init(cfg: TrainConfig) -> MMADFER | None:
    """The checkpoint of ``model.init`` (``train --init``), loaded on the CPU, or None."""
    if not cfg.model.init:
        return None
    kw = {k: v for k, v in (("vision", cfg.model.vision_weights), ("audio", cfg.model.audio_weights)) if v}
    return load_model(cfg.model.init, **kw)


def validation_dataset(cfg: TrainConfig, preprocess=None):
    """The validation split (``annotations/set_<fold>_val.txt`` of a folder dataset, as ``prepare --labels``
    writes from 3 folds on), or None where there is none."""
    d = cfg.data
    if d.dataset != "folder" or not d.root:
        return None
    ann = Path(d.options.get("annotation_dir") or Path(d.root) / "annotations")
    if not (ann / (f"set_{d.fold}_val.txt" if d.fold is not None else "val.txt")).is_file():
        return None
    pre = preprocess or cfg.model.model_config(("_",)).preprocess
    return build_dataset("folder", d.root, fold=d.fold, split="val", train=False, preprocess=pre,
                         on_bad_sample=d.on_bad_sample, **d.options)


def build_model(cfg: TrainConfig, class_names, *, announce: bool = True, init: MMADFER | None = None) -> MMADFER:
    """The model of ``cfg.model`` for ``class_names``: seeded initialisation, the trainable policy, and the encoder
    weights (with a loud warning when a needed encoder has none). With ``model.init`` it starts from that whole
    checkpoint instead (``init``: the checkpoint already loaded), its classifier rebuilt for ``class_names``
    (:mod:`mmadfer.train.init`; the change is printed and kept as ``model.head_change``)."""
    check_class_names(class_names, cfg.data.root)  # refused now, not when the trained checkpoint is loaded
    if cfg.model.init:
        model, change = from_base(init if init is not None else load_init(cfg), class_names, seed=cfg.train.seed)
        model.set_trainable(cfg.model.trainable)
        model.head_change = change
        if announce:
            print(f"starting from {cfg.model.init}: {change.line()}", file=sys.stderr, flush=True)
        return model
    model_cfg = cfg.model.model_config(class_names)
    torch.manual_seed(cfg.train.seed)
    model = MMADFER(model_cfg)
    model.set_trainable(cfg.model.trainable)
    given = {"vision": cfg.model.vision_weights if model.vision is not None else None,
             "audio": cfg.model.audio_weights if model.audio is not None else None}
    if any(given.values()):
        load_encoder_weights(model, **given)
    missing = [name for name in ("vision", "audio") if getattr(model, name) is not None and not given[name]]
    if missing and announce:
        _warn_random_encoders(missing)
    return model


def _warn_random_encoders(missing: list[str]) -> None:
    names = {"vision": "vision (MAE-Face: --vision-weights)", "audio": "audio (AudioMAE: --audio-weights)"}
    lines = ["WARNING: no pretrained weights for the " + " and ".join(names[m] for m in missing) + " encoder.",
             "This run starts from RANDOM encoders. Its results mean nothing for real data: MMA-DFER adapts",
             "pretrained encoders and trains only prompts, fusion and the temporal head. Pass the public",
             "pretraining checkpoints to reproduce the paper or to train a usable model."]
    bar = "!" * (max(map(len, lines)) + 4)
    print("\n".join([bar] + [f"! {ln}" for ln in lines] + [bar]), file=sys.stderr, flush=True)
    logger.warning("training from random encoders (%s)", ", ".join(missing))


def build_optimizer(model: MMADFER, cfg: TrainConfig, device: torch.device):
    """AdamW over the trainable parameters (fused on CUDA, foreach elsewhere) and the per-epoch scheduler."""
    o = cfg.optim
    params = model.trainable_parameters()
    if not params:
        raise ValueError(f"model.trainable={cfg.model.trainable!r} leaves no parameter to train")
    if o.decay_1d:
        groups = [{"params": list(params.values())}]
    else:
        skip = model.no_weight_decay()
        groups = [{"params": [p for n, p in params.items() if n not in skip]},
                  {"params": [p for n, p in params.items() if n in skip], "weight_decay": 0.0}]
        groups = [g for g in groups if g["params"]]
    impl = {"fused": True} if device.type == "cuda" else {"foreach": True}
    optimizer = torch.optim.AdamW(groups, lr=o.lr, betas=o.betas, eps=o.eps, weight_decay=o.weight_decay, **impl)
    if o.scheduler == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.train.epochs, eta_min=o.min_lr)
    else:
        scheduler = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    return optimizer, scheduler


def _precision(cfg: TrainConfig, device: torch.device) -> str:
    p = cfg.train.precision
    return accel.default_precision(device, purpose="train") if p == "auto" else p


def _configure_backends(device: torch.device, precision: str) -> None:
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = precision != "fp32"  # fp32 on request means the reference arithmetic
        torch.backends.cudnn.allow_tf32 = precision != "fp32"
        torch.backends.cudnn.benchmark = True


def _frozen_fingerprint(model: nn.Module) -> torch.Tensor:
    """Per-tensor sums and sums of squares of the frozen weights ([2, n] float64), to check on resume that the run
    continues with the same encoders."""
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    rows = [(t.double().sum(), t.double().square().sum()) for n, t in model.state_dict().items()
            if n not in trainable and t.is_floating_point()]
    if not rows:
        return torch.zeros(2, 0, dtype=torch.float64)
    return torch.stack([torch.stack(r) for r in rows], dim=1).cpu()


def _loader_options(cfg: TrainConfig, device: torch.device) -> dict[str, Any]:
    d = cfg.data
    pin = d.pin_memory if d.pin_memory is not None else device.type == "cuda"
    return dict(num_workers=d.num_workers, pin_memory=pin, persistent_workers=d.persistent_workers,
                prefetch_factor=d.prefetch_factor)


def _to_device(batch: dict[str, torch.Tensor], model: MMADFER, device: torch.device):
    """Inputs the model uses (uint8 video stays uint8 until it is on the device) and the labels."""
    video = batch["video"].to(device, non_blocking=True) if model.use_video else None  # [B, T, 3, S, S] uint8
    audio = batch["audio"].to(device, non_blocking=True) if model.use_audio else None  # [B, 1, 512, 128]
    return video, audio, batch["label"].to(device, non_blocking=True)  # label: [B]


def _pad_rows(x: torch.Tensor | None, rows: int) -> torch.Tensor | None:
    """``x`` with its first row repeated up to ``rows`` rows.

    A compiled model is specialised to one batch size; a short last batch would trigger a second, slow compilation.
    Padding it instead, and keeping only the real rows' logits, leaves the loss and the gradients exactly those of the short batch: clips never interact inside the model.
    """
    if x is None or len(x) >= rows:
        return x
    return torch.cat([x, x[:1].expand(rows - len(x), *x.shape[1:])])  # [rows, ...]


# ---------------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------------
def completed_run(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The result of a finished run in ``run_dir`` (its final checkpoint and metrics.json exist), else None."""
    run_dir = Path(run_dir)
    ckpt, metrics = run_dir / FINAL_CHECKPOINT, run_dir / "metrics.json"
    if not (ckpt.is_file() and metrics.is_file()):
        return None
    return {"run_dir": str(run_dir), "checkpoint": str(ckpt), "metrics": json.loads(metrics.read_text())}


def _default_run_dir(cfg: TrainConfig) -> Path:
    fold = f"-fold{cfg.data.fold}" if cfg.data.fold is not None and cfg.data.dataset != "csv" else ""
    return Path("runs") / f"{cfg.data.dataset}{fold}-{time.strftime('%Y%m%d-%H%M%S')}"


def _resolve_resume(run_dir: Path, resume) -> Path | None:
    """The state file to resume from: a given path, the newest in ``run_dir`` (``True``/``'auto'``), or None."""
    if resume in (None, False):
        if latest_state(run_dir / _STATES_DIR) is not None or completed_run(run_dir):
            raise FileExistsError(f"{run_dir} already holds a run; pass --resume to continue it (or a new --out)")
        return None
    if resume is True or resume == "auto":
        return latest_state(run_dir / _STATES_DIR)
    path = Path(resume)
    if not path.is_file():
        raise CheckpointError(path, "no such training state")
    return path


class _Trainer:
    """One training run; :func:`fit` is its public face."""

    def __init__(self, cfg: TrainConfig, info: D.DistInfo, run_dir: Path, state_file: Path | None):
        self.cfg, self.info, self.run_dir = cfg, info, run_dir
        self.device = info.device
        self.precision = _precision(cfg, self.device)
        if self.precision not in accel.PRECISIONS:
            raise ValueError(f"train.precision must be 'auto' or one of {accel.PRECISIONS}, got {self.precision!r}")
        _configure_backends(self.device, self.precision)
        seed_everything(cfg.train.seed)
        init = load_init(cfg)
        preprocess = init.cfg.preprocess if init is not None else None
        self.train_ds, self.test_ds = build_datasets(cfg, preprocess)
        self.val_ds = validation_dataset(cfg, preprocess) if cfg.train.early_stopping else None
        if cfg.train.early_stopping and self.val_ds is None and info.is_main:
            print("train.early_stopping is set but there is no validation split (annotations/set_<k>_val.txt): "
                  "training all epochs", file=sys.stderr, flush=True)
        self._check_clips()
        self.class_names = tuple(self.train_ds.class_names)
        self.model = build_model(cfg, self.class_names, announce=info.is_main, init=init)
        del init
        self.best: dict[str, Any] | None = None  # early stopping: the best validation epoch and its weights
        self.stopped = False
        self.fingerprint = _frozen_fingerprint(self.model)
        self.model.to(self.device)
        self.optimizer, self.scheduler = build_optimizer(self.model, cfg, self.device)
        self.epoch, self.step, self.global_step = 0, 0, 0
        self.history: list[dict[str, Any]] = []
        self.epoch_stats = {"loss_sum": 0.0, "correct": 0, "count": 0, "bad_batches": 0}
        if state_file is not None:
            self._resume(state_file)
        else:
            seed_everything(cfg.train.seed + info.rank)  # ranks draw different drop-path masks
        bs = cfg.train.batch_size
        self._batches = None  # one loader iterator for the rest of the run, made at the first epoch
        self.loader, self.sampler = build_loader(self.train_ds, batch_size=bs, seed=cfg.train.seed, shuffle=True,
                                                 rank=info.rank, world_size=info.world_size,
                                                 epochs=cfg.train.epochs, **_loader_options(cfg, self.device),
                                                 balance_labels=self.train_ds.labels if cfg.train.balanced else None)
        self.steps_per_epoch = num_batches(self.sampler.num_samples, bs)
        compile = cfg.train.compile
        self.compiled = compile in (True, "regional") or (compile == "auto" and self.device.type == "cuda")
        # regional compilation happens in place, inside DDP's wrapper; the whole-model kind wraps DDP itself
        net = accel.optimize_model(self.model, device=self.device, precision=self.precision,
                                   compile="regional" if compile == "regional" else False)
        if info.distributed:
            net = nn.parallel.DistributedDataParallel(
                net, device_ids=[self.device.index] if self.device.type == "cuda" else None, broadcast_buffers=False)
        self.net = torch.compile(net) if self.compiled and compile != "regional" else net
        self.log = RunLogger(run_dir, enabled=info.is_main, tensorboard=cfg.train.tensorboard, history=self.history,
                             purge_step=self.global_step if state_file is not None else None)

    def _check_clips(self) -> None:
        """Stop before training when too few clips of either split could load (:mod:`mmadfer.train.preflight`);
        say how many are skipped, and why, when some are."""
        for what, ds in (("training", self.train_ds), ("test", self.test_ds)):
            if ds is None:
                continue
            check = require_clips(ds, what, getattr(ds, "annotation_file", None) or self.cfg.data.root)
            if check.skipped and self.info.is_main:
                print(f"skipping {check.total - check.usable} of {check.total} {what} clips: {check.summary()}",
                      file=sys.stderr, flush=True)

    # -- state -------------------------------------------------------------------------------------------------------
    def _resume(self, path: Path) -> None:
        state = load_state(path)
        saved = TrainConfig.from_dict(state["config"])
        diff = self.cfg.differences(saved)
        if diff:
            raise ValueError(f"cannot resume from {path}: the config differs in {', '.join(diff)} (only runtime "
                             "settings such as data.num_workers may change); start a new run instead")
        own = self.model.trainable_parameters()
        weights = state["model"]
        bad = sorted(set(own) ^ set(weights)) + [n for n in own if n in weights and own[n].shape != weights[n].shape]
        if bad:
            raise CheckpointError(path, f"trainable weights do not fit the model: {', '.join(bad[:8])}")
        fp = state.get("frozen_fingerprint")
        if fp is not None and (fp.shape != self.fingerprint.shape
                               or not torch.allclose(fp, self.fingerprint, rtol=1e-6, atol=1e-9)):
            raise CheckpointError(path, "the frozen encoder weights differ from the ones this run started with "
                                        "(other encoder checkpoint files?)")
        if state["world_size"] != self.info.world_size and state["step"] > 0:
            raise CheckpointError(path, f"saved mid-epoch with {state['world_size']} process(es), resumed with "
                                        f"{self.info.world_size}: resume from an epoch-end state instead")
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        with torch.no_grad():
            for n, p in own.items():
                p.copy_(weights[n])
        self.epoch, self.step, self.global_step = state["epoch"], state["step"], state["global_step"]
        self.history = list(state["history"])
        self.epoch_stats = dict(state["epoch_stats"])
        self.best, self.stopped = state.get("best"), bool(state.get("stopped", False))
        rngs = state["rng"]
        if len(rngs) != self.info.world_size:
            logger.warning("state saved with %d process(es), resumed with %d: random streams differ from the "
                           "original run", len(rngs), self.info.world_size)
        restore_rng(rngs[min(self.info.rank, len(rngs) - 1)])
        if self.info.is_main:
            print(f"resumed from {path} (epoch {self.epoch + 1}, batch {self.step})", file=sys.stderr, flush=True)

    def _save_state(self) -> None:
        rngs = D.all_gather_objects(capture_rng())  # every rank's generators (a collective: all ranks call it)
        if not self.info.is_main:
            return
        state = {
            "format": STATE_FORMAT, "epoch": self.epoch, "step": self.step, "global_step": self.global_step,
            "model": {n: p.detach().cpu().clone() for n, p in self.model.trainable_parameters().items()},
            "frozen_fingerprint": self.fingerprint,
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(), "rng": rngs,
            "history": self.history, "epoch_stats": dict(self.epoch_stats), "config": self.cfg.to_dict(),
            "world_size": self.info.world_size, "best": self.best, "stopped": self.stopped,
        }
        directory = self.run_dir / _STATES_DIR
        save_state(state_path(directory, self.epoch, self.step), state)
        prune_states(directory, self.cfg.train.keep_states)

    # -- loop --------------------------------------------------------------------------------------------------------
    def _train_epoch(self) -> dict[str, Any]:
        cfg, dev = self.cfg, self.device
        bs = cfg.train.batch_size
        if self._batches is None:  # this epoch (from the resumed step) and every later one, in one iterator
            self.sampler.set_epoch(self.epoch, self.step * bs)
            self._batches = iter(self.loader)
        steps = num_batches(self.sampler.num_samples, bs, self.step * bs)  # what is left of this epoch
        self.net.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
        correct = torch.zeros((), dtype=torch.int64, device=dev)
        count = 0
        window_loss, window_n = torch.zeros((), dtype=torch.float64, device=dev), 0
        timer = StepTimer()
        params = list(self.model.trainable_parameters().values())
        last_batch = None
        bar = self.log.progress(self.steps_per_epoch, self.step, f"epoch {self.epoch + 1}/{cfg.train.epochs}")
        lr = self.optimizer.param_groups[0]["lr"]
        for _ in range(steps):
            timer.waiting()
            batch = next(self._batches)
            weight = 1.0
            if batch is None:  # every clip of this batch failed to load (on_bad_sample='skip')
                self.epoch_stats["bad_batches"] += 1
                if not self.info.distributed or last_batch is None:
                    timer.got_batch(0)
                    self._advance(bar)
                    continue
                batch, weight = last_batch, 0.0  # keep DDP's collectives in step: a zero-weighted repeat
            timer.got_batch(len(batch["label"]) if weight else 0)
            last_batch = batch
            video, audio, label = _to_device(batch, self.model, dev)
            if self.compiled:  # one static batch shape: no recompilation for the short last batch
                video, audio = _pad_rows(video, bs), _pad_rows(audio, bs)
            with accel.autocast(dev, self.precision):
                logits = self.net(video, audio)[: len(label)]  # [B, C]
            loss = F.cross_entropy(logits.float(), label, label_smoothing=cfg.train.label_smoothing)
            self.optimizer.zero_grad(set_to_none=True)
            (loss * weight).backward()
            if cfg.optim.clip_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, cfg.optim.clip_grad_norm)
            self.optimizer.step()
            if weight:
                n = len(label)
                loss_sum += loss.detach().double() * n
                correct += (logits.detach().argmax(1) == label).sum()
                count += n
                window_loss += loss.detach().double()
                window_n += 1
            self._advance(bar)
            if self.step % cfg.train.log_every == 0 and window_n:
                avg = window_loss.item() / window_n
                window_loss.zero_()
                window_n = 0
                bar.set_postfix(loss=f"{avg:.4f}", clips_s=f"{timer.clips_per_s * self.info.world_size:.1f}",
                                wait=f"{100 * timer.wait_fraction:.0f}%", lr=f"{lr:.2e}", refresh=False)
                self.log.scalars(self.global_step, {"train/loss": avg, "train/lr": lr,
                                                    "train/clips_per_s": timer.clips_per_s * self.info.world_size,
                                                    "train/loader_wait": timer.wait_fraction})
            every = cfg.train.checkpoint_every_steps
            if every and self.step % every == 0 and self.step < self.steps_per_epoch:
                self._fold_stats(loss_sum, correct, count)
                loss_sum.zero_()
                correct.zero_()
                count = 0
                self._save_state()
        bar.close()
        self._fold_stats(loss_sum, correct, count)
        totals = torch.tensor([self.epoch_stats["loss_sum"], self.epoch_stats["correct"], self.epoch_stats["count"]],
                              dtype=torch.float64, device=dev)
        if self.info.distributed:
            torch.distributed.all_reduce(totals)
        loss_total, correct_total, n_total = totals.tolist()
        if not n_total:  # every batch was skipped: nothing trained, and nothing will
            raise MmadferError(self.cfg.data.root, f"epoch {self.epoch + 1}: none of the {len(self.train_ds)} "
                                                   f"training clips could be loaded ({self.epoch_stats['bad_batches']} "
                                                   "batches skipped; the warnings above name the clips)")
        return {"epoch": self.epoch + 1, "lr": lr,
                "train_loss": loss_total / n_total if n_total else float("nan"),
                "train_acc": correct_total / n_total if n_total else float("nan"),
                "clips_per_s": timer.clips_per_s * self.info.world_size, "wait_pct": 100 * timer.wait_fraction,
                "epoch_time_s": timer.elapsed, "bad_batches": self.epoch_stats["bad_batches"]}

    def _advance(self, bar) -> None:
        self.step += 1
        self.global_step += 1
        bar.update(1)

    def _fold_stats(self, loss_sum: torch.Tensor, correct: torch.Tensor, count: int) -> None:
        """Move the running sums from the device into ``epoch_stats`` (which the training state carries)."""
        self.epoch_stats["loss_sum"] += loss_sum.item()
        self.epoch_stats["correct"] += int(correct.item())
        self.epoch_stats["count"] += count

    def _evaluate(self, out_dir: Path | None, dataset=None, n_resamples: int = 1000) -> dict[str, Any] | None:
        dataset = self.test_ds if dataset is None else dataset
        if dataset is None:
            return None
        bs = self.cfg.train.eval_batch_size or 2 * self.cfg.train.batch_size
        return evaluate_model(self.model, dataset, batch_size=bs, device=self.device, out_dir=out_dir,
                              num_workers=self.cfg.data.num_workers, precision=self.precision,
                              progress=self.info.is_main, n_resamples=n_resamples)

    def _watch_validation(self, row: dict[str, Any]) -> None:
        """Early stopping: score the validation split, remember the best epoch's trainable weights, and stop after
        ``train.early_stopping`` epochs without a better UAR."""
        val = self._evaluate(None, self.val_ds, n_resamples=0)
        row["val_uar"] = val["uar"]
        epoch = self.epoch + 1
        if self.best is None or val["uar"] > self.best["uar"]:
            self.best = {"epoch": epoch, "uar": val["uar"],
                         "weights": {n: p.detach().cpu().clone() for n, p in self.model.trainable_parameters().items()}}
        elif epoch - self.best["epoch"] >= self.cfg.train.early_stopping:
            self.stopped = True

    def _restore_best(self) -> None:
        with torch.no_grad():
            for n, p in self.model.trainable_parameters().items():
                p.copy_(self.best["weights"][n])
        if self.info.is_main:
            print(f"early stopping: kept epoch {self.best['epoch']} (validation UAR {self.best['uar']:.4f})",
                  file=sys.stderr, flush=True)

    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        epochs = cfg.train.epochs
        watch = self.val_ds is not None
        final = None
        t0 = time.perf_counter()
        while self.epoch < epochs and not self.stopped:
            row = self._train_epoch()
            self.scheduler.step()
            if watch:
                self._watch_validation(row)
            last = self.epoch + 1 == epochs and not watch
            if last or (cfg.train.eval_every and (self.epoch + 1) % cfg.train.eval_every == 0):
                result = self._evaluate(self.run_dir / "eval" if last else None)
                if result is not None:
                    row.update(test_uar=result["uar"], test_war=result["war"])
                    final = result if last else None
            self.log.epoch(row, self.global_step)
            self.history = self.log.history
            self.epoch, self.step = self.epoch + 1, 0
            self.epoch_stats = {"loss_sum": 0.0, "correct": 0, "count": 0, "bad_batches": 0}
            self._save_state()
            self.log.message(_row_text(row))
        if watch and self.best is not None:
            self._restore_best()
        if final is None:  # early stopping, or resumed after the last epoch's state: evaluate (deterministic)
            final = self._evaluate(self.run_dir / "eval")
        return self._finish(final, time.perf_counter() - t0)

    def _finish(self, final: dict[str, Any] | None, seconds: float) -> dict[str, Any]:
        metrics = {k: v for k, v in (final or {}).items() if k != "files"}
        if final is None:
            logger.warning("no test split (data.test_csv is not set): the run has no final metrics")
        metrics["training"] = {
            "epochs": self.cfg.train.epochs, "steps": self.global_step, "world_size": self.info.world_size,
            "precision": self.precision, "seconds_this_session": seconds,
            "mean_clips_per_s": float(np.mean([r["clips_per_s"] for r in self.history])) if self.history else None,
            "trainable_parameters": self.model.num_parameters(trainable_only=True),
            "trainable": self.cfg.model.trainable, "balanced": self.cfg.train.balanced,
        }
        if self.best is not None:
            metrics["training"]["early_stopping"] = {"best_epoch": self.best["epoch"], "val_uar": self.best["uar"],
                                                     "stopped_early": self.stopped}
        if getattr(self.model, "head_change", None) is not None:
            metrics["training"]["init"] = {"checkpoint": self.cfg.model.init, "head": self.model.head_change.to_dict()}
        ckpt = self.run_dir / FINAL_CHECKPOINT
        if self.info.is_main:
            model = self.model
            if self.precision.startswith("fp8"):  # the live model's encoder linears are fp8 now: save a clean copy
                model = build_model(self.cfg, self.class_names, announce=False)  # (model.init: loaded again)
                model.load_state_dict({n: p.detach().cpu() for n, p in self.model.trainable_parameters().items()},
                                      strict=False)
            save_checkpoint(model, ckpt, extra={"uar": metrics.get("uar"), "war": metrics.get("war"),
                                                "epochs": self.cfg.train.epochs, "train_config": self.cfg.to_dict()},
                            trained_on=training_record(self.cfg, self.class_names))
            write_json(self.run_dir / "metrics.json", metrics)
        D.barrier()
        self.log.close()
        return {"run_dir": str(self.run_dir), "checkpoint": str(ckpt), "metrics": metrics, "history": self.history}


def training_record(cfg: TrainConfig, class_names) -> dict[str, Any]:
    """What a run trains on, for its checkpoint (:func:`mmadfer.provenance.trained_on`): the dataset kind (the
    benchmark's name, or the folder or CSV for one's own data), the classes, the data root and fold, and whether
    the clips are synthetic (the ``synthetic`` preset, or a folder written by ``mmadfer synth``), and the checkpoint
    it started from (``train --init``), which a fine-tuned model's terms and behaviour still depend on."""
    d = cfg.data
    named = d.dataset in ("dfew", "mafw", "synthetic") or not d.root
    synthetic = d.dataset == "synthetic" or (d.root is not None and is_synthetic_dataset(d.root))
    started = {"init": str(cfg.model.init)} if cfg.model.init else {}
    return trained_on(d.dataset if named else f"{d.dataset}:{Path(d.root).name}", class_names, synthetic=synthetic,
                      data=d.root, fold=d.fold if d.dataset != "csv" else None, **started)


def _row_text(row: dict[str, Any]) -> str:
    parts = [f"epoch {row['epoch']}", f"loss {row['train_loss']:.4f}", f"acc {row['train_acc']:.3f}"]
    if "test_uar" in row:
        parts += [f"UAR {row['test_uar']:.4f}", f"WAR {row['test_war']:.4f}"]
    if "val_uar" in row:
        parts.append(f"val UAR {row['val_uar']:.4f}")
    parts += [f"{row['clips_per_s']:.1f} clips/s", f"loader wait {row['wait_pct']:.0f}%"]
    return "  ".join(parts)


def _ensure_synthetic(cfg: TrainConfig) -> None:
    """Write the synthetic set into ``data.root`` unless it is complete (``write_synthetic_dataset`` keeps the clips
    already there)."""
    root = Path(cfg.data.root)
    if not (root / "classes.txt").is_file():
        print(f"writing {cfg.data.synth_clips} synthetic clips to {root}", file=sys.stderr, flush=True)
        write_synthetic_dataset(root, cfg.data.synth_clips, size=cfg.data.synth_size, raw=False)


def fit(cfg: TrainConfig, *, resume: bool | str | os.PathLike | None = None) -> dict[str, Any]:
    """Train and evaluate one run; returns ``{'run_dir', 'checkpoint', 'metrics', 'history'}``.

    ``metrics`` holds the final epoch's test ``uar``, ``war``, ``per_class``, ``confusion`` (and ``expected_cost``
    when a cost matrix was given to the evaluation) plus ``training`` totals. ``resume``: None starts a new run (and
    refuses a run folder that already holds one); ``'auto'``/``True`` continues the newest state in the run folder,
    or returns the stored result when the run has finished; a path continues from that state file. Works under
    torchrun (see :mod:`mmadfer.distributed`); rank 0 writes every file.
    """
    if not cfg.data.root and cfg.data.dataset != "synthetic":
        raise ValueError("no training data: set data.root (mmadfer train --data ROOT)")
    info = D.setup(cfg.train.device)
    run_dir = Path(cfg.run_dir) if cfg.run_dir else None
    if run_dir is None and resume not in (None, False, True, "auto"):
        run_dir = Path(resume).resolve().parent.parent  # RUN/checkpoints/state-*.pt
    run_dir = Path(D.broadcast_object(str(run_dir or _default_run_dir(cfg))))
    if resume not in (None, False):
        done = completed_run(run_dir)
        if done is not None:
            if info.is_main:
                print(f"{run_dir}: already finished (UAR {done['metrics'].get('uar')}, WAR "
                      f"{done['metrics'].get('war')})", file=sys.stderr)
            return done
    state_file = _resolve_resume(run_dir, resume)
    cfg = dataclasses.replace(cfg, run_dir=str(run_dir))
    if cfg.data.dataset == "synthetic" and not cfg.data.root:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, root=str(run_dir / "synthetic-data")))
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if state_file is None:
            cfg.save(run_dir / "config.yaml")
        print(f"run folder: {run_dir}", file=sys.stderr, flush=True)
        if cfg.data.dataset == "synthetic":
            _ensure_synthetic(cfg)
    D.barrier()
    return _Trainer(cfg, info, run_dir, state_file).run()
