"""ONNX export of :class:`~mmadfer.MMADFER` and its int8 quantisation (run by :mod:`mmadfer.runtime.onnx`).

The graph is the model alone: ``video`` float32 ``[B, T, 3, S, S]`` in [0, 1] and ``audio`` float32
``[B, 1, 512, 128]`` (a normalised fbank) in, ``logits`` ``[B, C]`` out, with a dynamic batch axis. Decoding, face
cropping and the Kaldi fbank stay outside the graph, in :func:`mmadfer.media.pipeline.prepare_window`, so that an
exported model sees exactly the inputs the PyTorch one does.

The model's :class:`~mmadfer.ModelConfig` (class names and preprocessing profile included) is stored in the ONNX
file's metadata, so an ``.onnx`` file is as self-describing as a checkpoint: ``Recognizer.from_checkpoint('m.onnx')``
needs nothing else.

By default each encoder attention is exported as one ONNX Runtime ``com.microsoft::Attention`` node
(:mod:`mmadfer.export.attention`), which ONNX Runtime runs with its fused kernel; ``portable=True`` writes standard ONNX
operators only, for other runtimes.

int8 uses ONNX Runtime's dynamic quantisation (:func:`onnxruntime.quantization.quantize_dynamic`): weights of the
MatMul/Gemm layers and of the attention nodes' QKV projections become int8 and activations are quantised on the fly,
with no calibration data. It changes the logits slightly; :func:`mmadfer.export.verify.compare` measures by how much
(max |Δlogit| and top-1 agreement with the PyTorch model).
"""
from __future__ import annotations

import contextlib
import gc
import io
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import torch

from .._memory import returned_memory
from .._optional import require
from ..config import ModelConfig
from ..checkpoint_checks import check_config
from ..errors import CheckpointError
from ..io import atomic_path
from ..provenance import record_from_json
from .attention import ORT_DOMAIN, fused_attention
from .verify import random_inputs

__all__ = ["export_onnx", "onnx_bytes", "int8_bytes", "int8_onnx", "quantize_int8", "read_onnx_config", "config_from_metadata",
           "trained_on_from_metadata", "TRAINED_ON_KEY",
           "logger_level", "DEFAULT_OPSET", "INT8_OP_TYPES", "INPUT_NAMES", "OUTPUT_NAME"]

DEFAULT_OPSET = 17
INPUT_NAMES = ("video", "audio")
OUTPUT_NAME = "logits"
_META_FORMAT = "mmadfer-onnx-1"
#: the metadata key of the model's ``trained_on`` record (:mod:`mmadfer.provenance`), as JSON
TRAINED_ON_KEY = "mmadfer_trained_on"


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


@contextlib.contextmanager
def _weights_released_after_tracing(model: torch.nn.Module) -> Iterator[None]:
    """Within the block, an ONNX export of ``model`` empties the model's weights that the traced graph no longer
    reads once the graph is built, before the graph is serialised: constant folding turns each Linear weight into
    a transposed copy, so without this the export holds the weights twice, then a third time as the serialised
    graph. The model is unusable afterwards: only for a model about to be dropped.

    The hook sits on the TorchScript exporter's ``_model_to_graph`` (the one that returns the graph and its
    initializers); where a PyTorch release lacks it, nothing is released and the export only takes more memory.
    """
    try:
        from torch.onnx._internal.torchscript_exporter import utils as exporter
    except ImportError:  # pragma: no cover - another PyTorch layout: export as is
        yield
        return
    real = getattr(exporter, "_model_to_graph", None)
    if real is None:  # pragma: no cover
        yield
        return

    def model_to_graph(*args, **kwargs):
        graph, params, out = real(*args, **kwargs)
        kept = {t.data_ptr() for t in params.values() if isinstance(t, torch.Tensor)}
        for p in model.parameters():
            if p.data_ptr() not in kept:
                p.data = torch.empty(0, dtype=p.dtype)
        return graph, params, out

    exporter._model_to_graph = model_to_graph
    try:
        yield
    finally:
        exporter._model_to_graph = real


def _with_metadata(data: bytes, cfg: ModelConfig, precision: str, trained_on: Mapping[str, Any] | None) -> bytes:
    onnx = require("onnx", "ONNX export")
    proto = onnx.load_from_string(data)
    _set_metadata(proto, cfg, precision, trained_on)
    return proto.SerializeToString()


def _set_metadata(proto, cfg: ModelConfig, precision: str, trained_on: Mapping[str, Any] | None) -> None:
    """mmadfer's metadata on an ONNX graph: the config to rebuild the pre- and post-processing, the precision, and
    what the model was trained on (so an exported demo model still says it is one)."""
    meta = {"mmadfer_format": _META_FORMAT, "mmadfer_config": json.dumps(cfg.to_dict()),
            "mmadfer_precision": precision}
    if trained_on is not None:
        meta[TRAINED_ON_KEY] = json.dumps(dict(trained_on))
    keep = [p for p in proto.metadata_props if p.key not in meta]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v


def config_from_metadata(meta: dict[str, str], path: str | os.PathLike | None) -> ModelConfig:
    """The :class:`ModelConfig` an exported file carries in its metadata (``path`` names it in errors)."""
    if meta.get("mmadfer_format") != _META_FORMAT or "mmadfer_config" not in meta:
        raise CheckpointError(path, "ONNX file has no mmadfer metadata (export it with `mmadfer export`)")
    try:
        cfg = ModelConfig.from_dict(json.loads(meta["mmadfer_config"]))
    except (TypeError, ValueError) as e:
        raise CheckpointError(path, f"invalid model config in ONNX metadata ({e})") from e
    check_config(cfg, path)
    return cfg


