"""ONNX export of :class:`~mmadfer.MMADFER`, int8 quantisation, and an ONNX Runtime runner.

The graph is the model alone: ``video`` float32 ``[B, T, 3, S, S]`` in [0, 1] and ``audio`` float32
``[B, 1, 512, 128]`` (a normalised fbank) in, ``logits`` ``[B, C]`` out, with a dynamic batch axis. Decoding, face
cropping and the Kaldi fbank stay outside the graph, in :func:`mmadfer.media.pipeline.prepare_window`, so that an
exported model sees exactly the inputs the PyTorch one does.

The model's :class:`~mmadfer.ModelConfig` (class names and preprocessing profile included) is stored in the ONNX
file's metadata, so an ``.onnx`` file is as self-describing as a checkpoint: ``Recognizer.from_checkpoint('m.onnx')``
needs nothing else.

By default each encoder attention is exported as one ONNX Runtime ``com.microsoft::Attention`` node
(:mod:`mmadfer.onnx_attention`), which ONNX Runtime runs with its fused kernel; ``portable=True`` writes standard ONNX
operators only, for other runtimes.

int8 uses ONNX Runtime's dynamic quantisation (:func:`onnxruntime.quantization.quantize_dynamic`): weights of the
MatMul/Gemm layers and of the attention nodes' QKV projections become int8 and activations are quantised on the fly,
with no calibration data. It changes the logits slightly; :func:`compare` measures by how much (max |Δlogit| and
top-1 agreement with the PyTorch model).
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from ._cache import default_cache_dir
from ._optional import require
from .config import ModelConfig
from .io import atomic_path, file_lock, sha256_file
from .onnx_attention import ORT_DOMAIN, fused_attention

__all__ = ["export_onnx", "onnx_bytes", "int8_bytes", "cached_int8", "cached_int8_path", "cached_model_path",
           "default_cache_dir", "as_model_inputs",
           "quantize_int8", "OnnxModel", "compare", "random_inputs", "DEFAULT_OPSET", "INT8_OP_TYPES"]

DEFAULT_OPSET = 17
INPUT_NAMES = ("video", "audio")
OUTPUT_NAME = "logits"
_META_FORMAT = "mmadfer-onnx-1"


def random_inputs(cfg: ModelConfig, batch_size: int, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random model inputs of the right shapes: video uniform in [0, 1], audio roughly like a normalised fbank."""
    g = torch.Generator().manual_seed(seed)
    video = torch.rand(batch_size, cfg.num_frames, 3, cfg.img_size, cfg.img_size, generator=g)
    audio = 0.5 * torch.randn(batch_size, 1, cfg.audio_frames, cfg.audio_mel_bins, generator=g)
    return video, audio


def _export(model: torch.nn.Module, f, opset: int, portable: bool = False) -> None:
    """Trace ``model`` into ``f`` (a path or a binary file object).

    The TorchScript-based exporter (``dynamo=False``) is used first: it is several times faster than the
    ``torch.export`` one on this model, its output matches PyTorch to float round-off, and it can write the fused
    ONNX Runtime attention nodes. The ``torch.export`` path (needs onnxscript; standard operators only) is the
    fallback for models the tracer cannot handle.
    """
    model = model.eval()
    dummy = random_inputs(model.cfg, 2)
    common = dict(input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME], opset_version=opset)
    fuse = contextlib.nullcontext() if portable else fused_attention(model)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and deprecation warnings about the legacy exporter
        try:
            with fuse:
                torch.onnx.export(model, dummy, f, dynamo=False, do_constant_folding=True,
                                  custom_opsets=None if portable else {ORT_DOMAIN: 1},
                                  dynamic_axes={n: {0: "batch"} for n in (*INPUT_NAMES, OUTPUT_NAME)}, **common)
            return
        except Exception as legacy_error:  # pragma: no cover - only for models the tracer rejects
            if hasattr(f, "seek"):
                f.seek(0)
                f.truncate()
            require("onnxscript", "ONNX export")
            batch = torch.export.Dim("batch", min=1)
            try:
                torch.onnx.export(model, dummy, f, dynamo=True, dynamic_shapes={"video": {0: batch}, "audio": {0: batch}},
                                  verbose=False, **common)
            except Exception as e:
                raise RuntimeError(f"ONNX export failed (legacy exporter: {legacy_error}; dynamo exporter: {e})") from e


