"""mmadfer: audio-visual dynamic facial expression recognition (MMA-DFER, Chumachenko et al., CVPR-W 2024).

Public names are imported lazily so that ``import mmadfer`` and the CLI start fast; each resolves on first use.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._privacy import disable_telemetry as _disable_telemetry

_disable_telemetry()  # before any dependency can start its telemetry (see mmadfer._privacy)

__version__ = "0.1.0"

_EXPORTS = {
    "ModelConfig": "mmadfer.config",
    "PreprocessConfig": "mmadfer.config",
    "MmadferError": "mmadfer.errors",
    "MediaError": "mmadfer.errors",
    "CheckpointError": "mmadfer.errors",
    "MMADFER": "mmadfer.model.mmadfer",
    "load_official_checkpoint": "mmadfer.checkpoints",
    "load_encoder_weights": "mmadfer.checkpoints",
    "save_checkpoint": "mmadfer.checkpoints",
    "load_checkpoint": "mmadfer.checkpoints",
    "load_model": "mmadfer.checkpoints",
    "kaldi_fbank": "mmadfer.media.fbank",
    "audio_features": "mmadfer.media.fbank",
    "read_clip": "mmadfer.media.decode",
    "open_video": "mmadfer.media.decode",
    "Clip": "mmadfer.media.decode",
    "VideoReader": "mmadfer.media.decode",
    "write_video": "mmadfer.media.encode",
    "kaldi_fbank_batch": "mmadfer.media.fbank",
    "FaceDetector": "mmadfer.media.faces",
    "make_detector": "mmadfer.media.detectors",
    "prepare_window": "mmadfer.media.pipeline",
    "build_dataset": "mmadfer.data.datasets",
    "DFEW": "mmadfer.data.datasets",
    "MAFW": "mmadfer.data.datasets",
    "CSVClipDataset": "mmadfer.data.datasets",
    "SampleError": "mmadfer.data.datasets",
    "Recognizer": "mmadfer.predict.recognizer",
    "plot_timeline": "mmadfer.predict.timeline",
    "anonymize_video": "mmadfer.predict.anonymize",
    "run_realtime": "mmadfer.predict.realtime",
    "export_onnx": "mmadfer.export.onnx",
    "OnnxModel": "mmadfer.runtime.onnx",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mmadfer' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .checkpoints import load_checkpoint, load_encoder_weights, load_model, load_official_checkpoint, save_checkpoint
    from .config import ModelConfig, PreprocessConfig
    from .errors import CheckpointError, MediaError, MmadferError
    from .data.datasets import DFEW, MAFW, CSVClipDataset, SampleError, build_dataset
    from .media.decode import Clip, VideoReader, open_video, read_clip
    from .media.encode import write_video
    from .media.detectors import make_detector
    from .media.faces import FaceDetector
    from .media.fbank import audio_features, kaldi_fbank, kaldi_fbank_batch
    from .media.pipeline import prepare_window
    from .model.mmadfer import MMADFER
    from .export.onnx import export_onnx
    from .predict.anonymize import anonymize_video
    from .predict.realtime import run_realtime
    from .predict.recognizer import Recognizer
    from .predict.timeline import plot_timeline
    from .runtime.onnx import OnnxModel
