"""Fine-tuning from a whole checkpoint (``mmadfer train --init CK``): the released ``.pth`` or an mmadfer
``.safetensors``, with the class set of the new data.

The architecture, the preprocessing profile and every weight come from the checkpoint. When the new class set
differs, the classifier is rebuilt by :func:`rebuild_head`, a pure function on the state dict: the row of a class
whose name the checkpoint knows is reused, a new class gets a freshly initialised row, and classes the new data
does not have are dropped; the result is then loaded strictly (every other key must match), and the run says which
rows it reused (:meth:`HeadChange.line`). The calibration temperature is reset to 1: it belonged to the old head.
Encoders stay frozen as in the paper unless ``model.trainable`` says otherwise.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import torch

from ..checkpoints import load_model, strict_load
from ..model.mmadfer import MMADFER

__all__ = ["HeadChange", "rebuild_head", "from_base", "init_from_checkpoint"]


@dataclass
class HeadChange:
    """What happened to the classifier: classes whose row was ``reused``, ``new`` classes (fresh rows) and
    ``dropped`` classes of the checkpoint."""

    reused: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    @property
    def unchanged(self) -> bool:
        return not self.new and not self.dropped

    def line(self) -> str:
        if self.unchanged:
            return f"classifier kept: the checkpoint has the same {len(self.reused)} classes"
        parts = [f"reused rows for {', '.join(self.reused) or 'no class'}"]
        if self.new:
            parts.append(f"new rows for {', '.join(self.new)}")
        if self.dropped:
            parts.append(f"dropped {', '.join(self.dropped)}")
        return "classifier rebuilt for the new classes: " + "; ".join(parts)

    def to_dict(self) -> dict[str, list[str]]:
        return {"reused": self.reused, "new": self.new, "dropped": self.dropped}


def rebuild_head(state_dict: Mapping[str, torch.Tensor], old_classes: Sequence[str], new_classes: Sequence[str],
                 fresh_weight: torch.Tensor, fresh_bias: torch.Tensor) -> tuple[dict[str, torch.Tensor], HeadChange]:
    """The state dict with ``head.weight`` ``[C_new, D]`` and ``head.bias`` ``[C_new]`` for ``new_classes``: row
    ``i`` is the checkpoint's row of the class named ``new_classes[i]`` (names compared without case and surrounding
    spaces), else row ``i`` of ``fresh_weight``/``fresh_bias`` (a new model's initialisation). Nothing else changes;
    the input is not modified."""
    weight, bias = state_dict["head.weight"], state_dict["head.bias"]
    if weight.shape[0] != len(old_classes):
        raise ValueError(f"the checkpoint's classifier has {weight.shape[0]} rows for {len(old_classes)} class names")
    if fresh_weight.shape != (len(new_classes), weight.shape[1]) or fresh_bias.shape != (len(new_classes),):
        raise ValueError("fresh_weight/fresh_bias do not fit the new classes and the classifier's input size")
    key = {str(n).strip().lower(): i for i, n in enumerate(old_classes)}
    rows_w, rows_b, change = [], [], HeadChange()
    for i, name in enumerate(new_classes):
        j = key.get(str(name).strip().lower())
        if j is None:
            rows_w.append(fresh_weight[i].to(weight.dtype))
            rows_b.append(fresh_bias[i].to(bias.dtype))
            change.new.append(str(name))
        else:
            rows_w.append(weight[j])
            rows_b.append(bias[j])
            change.reused.append(str(name))
    kept = {str(n).strip().lower() for n in new_classes}
    change.dropped = [str(n) for n in old_classes if str(n).strip().lower() not in kept]
    out = dict(state_dict)
    out["head.weight"], out["head.bias"] = torch.stack(rows_w), torch.stack(rows_b)
    return out, change


def init_from_checkpoint(path: str | os.PathLike, class_names: Sequence[str], *, seed: int = 0,
                         vision: str | os.PathLike | None = None,
                         audio: str | os.PathLike | None = None) -> tuple[MMADFER, HeadChange]:
    """A model for ``class_names`` that starts from the checkpoint at ``path`` (on the CPU, training mode off).
    ``vision``/``audio``: encoder files for a checkpoint that holds only its trained tensors (default: the paths it
    recorded). New classifier rows are initialised from torch's generator seeded with ``seed``."""
    kw = {k: v for k, v in (("vision", vision), ("audio", audio)) if v is not None}
    return from_base(load_model(path, **kw), class_names, seed=seed)


def from_base(base: MMADFER, class_names: Sequence[str], *, seed: int = 0) -> tuple[MMADFER, HeadChange]:
    """A new model for ``class_names`` holding ``base``'s weights, its classifier rebuilt by :func:`rebuild_head`
    and loaded strictly (``base`` is left as it is)."""
    path = (getattr(base, "source", None) or {}).get("path")
    cfg = base.cfg.replace(num_classes=len(class_names), class_names=tuple(class_names), temperature=1.0)
    torch.manual_seed(seed)
    model = MMADFER(cfg)
    state, change = rebuild_head(base.state_dict(), base.cfg.labels, class_names,
                                 model.head.weight.detach(), model.head.bias.detach())
    strict_load(model, state, path)
    # No encoder sources: the checkpoint's encoders may differ from any pretraining file (a base trained with
    # trainable=all), so the fine-tuned model is saved whole rather than as trained tensors plus file references.
    model.encoder_sources = {}
    return model, change