def _with_metadata(data: bytes, cfg: ModelConfig, precision: str) -> bytes:
    onnx = require("onnx", "ONNX export")
    proto = onnx.load_from_string(data)
    _set_metadata(proto, cfg, precision)
    return proto.SerializeToString()


def _set_metadata(proto, cfg: ModelConfig, precision: str) -> None:
    meta = {"mmadfer_format": _META_FORMAT, "mmadfer_config": json.dumps(cfg.to_dict()),
            "mmadfer_precision": precision}
    keep = [p for p in proto.metadata_props if p.key not in meta]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v


def onnx_bytes(model: torch.nn.Module, *, opset: int = DEFAULT_OPSET, portable: bool = False) -> bytes:
    """The fp32 ONNX graph of ``model`` (with its config in the metadata), in memory: nothing touches the disk."""
    require("onnx", "ONNX export")
    buf = io.BytesIO()
    _export(model.float().cpu(), buf, opset, portable)
    return _with_metadata(buf.getvalue(), model.cfg, "fp32")


@contextlib.contextmanager
def logger_level(name: str | None, level: int) -> Iterator[None]:
    """Within the block, logger ``name`` (None: the root logger) passes only records at ``level`` or above. The
    converters' libraries log advice that means nothing to someone running ``mmadfer``: onnxruntime's quantiser on
    the root logger ("consider pre-processing", "inference failed for tensor ..."), NNCF its statistics."""
    logger = logging.getLogger(name)
    saved = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(saved)


#: What int8 quantises. Not ``Conv``: the one convolution (the patch embedding) runs 3.5× slower as ``ConvInteger``
#: than in fp32 on the 2-core CPU (64 vs 18 ms per clip) and holds under 1% of the FLOPs.
INT8_OP_TYPES = ("MatMul", "Gemm", "Attention")


