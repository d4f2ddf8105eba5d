"""Decoded clip -> model inputs: the one preprocessing path shared by ``mmadfer predict`` and ``mmadfer prepare``.

For a :class:`~mmadfer.media.decode.Clip` it samples ``cfg.num_frames`` frames with the reference index rule, crops
them to the face (when a detector is given), resizes them to ``cfg.img_size`` like the reference's test transform and
computes the normalised fbank of the clip's audio under ``cfg.audio_profile``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..config import PreprocessConfig
from ..errors import MediaError
from ..timing import stage
from .decode import Clip
from .faces import FaceDetector, crop_faces
from .fbank import audio_features
from .sampling import sample_indices
from .transforms import TestTransform

__all__ = ["prepare_window", "sample_window", "finish_window", "SampledWindow"]


@dataclass
class SampledWindow:
    """A window after decoding and sampling, before face detection: what :func:`finish_window` needs.

    ``frames`` are the distinct sampled frames ``[U, H, W, 3]`` (short clips repeat their last frame, which is
    detected once), ``inverse`` maps each of the ``T`` sampled positions to one of them, and ``audio`` is the
    normalised fbank ``[1, F, M]``. Face detection can then run wherever is best (a worker process, or batched on the
    GPU in the main process) and give the same crops.
    """

    frames: np.ndarray  # [U, H, W, 3] uint8
    inverse: np.ndarray  # [T] int
    indices: np.ndarray  # [T] which of the clip's frames were sampled
    audio: torch.Tensor  # [1, F, M] float32
    has_audio: bool


def sample_window(clip: Clip, cfg: PreprocessConfig, *, train: bool = False,
                  generator: torch.Generator | None = None) -> SampledWindow:
    """Sample ``cfg.num_frames`` frames of ``clip`` (the reference index rule) and compute its fbank.

    Raises:
        MediaError: if the clip has no video frames.
    """
    if clip.num_frames == 0:
        raise MediaError(clip.path, f"no video frames in {clip.start_s:.2f}-{clip.end_s:.2f}s")
    indices = sample_indices(clip.num_frames, cfg.num_frames, train=train, generator=generator)
    unique, inverse = np.unique(indices, return_inverse=True)  # short clips repeat their last frame
    with stage("fbank"):
        audio = audio_features(clip.waveform if clip.has_audio else None, clip.sample_rate, cfg)
    return SampledWindow(frames=clip.frames[unique], inverse=inverse, indices=indices, audio=audio,
                         has_audio=bool(clip.has_audio and clip.waveform.size > 0))


def finish_window(window: SampledWindow, cfg: PreprocessConfig, *, detector: FaceDetector | None) -> dict[str, Any]:
    """Crop a :class:`SampledWindow` to the face (detecting on its distinct frames) and resize it: the model inputs
    of :func:`prepare_window`."""
    frames = window.frames[window.inverse]  # [T, H, W, 3]
    coverage, fallback, boxes = math.nan, False, None
    if detector is not None:
        with stage("faces"):
            found, _ = detector.detect(window.frames)
        with stage("crop"):
            crops = crop_faces(frames, [found[i] for i in window.inverse], mode=cfg.face_crop)
        frames, boxes, coverage, fallback = crops.frames, crops.boxes, crops.coverage, crops.fallback
    with stage("crop"):
        video = TestTransform(cfg.img_size)(torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2))
    return {
        "video": video,  # [T, 3, S, S] uint8
        "audio": window.audio,  # [1, 512, 128] float32
        "face_coverage": coverage,
        "face_fallback": fallback,
        "has_audio": window.has_audio,
        "boxes": boxes,
        "frame_size": tuple(window.frames.shape[1:3]),  # (H, W) of the decoded frames the boxes are in
        "frame_indices": window.indices,
    }


def prepare_window(
    clip: Clip,
    cfg: PreprocessConfig,
    *,
    detector: FaceDetector | None,
    train: bool = False,
    generator: torch.Generator | None = None,
) -> dict[str, Any]:
    """Turn one clip (a whole short video or one window of a long one) into model inputs.

    Faces are detected on the sampled frames only (each distinct frame once) and cropped with ``cfg.face_crop``
    ('union': the reference's one square box per clip; 'track': a smoothed per-frame box). With ``detector=None``
    the frames are taken to be face crops already (as DFEW ships them) and only resized. The two steps are
    :func:`sample_window` and :func:`finish_window`.

    Returns:
        dict with ``video`` uint8 ``[cfg.num_frames, 3, S, S]`` (S = ``cfg.img_size``; divide by 255 for the
        model), ``audio`` float32 ``[1, cfg.audio_frames, cfg.num_mel_bins]``, ``face_coverage`` (fraction of the
        sampled frames with a face; NaN without a detector), ``face_fallback`` (no face anywhere: centre crop),
        ``has_audio``, ``boxes`` (int ``[num_frames, 4]`` crop boxes in the clip's pixels, or None), ``frame_size``
        (the clip's ``(H, W)``) and ``frame_indices`` (which of the clip's frames were used).
    Raises:
        MediaError: if the clip has no video frames.
    """
    return finish_window(sample_window(clip, cfg, train=train, generator=generator), cfg, detector=detector)
