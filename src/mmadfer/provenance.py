"""What a model was trained on, recorded in its checkpoint and read back, so that its predictions can say what
they are worth.

``mmadfer train`` (and ``cv``, ``ablate``, ``demo``) store a ``trained_on`` record in the checkpoint's metadata
(:func:`mmadfer.checkpoints.save_checkpoint`): the dataset, its classes, and whether it was synthetic (``mmadfer
synth``, the ``synthetic`` preset) or the demo's. :func:`read_provenance` reads it back from any file mmadfer loads;
where nothing was recorded (the authors' released ``.pth``, an exported ``.onnx``/``.xml``, a checkpoint written
before this record existed) it says so rather than guess from a file name.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from .checkpoints import read_checkpoint_metadata

__all__ = ["trained_on", "read_provenance", "provenance", "provenance_note", "record_from_json", "NOT_RECORDED"]

#: What :func:`provenance_note` says when a checkpoint does not record its training data.
NOT_RECORDED = "not recorded"
_EXPORTED = (".onnx", ".xml")
_REFERENCE = (".pth", ".pt", ".tar")


def trained_on(dataset: str | None, classes: Iterable[str], *, synthetic: bool = False, demo: bool = False,
               **details: Any) -> dict[str, Any]:
    """The record a checkpoint carries: ``dataset`` (a name, e.g. ``'dfew'``, or None), ``classes``, ``synthetic``,
    ``demo`` and any JSON-able ``details`` (data root, fold, clips)."""
    return {"dataset": dataset, "classes": list(classes), "synthetic": bool(synthetic or demo), "demo": bool(demo),
            **details}


def record_from_json(text: Any) -> dict[str, Any] | None:
    """A ``trained_on`` record stored as JSON text (in an exported file's metadata), or None when it is missing or
    not a JSON object: an unreadable record counts as not recorded."""
    try:
        record = json.loads(text)
    except (TypeError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def provenance(record: Mapping[str, Any] | None, classes: Iterable[str], *, kind: str = "mmadfer") -> dict[str, Any]:
    """A model's provenance from its recorded ``trained_on`` (None: nothing recorded) and the classes it predicts.

    Returns ``dataset`` (None when not recorded), ``classes``, ``synthetic``, ``demo``, ``recorded`` and ``note``
    (one plain sentence, see :func:`provenance_note`), plus the record's other details. ``kind``: ``'mmadfer'``,
    ``'reference'`` (the authors' ``.pth``) or ``'exported'`` (``.onnx``/``.xml``), for the note.
    """
    out: dict[str, Any] = {"dataset": None, "synthetic": False, "demo": False, **dict(record or {}),
                           "classes": list(classes), "recorded": record is not None}
    out["note"] = provenance_note(out, kind)
    return out


def provenance_note(p: Mapping[str, Any], kind: str = "mmadfer") -> str:
    """One sentence on what a model is, for a CLI line, a banner or a report."""
    if p.get("demo"):
        return ("demo model: a tiny model trained for about a minute on synthetic cartoon faces and tones; its labels "
                "say nothing about real people")
    if p.get("synthetic"):
        return "trained on synthetic data (mmadfer synth): its labels say nothing about real people"
    if not p.get("recorded"):
        where = {"reference": "a reference-format .pth (the authors' release) does not record it",
                 "exported": "an exported model file does not carry it"}.get(kind, "this checkpoint does not record it")
        return f"training data {NOT_RECORDED}: {where}"
    fold = f", fold {p['fold']}" if p.get("fold") is not None else ""
    return f"trained on {p.get('dataset') or 'an unnamed dataset'}{fold}"


def read_provenance(path: str | os.PathLike, classes: Iterable[str]) -> dict[str, Any]:
    """:func:`provenance` of a checkpoint file mmadfer can load (reads the metadata only, never the weights)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in _EXPORTED:
        return provenance(None, classes, kind="exported")
    if suffix in _REFERENCE:
        return provenance(None, classes, kind="reference")
    return provenance(read_checkpoint_metadata(path).get("trained_on"), classes)