def trained_on_from_metadata(meta: Mapping[str, str]) -> dict[str, Any] | None:
    """The ``trained_on`` record an exported file carries (None: not recorded, or unreadable)."""
    return record_from_json(meta.get(TRAINED_ON_KEY))


def _read_metadata(path: str | os.PathLike) -> dict[str, str]:
    onnx = require("onnx", "ONNX export")
    proto = onnx.load(os.fspath(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


def read_onnx_config(path: str | os.PathLike) -> ModelConfig:
    """The :class:`ModelConfig` stored in an exported file, without building a session."""
    return config_from_metadata(_read_metadata(path), Path(path))


def onnx_bytes(model: torch.nn.Module, *, opset: int = DEFAULT_OPSET, portable: bool = False) -> bytes:
    """The fp32 ONNX graph of ``model`` (with its config in the metadata), in memory: nothing touches the disk."""
    require("onnx", "ONNX export")
    buf = io.BytesIO()
    _export(model.float().cpu(), buf, opset, portable)
    return _with_metadata(buf.getvalue(), model.cfg, "fp32", getattr(model, "trained_on", None))


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


#: What int8 quantises. Not ``Conv``: the one convolution (the patch embedding) runs several times slower as
#: ``ConvInteger`` than in fp32 on a CPU (BENCHMARKS.md) and holds under 1% of the FLOPs.
INT8_OP_TYPES = ("MatMul", "Gemm", "Attention")


def quantize_int8(src: str | os.PathLike, dst: str | os.PathLike, *, cfg: ModelConfig | None = None,
                  trained_on: Mapping[str, Any] | None = None) -> Path:
    """Dynamic int8 quantisation of an fp32 ONNX file (weights int8, activations quantised at run time), file to
    file. ``cfg`` and ``trained_on``: the model's config and record, stored in ``dst``'s metadata (default, with
    no ``cfg``: both read from ``src``'s)."""
    onnx = require("onnx", "int8 quantisation")
    quantization = require("onnxruntime.quantization", "int8 quantisation")
    src, dst = Path(src), Path(dst)
    if cfg is None:
        meta = _read_metadata(src)
        cfg, trained_on = config_from_metadata(meta, src), trained_on_from_metadata(meta)
    with atomic_path(dst, suffix=".onnx") as tmp, logger_level(None, logging.ERROR):
        # Shape inference cannot type the outputs of ONNX Runtime's own operators: they are float32 here.
        quantization.quantize_dynamic(src, tmp, weight_type=quantization.QuantType.QInt8,
                                      op_types_to_quantize=list(INT8_OP_TYPES),
                                      extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        proto = onnx.load(tmp)
        _set_metadata(proto, cfg, "int8", trained_on)
        onnx.save(proto, tmp)
    return dst


def int8_onnx(load: Callable[[], torch.nn.Module], dst: str | os.PathLike, *, opset: int = DEFAULT_OPSET,
              workdir: str | os.PathLike | None = None, consume: bool = True) -> Path:
    """Write the int8 ONNX graph of the model ``load()`` returns to ``dst``, holding as few copies of the weights at
    a time as the exporter allows, so that converting a large model fits in little memory.

    The fp32 graph is exported straight to a file in a private temporary folder (in ``workdir``, default beside
    ``dst``; removed afterwards), never to bytes in memory; with ``consume`` (the default) the model's weights are
    emptied as soon as the traced graph holds its own copy of them (:func:`_weights_released_after_tracing`), so
    ``load`` must build a model for this call alone (``consume=False`` for a model you keep). The model is then
    dropped and ONNX Runtime quantises file to file. The result is the same file :func:`export_onnx` then
    :func:`quantize_int8` write.
    """
    dst = Path(dst)
    folder = Path(workdir) if workdir is not None else dst.parent
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".mmadfer-int8-", dir=folder) as tmp, returned_memory():
        fp32 = Path(tmp) / "model.onnx"
        model = load()
        cfg, trained_on = model.cfg, getattr(model, "trained_on", None)
        model = model.float().cpu()
        with _weights_released_after_tracing(model) if consume else contextlib.nullcontext():
            _export(model, fp32, opset)
        del model
        gc.collect()  # the model's weights go before the quantiser reads the graph's copy of them
        return quantize_int8(fp32, dst, cfg=cfg, trained_on=trained_on)


def int8_bytes(model: torch.nn.Module, *, opset: int = DEFAULT_OPSET) -> bytes:
    """The int8 ONNX graph of ``model``, in memory (the fp32 graph passes through a private temporary folder)."""
    with tempfile.TemporaryDirectory(prefix="mmadfer-int8-") as tmp:
        return int8_onnx(lambda: model, Path(tmp) / "model.int8.onnx", opset=opset, consume=False).read_bytes()


def export_onnx(model: torch.nn.Module, path: str | os.PathLike, *, opset: int = DEFAULT_OPSET,
                int8: bool = False, portable: bool = False) -> dict[str, Path]:
    """Write ``model`` to ``path`` as fp32 ONNX; with ``int8`` also write ``<stem>.int8.onnx`` beside it.

    ``portable``: standard ONNX operators only (for runtimes other than ONNX Runtime); slower in ONNX Runtime.
    Returns ``{'fp32': path[, 'int8': int8_path]}``. Files are written atomically.
    """
    onnx = require("onnx", "ONNX export")
    path = Path(path)
    with atomic_path(path, suffix=".onnx") as tmp:
        _export(model.float().cpu(), tmp, opset, portable)  # straight to the file: no copy of the graph in memory
        proto = onnx.load(tmp)
        _set_metadata(proto, model.cfg, "fp32", getattr(model, "trained_on", None))
        onnx.save(proto, tmp)
        del proto
    out = {"fp32": path}
    if int8:
        out["int8"] = quantize_int8(path, path.with_name(f"{path.stem}.int8.onnx"))
    return out
