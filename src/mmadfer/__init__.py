"""mmadfer: audio-visual dynamic facial expression recognition (MMA-DFER, Chumachenko et al., CVPR-W 2024).

Public names are imported lazily so that ``import mmadfer`` and the CLI start fast; each resolves on first use.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

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
    "Recognizer": "mmadfer.predict",
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
    from .media.decode import Clip, open_video, read_clip
    from .media.fbank import audio_features, kaldi_fbank
    from .model.mmadfer import MMADFER
    from .predict import Recognizer
