"""Calibration inputs for static int8: the clips NNCF runs to fix every activation's int8 range.

:func:`calibration_inputs` renders talking faces and noise (the default); :func:`footage_inputs` cuts and crops
windows of your own videos exactly as ``mmadfer predict`` does (:mod:`mmadfer.media.windows`,
:func:`mmadfer.media.detectors.make_detector`, :func:`mmadfer.media.pipeline.prepare_window`).
"""
from __future__ import annotations

import itertools
import os
import warnings
from typing import Any, Callable, Sequence

import numpy as np

from ..config import ModelConfig
from ..data.synthetic import rendered_inputs
from ..errors import MediaError
from ..media.decode import open_video
from ..media.detectors import make_detector
from ..media.pipeline import prepare_window
from ..media.windows import DEFAULT_MAX_SIDE, kept_windows
from .verify import random_inputs

__all__ = ["calibration_inputs", "heldout_inputs", "footage_inputs", "DEFAULT_CALIBRATION_CLIPS", "HELDOUT_CLIPS"]

#: Calibration clips per conversion: half rendered talking faces with a voice, half random noise (the widest
#: ranges an input can reach). 8 keeps the reference model's conversion short (BENCHMARKS.md).
DEFAULT_CALIBRATION_CLIPS = 8
#: Held-out clips an int8 model's top-1 agreement with PyTorch is measured on after a conversion (half rendered
#: faces, half noise, from seeds calibration never uses). 64 clips: the 99% bar then means no disagreement at all,
#: and the check costs about 64 PyTorch clips, once per converted model (its cost counts in ``auto``'s pay-off rule).
HELDOUT_CLIPS = 64
#: The seed of the held-out clips: far from calibration's (1234 + i), so no held-out clip was calibrated on.
HELDOUT_SEED = 100_000


def calibration_inputs(cfg: ModelConfig, num_clips: int = DEFAULT_CALIBRATION_CLIPS, *,
                       seed: int = 1234) -> list[tuple[np.ndarray, np.ndarray]]:
    """Model inputs for calibration: ``(video [1, T, 3, S, S] float32 in [0, 1], audio [1, 1, F, M] float32)``.

    Every other clip is a cartoon face that talks or stays calm, with a low or high voice
    (:func:`mmadfer.data.synthetic.rendered_inputs`, prepared exactly as a video is for prediction); the rest are
    uniform-noise frames with Gaussian fbanks (:func:`mmadfer.export.verify.random_inputs`), the widest ranges an input
    reaches.
    """
    faces = iter(rendered_inputs(cfg, (num_clips + 1) // 2, seed=seed))
    out = []
    for i in range(num_clips):
        video, audio = random_inputs(cfg, 1, seed=seed + i) if i % 2 else next(faces)
        out.append((video.numpy(), audio.numpy()))
    return out


def heldout_inputs(cfg: ModelConfig, num_clips: int = HELDOUT_CLIPS, *,
                   batch_size: int = 8) -> list[tuple[np.ndarray, np.ndarray]]:
    """Inputs calibration did not see, for measuring an int8 model's agreement with PyTorch: the same kinds as
    :func:`calibration_inputs` (rendered faces and noise) from other seeds, in batches of ``batch_size``."""
    clips = calibration_inputs(cfg, num_clips, seed=HELDOUT_SEED)
    batches = [clips[i:i + batch_size] for i in range(0, len(clips), batch_size)]
    return [(np.concatenate([v for v, _ in b]), np.concatenate([a for _, a in b])) for b in batches]


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
    detector = make_detector(detector, "cpu")
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
