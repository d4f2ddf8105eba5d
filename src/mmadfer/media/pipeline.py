"""Decoded clip -> model inputs: the one preprocessing path shared by ``mmadfer predict`` and ``mmadfer prepare``.

For a :class:`~mmadfer.media.decode.Clip` it samples ``cfg.num_frames`` frames with the reference index rule, crops
them to the face (when a detector is given), resizes them to ``cfg.img_size`` like the reference's test transform and
computes the normalised fbank of the clip's audio under ``cfg.audio_profile``.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..config import PreprocessConfig
from ..errors import MediaError
from .decode import Clip
from .faces import FaceDetector, crop_faces
from .fbank import audio_features
from .sampling import sample_indices
from .transforms import TestTransform

__all__ = ["prepare_window"]


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
    the frames are taken to be face crops already (as DFEW ships them) and only resized.

    Returns:
        dict with ``video`` uint8 ``[cfg.num_frames, 3, S, S]`` (S = ``cfg.img_size``; divide by 255 for the
        model), ``audio`` float32 ``[1, cfg.audio_frames, cfg.num_mel_bins]``, ``face_coverage`` (fraction of the
        sampled frames with a face; NaN without a detector), ``face_fallback`` (no face anywhere: centre crop),
        ``has_audio``, ``boxes`` (int ``[num_frames, 4]`` crop boxes in the clip's pixels, or None) and
        ``frame_indices`` (which of the clip's frames were used).
    Raises:
        MediaError: if the clip has no video frames.
    """
    if clip.num_frames == 0:
        raise MediaError(clip.path, f"no video frames in {clip.start_s:.2f}-{clip.end_s:.2f}s")
    indices = sample_indices(clip.num_frames, cfg.num_frames, train=train, generator=generator)
    frames = clip.frames[indices]  # [T, H, W, 3]
    coverage, fallback, boxes = math.nan, False, None
    if detector is not None:
        unique, inverse = np.unique(indices, return_inverse=True)  # short clips repeat their last frame
        found, _ = detector.detect(clip.frames[unique])
        crops = crop_faces(frames, [found[i] for i in inverse], mode=cfg.face_crop)
        frames, boxes, coverage, fallback = crops.frames, crops.boxes, crops.coverage, crops.fallback
    video = TestTransform(cfg.img_size)(torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2))
    audio = audio_features(clip.waveform if clip.has_audio else None, clip.sample_rate, cfg)
    return {
        "video": video,  # [T, 3, S, S] uint8
        "audio": audio,  # [1, 512, 128] float32
        "face_coverage": coverage,
        "face_fallback": fallback,
        "has_audio": bool(clip.has_audio and clip.waveform.size > 0),
        "boxes": boxes,
        "frame_indices": indices,
    }