def quantize_int8(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Dynamic int8 quantisation of an fp32 ONNX file (weights int8, activations quantised at run time)."""
    onnx = require("onnx", "int8 quantisation")
    quantization = require("onnxruntime.quantization", "int8 quantisation")
    src, dst = Path(src), Path(dst)
    cfg = OnnxModel.read_config(src)
    with atomic_path(dst, suffix=".onnx") as tmp, logger_level(None, logging.ERROR):
        # Shape inference cannot type the outputs of ONNX Runtime's own operators: they are float32 here.
        quantization.quantize_dynamic(src, tmp, weight_type=quantization.QuantType.QInt8,
                                      op_types_to_quantize=list(INT8_OP_TYPES),
                                      extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        proto = onnx.load(tmp)
        _set_metadata(proto, cfg, "int8")
        onnx.save(proto, tmp)
    return dst


def int8_bytes(model: torch.nn.Module, *, opset: int = DEFAULT_OPSET) -> bytes:
    """The int8 ONNX graph of ``model``, in memory (the fp32 graph passes through a private temporary folder)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mmadfer-int8-") as tmp:
        fp32 = Path(tmp) / "model.onnx"
        fp32.write_bytes(onnx_bytes(model, opset=opset))
        return quantize_int8(fp32, Path(tmp) / "model.int8.onnx").read_bytes()


def cached_model_path(checkpoint: str | os.PathLike, runtime: str, suffix: str, *, folder: str = "onnx",
                      cache_dir: str | os.PathLike | None = None) -> Path:
    """Where a converted model of ``checkpoint`` is kept (the file may not exist yet).

    The name is keyed by the checkpoint's SHA-256, mmadfer's version and ``runtime`` (the converting libraries and
    their versions), so a changed checkpoint or an upgrade converts again. ``folder``: the cache's subfolder.
    """
    from . import __version__

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        from .errors import CheckpointError

        raise CheckpointError(checkpoint, "no such file")
    stat = checkpoint.stat()
    digest = _file_digest(str(checkpoint.resolve()), stat.st_size, stat.st_mtime_ns)
    tag = f"{digest}|mmadfer {__version__}|{runtime}|opset {DEFAULT_OPSET}"
    key = hashlib.sha256(tag.encode()).hexdigest()[:16]
    return Path(cache_dir or default_cache_dir()) / folder / f"{checkpoint.stem}-{key}{suffix}"


def cached_int8_path(checkpoint: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where :func:`cached_int8` keeps the int8 model of ``checkpoint`` (see :func:`cached_model_path`)."""
    import onnxruntime

    return cached_model_path(checkpoint, f"onnxruntime {onnxruntime.__version__}", ".int8.onnx", cache_dir=cache_dir)


@functools.lru_cache(maxsize=16)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    """SHA-256 of a file, remembered per (path, size, mtime): a checkpoint is hashed once per process."""
    return sha256_file(path)


def cached_int8(checkpoint: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """The int8 ONNX model of a PyTorch checkpoint, converted on first use and then reused.

    The file lives at :func:`cached_int8_path`, written atomically, so an interrupted conversion leaves nothing
    behind. It holds the model's weights only, never any input. Delete the folder at any time.
    """
    from .checkpoints import load_model

    path = cached_int8_path(checkpoint, cache_dir=cache_dir)
    with file_lock(path.with_name(path.name + ".lock")):
        if not path.is_file():
            data = int8_bytes(load_model(checkpoint))
            with atomic_path(path, suffix=".onnx") as tmp:
                tmp.write_bytes(data)
    return path


def export_onnx(model: torch.nn.Module, path: str | os.PathLike, *, opset: int = DEFAULT_OPSET,
                int8: bool = False, portable: bool = False) -> dict[str, Path]:
    """Write ``model`` to ``path`` as fp32 ONNX; with ``int8`` also write ``<stem>.int8.onnx`` beside it.

    ``portable``: standard ONNX operators only (for runtimes other than ONNX Runtime); slower in ONNX Runtime.
    Returns ``{'fp32': path[, 'int8': int8_path]}``. Files are written atomically.
    """
    path = Path(path)
    data = onnx_bytes(model, opset=opset, portable=portable)
    with atomic_path(path, suffix=".onnx") as tmp:
        tmp.write_bytes(data)
    out = {"fp32": path}
    if int8:
        out["int8"] = quantize_int8(path, path.with_name(f"{path.stem}.int8.onnx"))
    return out


def as_model_inputs(video: np.ndarray | torch.Tensor,
                    audio: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Inputs for a runtime: contiguous float32 numpy; uint8 video is divided by 255, as the PyTorch model does."""
    video = video.cpu().numpy() if torch.is_tensor(video) else np.asarray(video)  # [B, T, 3, S, S]
    audio = audio.cpu().numpy() if torch.is_tensor(audio) else np.asarray(audio)  # [B, 1, 512, 128]
    if video.dtype == np.uint8:
        video = video.astype(np.float32) * np.float32(1 / 255)
    return np.ascontiguousarray(video, np.float32), np.ascontiguousarray(audio, np.float32)


class OnnxModel:
    """Runs an exported model with ONNX Runtime: ``model(video, audio) -> logits`` as numpy.

    ``source`` is a ``.onnx`` path or the bytes of one (see :func:`onnx_bytes`). ``device='cuda'`` uses the CUDA
    execution provider when this onnxruntime build has it, else the CPU. ``video`` may be uint8 (divided by 255 here,
    as the PyTorch model does) or float in [0, 1].
    """

    backend = "onnx"

    def __init__(self, source: str | os.PathLike | bytes, *, device: str | torch.device = "cpu",
                 threads: int | None = None):
        ort = require("onnxruntime", "the ONNX Runtime backend")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        available = ort.get_available_providers()
        providers = ["CPUExecutionProvider"]
        if torch.device(device).type == "cuda" and "CUDAExecutionProvider" in available:
            providers.insert(0, "CUDAExecutionProvider")
        data = source if isinstance(source, bytes) else os.fspath(source)
        self.path = None if isinstance(source, bytes) else Path(source)
        self.session = ort.InferenceSession(data, options, providers=providers)
        meta = self.session.get_modelmeta().custom_metadata_map
        self.cfg = self._config_from(meta, self.path)
        self.precision = meta.get("mmadfer_precision", "fp32")
        self.providers = self.session.get_providers()

    @staticmethod
    def _config_from(meta: dict[str, str], path: Path | None) -> ModelConfig:
        from .errors import CheckpointError

        if meta.get("mmadfer_format") != _META_FORMAT or "mmadfer_config" not in meta:
            raise CheckpointError(path, "ONNX file has no mmadfer metadata (export it with `mmadfer export`)")
        try:
            return ModelConfig.from_dict(json.loads(meta["mmadfer_config"]))
        except (TypeError, ValueError) as e:
            raise CheckpointError(path, f"invalid model config in ONNX metadata ({e})") from e

    @classmethod
    def read_config(cls, path: str | os.PathLike) -> ModelConfig:
        """The :class:`ModelConfig` stored in an exported file, without building a session."""
        onnx = require("onnx", "ONNX export")
        proto = onnx.load(os.fspath(path), load_external_data=False)
        return cls._config_from({p.key: p.value for p in proto.metadata_props}, Path(path))

    @property
    def labels(self) -> tuple[str, ...]:
        return self.cfg.labels

    def __call__(self, video: np.ndarray | torch.Tensor, audio: np.ndarray | torch.Tensor) -> np.ndarray:
        video, audio = as_model_inputs(video, audio)  # [B, T, 3, S, S], [B, 1, 512, 128] float32
        if self.precision == "int8" and len(video) > 1:
            # Dynamic int8 takes one activation scale over the whole batch: clip by clip, a clip's result does not
            # depend on its batch-mates. It costs nothing on a CPU, where batching adds no throughput.
            return np.concatenate([self(video[i:i + 1], audio[i:i + 1]) for i in range(len(video))])  # [B, C]
        return self.session.run([OUTPUT_NAME], {"video": video, "audio": audio})[0]  # [B, C]


def compare(model: torch.nn.Module, runner: OnnxModel, *, num_clips: int = 64, batch_size: int = 16,
            seed: int = 0) -> dict[str, Any]:
    """Agreement of an ONNX runner with the PyTorch model on ``num_clips`` random clips.

    Returns ``max_abs_logit_diff``, ``max_rel_logit_diff`` (relative to the largest |logit|), ``top1_agreement``
    (fraction of clips with the same predicted class) and ``num_clips``.
    """
    model = model.eval().float().cpu()
    max_abs = max_ref = 0.0
    same = 0
    for i, start in enumerate(range(0, num_clips, batch_size)):
        n = min(batch_size, num_clips - start)
        video, audio = random_inputs(model.cfg, n, seed=seed + i)
        with torch.no_grad():
            ref = model(video, audio).numpy()
        out = runner(video, audio)
        max_abs = max(max_abs, float(np.abs(out - ref).max()))
        max_ref = max(max_ref, float(np.abs(ref).max()))
        same += int((out.argmax(1) == ref.argmax(1)).sum())
    return {"num_clips": num_clips, "max_abs_logit_diff": max_abs,
            "max_rel_logit_diff": max_abs / max(max_ref, 1e-12), "top1_agreement": same / num_clips}

