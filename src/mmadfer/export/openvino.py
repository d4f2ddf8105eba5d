"""Static int8 with OpenVINO: the fastest CPU path (profile in BENCHMARKS.md).

ONNX Runtime's dynamic int8 (:mod:`mmadfer.export.onnx`) quantises activations at run time and runs the attention
products and the element-wise work between the int8 GEMMs in fp32, one pass each, with its int8 GEMMs already near
the cores' peak. OpenVINO's CPU plugin runs the attention products in int8 too and fuses the element-wise work into a
few passes, but it needs each activation's int8 range ahead of time. So the conversion here is *post-training static
quantisation* with NNCF:

1. the model is exported to standard ONNX (``export_onnx(..., portable=True)``) and read by OpenVINO;
2. NNCF runs it on a few calibration clips (:func:`~mmadfer.export.calibration.calibration_inputs`, or your own
   footage: :func:`~mmadfer.export.calibration.footage_inputs`) to fix every activation's range, with its
   transformer preset (SmoothQuant, per-channel weights, fast bias correction) and 7-bit weights that cannot
   saturate on CPUs without VNNI (:func:`quantize_options`);
3. the int8 model is saved as OpenVINO IR (``.xml`` + ``.bin``) with its :class:`~mmadfer.ModelConfig` in the IR's
   runtime info, so the files are self-describing like an ``.onnx`` export.

The numerical cost is measured, not assumed: ``mmadfer bench --what cpu`` reports the top-1 agreement with fp32 on
random clips and on rendered talking faces (seeds that calibration does not use), and the relative logit error on the
golden weights. Ranges depend on the weights as much as on the data, so every checkpoint is calibrated on its own
(and the result cached, :func:`mmadfer.runtime.cache.cached_openvino_int8`); for footage far from faces, calibrate on
it (``mmadfer export --openvino M.xml --calibrate VIDEOS``).
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from .._optional import require
from ..io import publish
from .calibration import calibration_inputs
from .onnx import INPUT_NAMES, logger_level, onnx_bytes

__all__ = ["openvino_int8", "quantize_options", "CONFIG_RT_KEY", "TRAINED_ON_RT_KEY"]

#: Where the IR's runtime info keeps the model's :class:`~mmadfer.ModelConfig` (as JSON).
CONFIG_RT_KEY = ["mmadfer", "config"]
#: where the IR keeps the model's ``trained_on`` record (:mod:`mmadfer.provenance`), as JSON
TRAINED_ON_RT_KEY = ["mmadfer", "trained_on"]


def _read_fp32(model: torch.nn.Module):
    """The model as an OpenVINO ``Model`` with batch 1 (portable ONNX export in a private temporary folder)."""
    ov = require("openvino", "the OpenVINO backend")
    cfg = model.cfg
    with tempfile.TemporaryDirectory(prefix="mmadfer-ov-") as tmp:
        src = Path(tmp) / "model.onnx"
        src.write_bytes(onnx_bytes(model, portable=True))
        ov_model = ov.Core().read_model(src)
    video, audio = (1, cfg.num_frames, 3, cfg.img_size, cfg.img_size), (1, 1, cfg.audio_frames, cfg.audio_mel_bins)
    ov_model.reshape(dict(zip(INPUT_NAMES, (video, audio))))
    return ov_model


@contextlib.contextmanager
def _quiet_nncf() -> Iterator[None]:
    """NNCF draws progress bars on stdout and logs its statistics at INFO: noise in a CLI run (or a timeline piped
    out of ``mmadfer predict``). Its warnings and errors still come through."""
    with logger_level("nncf", logging.WARNING), contextlib.redirect_stdout(io.StringIO()):
        yield


def quantize_options(nncf: Any) -> dict[str, Any]:
    """``nncf.quantize`` options, every one that decides the result spelled out so that a new NNCF release cannot
    change the model behind a default.

    ``overflow_fix=ENABLE`` quantises the weights of every layer to 7 bits (half the int8 range). CPUs without VNNI
    (AVX2 ones such as AMD Zen 3, and AVX-512 ones before Cascade Lake) multiply u8 by s8 with ``vpmaddubsw``, whose
    int16 sums of pairs saturate with full-range weights; NNCF's default fixes only the first layer. On such a CPU
    the saturation moved the tiny test model's logits by 26% of their largest value (4% with the fix). The
    converted file may run on any CPU, so the fix applies everywhere (VNNI CPUs lose one bit of weight precision).
    """
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    return dict(model_type=nncf.ModelType.TRANSFORMER, preset=nncf.QuantizationPreset.MIXED,
                fast_bias_correction=True,
                advanced_parameters=AdvancedQuantizationParameters(overflow_fix=OverflowFix.ENABLE))


def openvino_int8(model: torch.nn.Module, path: str | os.PathLike, *,
                  calibration: Sequence[tuple[np.ndarray, np.ndarray]] | None = None) -> Path:
    """Quantise ``model`` to static int8 and save it as OpenVINO IR at ``path`` (``.xml``, with a ``.bin`` beside it).

    ``calibration``: model inputs ``(video, audio)`` with batch 1, as :func:`calibration_inputs` returns (the
    default). Clips from the footage the model will see make the ranges fit it best. Both files are written to a
    temporary folder first and moved into place, the ``.bin`` before the ``.xml``, so a reader that finds the
    ``.xml`` finds a whole model.
    """
    ov = require("openvino", "the OpenVINO backend")
    nncf = require("nncf", "OpenVINO int8 quantisation")
    path = Path(path).with_suffix(".xml")
    model = model.float().cpu().eval()
    calibration = list(calibration if calibration is not None else calibration_inputs(model.cfg))
    if not calibration:
        raise ValueError("calibration needs at least one clip")
    fp32 = _read_fp32(model)
    data = nncf.Dataset([{"video": v, "audio": a} for v, a in calibration])
    with _quiet_nncf():
        int8 = nncf.quantize(fp32, data, subset_size=len(calibration), **quantize_options(nncf))
    int8.set_rt_info(json.dumps(model.cfg.to_dict()), CONFIG_RT_KEY)
    if getattr(model, "trained_on", None) is not None:
        int8.set_rt_info(json.dumps(dict(model.trained_on)), TRAINED_ON_RT_KEY)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.stem}.", dir=path.parent))
    try:
        ov.save_model(int8, tmp / "model.xml", compress_to_fp16=False)
        for suffix in (".bin", ".xml"):
            publish(tmp / f"model{suffix}", path.with_suffix(suffix))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path
