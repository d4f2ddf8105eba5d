"""Checks a checkpoint passes before anything is built from it or loaded into it.

A checkpoint is untrusted input. What a file *declares* is checked against what it holds, and both against sane
bounds, before any memory is committed to it:

* :func:`check_zip_sizes`: a ``torch.save`` file is a zip archive whose entries are stored uncompressed; a file whose
  entries declare many times its own size uncompressed (a zip bomb) is refused before it is opened for unpickling.
* :func:`check_config`: every size in a :class:`~mmadfer.ModelConfig` (from a checkpoint's metadata or inferred from
  its key names) is an integer within generous bounds (``depth=3000`` would build thousands of blocks);
* :func:`check_fits`: the model the config describes is built on PyTorch's ``meta`` device (shapes only, no memory)
  and the file's tensors are matched against it, so a config that disagrees with the weights is named before the
  real model is built;
* :func:`check_finite`: NaN or infinite weights would give empty predictions: the first such tensor is named.
* :func:`check_class_names` (part of :func:`check_config`): class names end up in CSV cells, charts, terminals and
  web pages, so each must be non-empty, printable (no control or format characters such as ESC or a bidirectional
  override), unique, and not one of the labels mmadfer writes itself (``no_face``, ``uncertain``:
  :data:`mmadfer.config.RESERVED_LABELS`).

Each failure is a :class:`~mmadfer.CheckpointError` naming the file and the field or tensor.
"""
from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path
from typing import Mapping

import torch

from .config import RESERVED_LABELS, ModelConfig
from .errors import CheckpointError
from .model.mmadfer import MMADFER

__all__ = ["check_zip_sizes", "check_config", "check_fits", "check_keys", "check_finite", "check_class_names",
           "CONFIG_BOUNDS", "MAX_ZIP_RATIO"]
#: Longest class name accepted (in characters): a label is a word or a short phrase.
MAX_CLASS_NAME = 200

#: An archive may declare at most this many times its own size uncompressed (plus :data:`_ZIP_SLACK`).
#: ``torch.save`` stores entries uncompressed (ratio 1); weights deflate by less than 2×.
MAX_ZIP_RATIO = 10
_ZIP_SLACK = 64 << 20

#: Inclusive ``(low, high)`` bounds of the config's integer sizes: far beyond any ViT the method uses (the paper's
#: ViT-B/16: 768 wide, 12 deep), far below what would exhaust a machine's memory.
CONFIG_BOUNDS: dict[str, tuple[int, int]] = {
    "num_classes": (1, 100_000),
    "img_size": (1, 2048),
    "num_frames": (1, 512),
    "patch_size": (1, 128),
    "embed_dim": (1, 8192),
    "depth": (1, 128),
    "num_heads": (1, 256),
    "audio_frames": (1, 65_536),
    "audio_mel_bins": (1, 1024),
    "num_prompts": (0, 1024),
    "prompts_per_group": (1, 1024),
    "fusion_dim": (1, 8192),
    "temporal_dim": (1, 8192),
    "temporal_depth": (1, 64),
    "temporal_heads": (1, 256),
    "temporal_head_dim": (1, 4096),
    "temporal_mlp_dim": (1, 65_536),
}
_FLOAT_BOUNDS = {"mlp_ratio": (0.0, 64.0), "drop_path_rate": (0.0, 1.0)}
#: Tokens one attention layer may see (the vision grid plus prompts, or the audio grid): bounds its memory.
_MAX_TOKENS = 65_536


