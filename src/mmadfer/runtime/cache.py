"""The conversion cache: a PyTorch checkpoint converted once for an int8 runtime, then reused.

Converted models live under :func:`default_cache_dir` (``$MMADFER_CACHE``, else ``~/.cache/mmadfer``), named by the
checkpoint's SHA-256 and the versions of mmadfer and of the converting libraries (:func:`cached_model_path`), so a
changed checkpoint or an upgrade converts again. Every conversion goes through :func:`convert_once`: under a lock
beside the target, convert unless a whole, verified model is already there, writing atomically, so concurrent processes
convert once and an interrupted conversion leaves nothing behind. Beside each model a ``<name>.json`` entry records
the size and SHA-256 of its files (a corrupt or truncated model is converted again, never loaded) and the int8
model's measured top-1 agreement with PyTorch on held-out clips (:func:`entry_info`). The files hold a model's
weights only, never any input. Delete the folder at any time.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

from .. import __version__
from .._cache import default_cache_dir
from .._optional import require
from ..checkpoints import load_model
from ..errors import CheckpointError
from ..export.calibration import heldout_inputs
from ..export.onnx import DEFAULT_OPSET, int8_onnx
from ..export.openvino import openvino_int8
from ..export.verify import agreement
from ..io import atomic_write, file_lock, sha256_file
from .onnx import OnnxRunner
from .openvino import OpenVinoRunner

__all__ = ["default_cache_dir", "cached_model_path", "convert_once", "entry_path", "entry_info", "measure_agreement",
           "cached_int8", "cached_int8_path", "cached_openvino_int8", "cached_openvino_int8_path"]


def cached_model_path(checkpoint: str | os.PathLike, runtime: str, suffix: str, *, folder: str = "onnx",
                      cache_dir: str | os.PathLike | None = None) -> Path:
    """Where a converted model of ``checkpoint`` is kept (the file may not exist yet).

    The name is keyed by the checkpoint's SHA-256, mmadfer's version and ``runtime`` (the converting libraries and
    their versions), so a changed checkpoint or an upgrade converts again. ``folder``: the cache's subfolder.
    """
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise CheckpointError(checkpoint, "no such file")
    stat = checkpoint.stat()
    digest = _file_digest(str(checkpoint.resolve()), stat.st_size, stat.st_mtime_ns)
    tag = f"{digest}|mmadfer {__version__}|{runtime}|opset {DEFAULT_OPSET}"
    key = hashlib.sha256(tag.encode()).hexdigest()[:16]
    return Path(cache_dir or default_cache_dir()) / folder / f"{checkpoint.stem}-{key}{suffix}"


@functools.lru_cache(maxsize=16)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    """SHA-256 of a file, remembered per (path, size, mtime): a checkpoint is hashed once per process."""
    return sha256_file(path)


def entry_path(path: str | os.PathLike) -> Path:
    """The JSON entry beside a cached model: ``<model name>.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def entry_info(path: str | os.PathLike) -> dict[str, Any] | None:
    """What the cache recorded of a converted model (``files``: name -> size and SHA-256; ``agreement``: the keys of
    :func:`mmadfer.export.verify.compare` on held-out clips), or None when there is no readable entry."""
    try:
        info = json.loads(entry_path(path).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _files(path: Path, parts: tuple[str, ...]) -> list[Path]:
    return [path, *(path.with_suffix(s) for s in parts)]


def _verified(path: Path, parts: tuple[str, ...]) -> bool:
    """Whether the model's files are all there with the sizes and SHA-256 its entry records."""
    info = entry_info(path)
    recorded = info.get("files") if info else None
    if not isinstance(recorded, dict):
        return False
    for p in _files(path, parts):
        want = recorded.get(p.name)
        if not isinstance(want, dict) or not p.is_file() or p.stat().st_size != want.get("size") \
                or sha256_file(p) != want.get("sha256"):
            return False
    return True


def convert_once(path: Path, convert: Callable[[Path], object], *, parts: tuple[str, ...] = (),
                 describe: Callable[[Path], dict[str, Any]] | None = None) -> Path:
    """Lock-then-convert: under a lock file beside ``path``, call ``convert(path)`` unless ``path`` and its
    companions (the same name with each suffix of ``parts``, e.g. OpenVINO's ``.bin``) are all there already and
    match the sizes and SHA-256 of their entry (:func:`entry_path`); a missing, partial or corrupt model is removed
    and converted again. The entry is written last (atomically), with ``describe(path)``'s keys added."""
    with file_lock(path.with_name(path.name + ".lock")):
        if not _verified(path, parts):
            for p in (entry_path(path), *_files(path, parts)):
                p.unlink(missing_ok=True)
            convert(path)
            info: dict[str, Any] = {"files": {p.name: {"size": p.stat().st_size, "sha256": sha256_file(p)}
                                              for p in _files(path, parts)}}
            if describe is not None:
                info.update(describe(path))
            with atomic_write(entry_path(path)) as f:
                json.dump(info, f, indent=1)
    return path


def measure_agreement(model, runner) -> dict[str, Any]:
    """``{"agreement": ...}``: ``runner``'s top-1 agreement with the PyTorch ``model`` on
    :func:`~mmadfer.export.calibration.heldout_inputs`, clips that calibration never saw."""
    return {"agreement": agreement(model, runner, heldout_inputs(model.cfg))}


def cached_int8_path(checkpoint: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where :func:`cached_int8` keeps the int8 model of ``checkpoint`` (see :func:`cached_model_path`)."""
    ort = require("onnxruntime", "the ONNX Runtime backend")
    return cached_model_path(checkpoint, f"onnxruntime {ort.__version__}", ".int8.onnx", cache_dir=cache_dir)


def cached_int8(checkpoint: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """The ONNX Runtime dynamic-int8 model of a PyTorch checkpoint, converted on first use and then reused from
    :func:`cached_int8_path`."""
    # The conversion builds its own model and drops it before quantising (int8_onnx: one copy of the weights at a
    # time, temporary files in the cache folder); the agreement check loads the model again afterwards.
    return convert_once(cached_int8_path(checkpoint, cache_dir=cache_dir),
                        lambda path: int8_onnx(lambda: load_model(checkpoint), path),
                        describe=lambda path: measure_agreement(load_model(checkpoint), OnnxRunner(path)))


def cached_openvino_int8_path(checkpoint: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where :func:`cached_openvino_int8` keeps the model of ``checkpoint``: ``<cache>/openvino/<name>-<key>.int8.xml``,
    keyed by the checkpoint's SHA-256 and the versions of mmadfer, OpenVINO and NNCF (:func:`cached_model_path`)."""
    ov, nncf = require("openvino", "the OpenVINO backend"), require("nncf", "OpenVINO int8 quantisation")
    return cached_model_path(checkpoint, f"openvino {ov.__version__}|nncf {nncf.__version__}|7-bit weights", ".int8.xml",
                             folder="openvino", cache_dir=cache_dir)


def cached_openvino_int8(checkpoint: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """The OpenVINO static-int8 model of a PyTorch checkpoint (calibration included), converted on first use and then
    reused from :func:`cached_openvino_int8_path` (the ``.xml`` with its ``.bin``)."""
    model = functools.cache(lambda: load_model(checkpoint))
    return convert_once(cached_openvino_int8_path(checkpoint, cache_dir=cache_dir),
                        lambda path: openvino_int8(model(), path), parts=(".bin",),
                        describe=lambda path: measure_agreement(model(), OpenVinoRunner(path)))
