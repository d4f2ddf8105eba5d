"""Static int8 with OpenVINO: the fastest CPU path (about 0.91 s per clip on 2 cores, BENCHMARKS.md).

ONNX Runtime's dynamic int8 (:mod:`mmadfer.export`) quantises activations at run time and runs the attention
products and the element-wise work between the int8 GEMMs in fp32, one pass each; on the 2-core CPU that left it at
1.14 s per clip, with its int8 GEMMs already near the cores' peak. OpenVINO's CPU plugin runs the attention products
in int8 too and fuses the element-wise work into a few passes (profile in BENCHMARKS.md), but it needs each
activation's int8 range ahead of time. So the conversion here is *post-training static quantisation* with NNCF:

1. the model is exported to standard ONNX (``export_onnx(..., portable=True)``) and read by OpenVINO;
2. NNCF runs it on a few calibration clips (:func:`calibration_inputs`, or your own footage:
   :func:`footage_inputs`) to fix every activation's range, with its transformer preset (SmoothQuant, per-channel
   weights, fast bias correction) and 7-bit weights that cannot saturate on CPUs without VNNI
   (:func:`quantize_options`);
3. the int8 model is saved as OpenVINO IR (``.xml`` + ``.bin``) with its :class:`~mmadfer.ModelConfig` in the IR's
   runtime info, so the files are self-describing like an ``.onnx`` export.

The numerical cost is measured, not assumed: ``mmadfer bench --what cpu`` reports the top-1 agreement with fp32 on
random clips and on rendered talking faces (seeds that calibration does not use), and the relative logit error on the
golden weights. Ranges depend on the weights as much as on the data, so every checkpoint is calibrated on its own
(and the result cached, :func:`cached_openvino_int8`); for footage far from faces, calibrate on it
(``mmadfer export --openvino M.xml --calibrate VIDEOS``).
"""
from __future__ import annotations

import contextlib
import io
import itertools
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from ._optional import require
from .config import ModelConfig

__all__ = ["calibration_inputs", "footage_inputs", "openvino_int8", "cached_openvino_int8", "cached_openvino_int8_path",
           "OpenVinoModel", "DEFAULT_CALIBRATION_CLIPS"]

#: Calibration clips per conversion: half rendered talking faces with a voice, half random noise (the widest
#: ranges an input can reach). 8 keeps the conversion near 2 minutes for the reference model.
DEFAULT_CALIBRATION_CLIPS = 8
_RT_KEY = ["mmadfer", "config"]