def check_zip_sizes(path: str | os.PathLike) -> None:
    """Refuse a zip archive whose entries declare far more data than the file holds (read from the central
    directory only; nothing is decompressed). Files that are not zip archives pass (they are handled later)."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # not a zip archive (or unreadable): the loader reports it
    size = path.stat().st_size
    declared = sum(i.file_size for i in infos)
    if declared > MAX_ZIP_RATIO * size + _ZIP_SLACK:
        biggest = max(infos, key=lambda i: i.file_size)
        raise CheckpointError(path, f"refused: its zip entries declare {declared / 2**20:,.0f} MiB uncompressed in a "
                                    f"{size / 2**20:,.1f} MiB file ({biggest.filename!r}: "
                                    f"{biggest.file_size / 2**20:,.0f} MiB), more than {MAX_ZIP_RATIO}× its size: "
                                    "a zip bomb, not a checkpoint")


def check_config(cfg: ModelConfig, path: str | os.PathLike | None) -> None:
    """Every size of ``cfg`` is an integer within :data:`CONFIG_BOUNDS` (ratios within theirs) and the attention
    layers' widths divide by their heads; otherwise a CheckpointError names the field."""
    def bad(field: str, why: str) -> CheckpointError:
        return CheckpointError(path, f"invalid model config: {field}={getattr(cfg, field)!r} {why}")

    for field, (low, high) in CONFIG_BOUNDS.items():
        value = getattr(cfg, field)
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad(field, "is not an integer")
        if not low <= value <= high:
            raise bad(field, f"is outside {low}..{high}")
    for field, (low, high) in _FLOAT_BOUNDS.items():
        value = getattr(cfg, field)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not low <= value <= high:
            raise bad(field, f"is not a number in {low}..{high}")
    if cfg.embed_dim % cfg.num_heads:
        raise bad("embed_dim", f"is not divisible by num_heads={cfg.num_heads}")
    if cfg.audio_frames % cfg.patch_size or cfg.audio_mel_bins % cfg.patch_size:
        raise bad("patch_size", f"does not divide audio_frames={cfg.audio_frames} and "
                                f"audio_mel_bins={cfg.audio_mel_bins}")
    tokens = max(math.prod(cfg.vision_grid), math.prod(cfg.audio_grid)) + cfg.n_prompt_tokens + 1
    if tokens > _MAX_TOKENS:
        raise bad("img_size", f"with patch_size={cfg.patch_size} gives {tokens} tokens per layer "
                              f"(at most {_MAX_TOKENS})")
    if cfg.class_names is not None:
        check_class_names(cfg.class_names, path)


def check_class_names(names, path: str | os.PathLike | None) -> None:
    """Each class name is a non-empty string of at most :data:`MAX_CLASS_NAME` printable characters (``str.
    isprintable``: no control, format or separator character but the space), without leading or trailing spaces,
    unique and not in :data:`~mmadfer.config.RESERVED_LABELS`; otherwise a CheckpointError names the class (by
    number, and in ``ascii()`` form, so the message itself is safe to print)."""
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        def bad(why: str) -> CheckpointError:
            return CheckpointError(path, f"invalid class name {i} {ascii(name)}: {why}")

        if not isinstance(name, str):
            raise bad("is not a string")
        if not name.strip():
            raise bad("is empty")
        if len(name) > MAX_CLASS_NAME:
            raise bad(f"is longer than {MAX_CLASS_NAME} characters")
        if not name.isprintable():
            raise bad("holds control or other non-printable characters")
        if name != name.strip():
            raise bad("starts or ends with spaces")
        if name in RESERVED_LABELS:
            raise bad(f"is reserved (mmadfer writes {', '.join(map(repr, RESERVED_LABELS))} itself)")
        if name in seen:
            raise bad(f"repeats class {seen[name]}")
        seen[name] = i


def check_fits(cfg: ModelConfig, tensors: Mapping[str, torch.Tensor], path: str | os.PathLike | None, *,
               complete: bool = True) -> None:
    """The tensors fit the model ``cfg`` describes (names and shapes; ``complete=False``: only the trained tensors
    are in the file), checked on a model built on the ``meta`` device, which holds shapes and no data."""
    with torch.device("meta"):
        shapes = MMADFER(cfg)
    own = shapes.state_dict()
    check_keys(own, tensors, path,
               allow_missing=() if complete else tuple(n for n in own if n not in shapes.trainable_parameters()))


def check_keys(own: Mapping[str, torch.Tensor], state_dict: Mapping[str, torch.Tensor],
               path: str | os.PathLike | None, *, allow_missing: tuple[str, ...] = ()) -> None:
    """``state_dict`` has every key of ``own`` (but those starting with ``allow_missing``), no other, and the same
    shapes; otherwise a CheckpointError lists what is missing, unexpected and mis-shaped."""
    missing = [k for k in own if k not in state_dict and not k.startswith(allow_missing)]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [f"{k} {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
                  for k in state_dict if k in own and state_dict[k].shape != own[k].shape]
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
        if keys:
            problems.append(f"{len(keys)} {label}: {_abbrev(keys)}")
    if problems:
        raise CheckpointError(path, "state dict does not fit the model; " + "; ".join(problems))


def _abbrev(keys: list[str], n: int = 8) -> str:
    return ", ".join(keys[:n]) + (f", … (+{len(keys) - n} more)" if len(keys) > n else "")


def check_finite(tensors: Mapping[str, torch.Tensor], path: str | os.PathLike | None) -> None:
    """No floating-point tensor holds NaN or an infinity; otherwise a CheckpointError names the first one."""
    for name, t in tensors.items():
        if t.is_floating_point() and t.device.type != "meta" and not bool(torch.isfinite(t).all()):
            n_nan, n_inf = int(torch.isnan(t).sum()), int(torch.isinf(t).sum())
            raise CheckpointError(path, f"tensor {name!r} {tuple(t.shape)} holds {n_nan} NaN and {n_inf} infinite "
                                        "value(s): the weights are damaged")
