"""The conversion cache: a PyTorch checkpoint converted once for an int8 runtime, then reused.

Converted models live under :func:`default_cache_dir` (``$MMADFER_CACHE``, else ``~/.cache/mmadfer``), named by the
checkpoint's SHA-256 and the versions of mmadfer and of the converting libraries (:func:`cached_model_path`), so a
changed checkpoint or an upgrade converts again. Every conversion goes through :func:`convert_once`: under a lock
beside the target, convert unless a whole model is already there, writing atomically, so concurrent processes
convert once and an interrupted conversion leaves nothing behind. The files hold a model's weights only, never any
input. Delete the folder at any time.
"""
from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path
from typing import Callable

from .. import __version__
from .._cache import default_cache_dir
from .._optional import require
from ..checkpoints import load_model
from ..errors import CheckpointError
from ..export.onnx import DEFAULT_OPSET, int8_bytes
from ..export.openvino import openvino_int8
from ..io import atomic_path, file_lock, sha256_file

__all__ = ["default_cache_dir", "cached_model_path", "convert_once", "cached_int8", "cached_int8_path",
           "cached_openvino_int8", "cached_openvino_int8_path"]


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


def convert_once(path: Path, convert: Callable[[Path], object], *, parts: tuple[str, ...] = ()) -> Path:
    """Lock-then-convert: under a lock file beside ``path``, call ``convert(path)`` unless ``path`` and its
    companions (the same name with each suffix of ``parts``, e.g. OpenVINO's ``.bin``) are all there already."""
    with file_lock(path.with_name(path.name + ".lock")):
        if not all(p.is_file() for p in (path, *(path.with_suffix(s) for s in parts))):
            convert(path)
    return path


def cached_int8_path(checkpoint: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where :func:`cached_int8` keeps the int8 model of ``checkpoint`` (see :func:`cached_model_path`)."""
    ort = require("onnxruntime", "the ONNX Runtime backend")
    return cached_model_path(checkpoint, f"onnxruntime {ort.__version__}", ".int8.onnx", cache_dir=cache_dir)


def cached_int8(checkpoint: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """The ONNX Runtime dynamic-int8 model of a PyTorch checkpoint, converted on first use and then reused from
    :func:`cached_int8_path`."""
    def convert(path: Path) -> None:
        data = int8_bytes(load_model(checkpoint))
        with atomic_path(path, suffix=".onnx") as tmp:
            tmp.write_bytes(data)

    return convert_once(cached_int8_path(checkpoint, cache_dir=cache_dir), convert)


def cached_openvino_int8_path(checkpoint: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where :func:`cached_openvino_int8` keeps the model of ``checkpoint``: ``<cache>/openvino/<name>-<key>.int8.xml``,
    keyed by the checkpoint's SHA-256 and the versions of mmadfer, OpenVINO and NNCF (:func:`cached_model_path`)."""
    ov, nncf = require("openvino", "the OpenVINO backend"), require("nncf", "OpenVINO int8 quantisation")
    return cached_model_path(checkpoint, f"openvino {ov.__version__}|nncf {nncf.__version__}|7-bit weights", ".int8.xml",
                             folder="openvino", cache_dir=cache_dir)


def cached_openvino_int8(checkpoint: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """The OpenVINO static-int8 model of a PyTorch checkpoint (calibration included), converted on first use and then
    reused from :func:`cached_openvino_int8_path` (the ``.xml`` with its ``.bin``)."""
    return convert_once(cached_openvino_int8_path(checkpoint, cache_dir=cache_dir),
                        lambda path: openvino_int8(load_model(checkpoint), path), parts=(".bin",))