def calibration_inputs(cfg: ModelConfig, num_clips: int = DEFAULT_CALIBRATION_CLIPS, *,
                       seed: int = 1234) -> list[tuple[np.ndarray, np.ndarray]]:
    """Model inputs for calibration: ``(video [1, T, 3, S, S] float32 in [0, 1], audio [1, 1, F, M] float32)``.

    Every other clip is a cartoon face that talks or stays calm, with a low or high voice
    (:func:`mmadfer.data.synthetic.rendered_inputs`, prepared exactly as a video is for prediction); the rest are
    uniform-noise frames with Gaussian fbanks (:func:`mmadfer.export.random_inputs`), the widest ranges an input
    reaches.
    """
    from .data.synthetic import rendered_inputs
    from .export import random_inputs

    faces = iter(rendered_inputs(cfg, (num_clips + 1) // 2, seed=seed))
    out = []
    for i in range(num_clips):
        video, audio = random_inputs(cfg, 1, seed=seed + i) if i % 2 else next(faces)
        out.append((video.numpy(), audio.numpy()))
    return out


def footage_inputs(cfg: ModelConfig, videos: Sequence[str | os.PathLike],
                   num_clips: int = 4 * DEFAULT_CALIBRATION_CLIPS, *,
                   detector: Any = "auto",
                   on_error: Callable[[str | os.PathLike, Exception], None] | None = None,
                   ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Calibration inputs from your own videos: the first windows of each, cut and with faces cropped as
    ``mmadfer predict`` cuts and crops them (``detector``: ``'auto'`` for MTCNN, ``None`` for footage that is face
    crops already).

    Ranges calibrated on the footage a model will see fit it better than rendered clips do. Windows are taken in
    turn from each video (an even share of what is still missing) until ``num_clips`` are found. A video that cannot
    be read is skipped: ``on_error(path, error)`` is told, or a warning raised.
    """
    import warnings

    from .errors import MediaError
    from .media.decode import open_video
    from .media.pipeline import prepare_window
    from .predict import DEFAULT_MAX_SIDE, _make_detector, kept_windows

    detector = _make_detector(detector, "cpu")
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for i, path in enumerate(videos):
        per_video = -(-(num_clips - len(out)) // (len(videos) - i))  # an even share of what is still missing
        try:
            with open_video(path, max_side=DEFAULT_MAX_SIDE) as reader:
                for clip in itertools.islice(kept_windows(reader, cfg.preprocess.window_s), per_video):
                    p = prepare_window(clip, cfg.preprocess, detector=detector)
                    out.append(((p["video"][None].float() / 255).numpy(), p["audio"][None].float().numpy()))
        except MediaError as e:
            if on_error is None:
                warnings.warn(f"calibration skips {e}", stacklevel=2)
            else:
                on_error(path, e)
    if not out:
        raise ValueError(f"no readable video among the {len(videos)} calibration input(s)")
    return out


def _read_fp32(model: torch.nn.Module):
    """The model as an OpenVINO ``Model`` with batch 1 (portable ONNX export in a private temporary folder)."""
    from .export import INPUT_NAMES, onnx_bytes

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
    from .export import logger_level

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
    from .io import publish

    path = Path(path).with_suffix(".xml")
    model = model.float().cpu().eval()
    calibration = list(calibration if calibration is not None else calibration_inputs(model.cfg))
    if not calibration:
        raise ValueError("calibration needs at least one clip")
    fp32 = _read_fp32(model)
    data = nncf.Dataset([{"video": v, "audio": a} for v, a in calibration])
    with _quiet_nncf():
        int8 = nncf.quantize(fp32, data, subset_size=len(calibration), **quantize_options(nncf))
    int8.set_rt_info(json.dumps(model.cfg.to_dict()), _RT_KEY)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.stem}.", dir=path.parent))
    try:
        ov.save_model(int8, tmp / "model.xml", compress_to_fp16=False)
        for suffix in (".bin", ".xml"):
            publish(tmp / f"model{suffix}", path.with_suffix(suffix))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def cached_openvino_int8_path(checkpoint: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where :func:`cached_openvino_int8` keeps the model of ``checkpoint``: ``<cache>/openvino/<name>-<key>.int8.xml``,
    keyed by the checkpoint's SHA-256 and the versions of mmadfer, OpenVINO and NNCF
    (:func:`mmadfer.export.cached_model_path`)."""
    from .export import cached_model_path

    ov, nncf = require("openvino", "the OpenVINO backend"), require("nncf", "OpenVINO int8 quantisation")
    return cached_model_path(checkpoint, f"openvino {ov.__version__}|nncf {nncf.__version__}|7-bit weights", ".int8.xml",
                             folder="openvino", cache_dir=cache_dir)


def cached_openvino_int8(checkpoint: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """The OpenVINO int8 model of a PyTorch checkpoint, converted on first use (about 2 min for the reference
    model) and then reused from :func:`cached_openvino_int8_path`. It holds weights and nothing of any video."""
    from .checkpoints import load_model

    from .io import file_lock

    path = cached_openvino_int8_path(checkpoint, cache_dir=cache_dir)
    with file_lock(path.with_name(path.name + ".lock")):
        if not (path.is_file() and path.with_suffix(".bin").is_file()):
            openvino_int8(load_model(checkpoint), path)
    return path


class OpenVinoModel:
    """Runs an OpenVINO IR written by :func:`openvino_int8`: ``model(video, audio) -> logits`` as numpy.

    The model has batch 1, so a batch runs clip by clip; with static int8 a clip's result never depends on its
    batch-mates anyway. ``threads``: CPU threads (default: all cores).
    """

    backend = "openvino"

    def __init__(self, path: str | os.PathLike, *, threads: int | None = None):
        from .errors import CheckpointError

        ov = require("openvino", "the OpenVINO backend")
        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(self.path, "no such file")
        core = ov.Core()
        try:
            model = core.read_model(self.path)
            self.cfg = ModelConfig.from_dict(json.loads(model.get_rt_info(_RT_KEY).astype(str)))
        except RuntimeError as e:
            raise CheckpointError(self.path, f"not an mmadfer OpenVINO model ({str(e).splitlines()[0]})") from e
        except (TypeError, ValueError) as e:
            raise CheckpointError(self.path, f"invalid model config in the OpenVINO runtime info ({e})") from e
        options = {"PERFORMANCE_HINT": "LATENCY"}
        if threads:
            options["INFERENCE_NUM_THREADS"] = int(threads)
        self._request = core.compile_model(model, "CPU", options).create_infer_request()
        self.precision = "int8"

    @property
    def labels(self) -> tuple[str, ...]:
        return self.cfg.labels

    def __call__(self, video: np.ndarray | torch.Tensor, audio: np.ndarray | torch.Tensor) -> np.ndarray:
        from .export import as_model_inputs

        video, audio = as_model_inputs(video, audio)  # [B, T, 3, S, S] float32, [B, 1, F, M] float32
        out = [self._request.infer({"video": video[i:i + 1], "audio": audio[i:i + 1]})[0] for i in range(len(video))]
        return np.concatenate(out).astype(np.float32, copy=False)  # [B, C]

