"""One decoded window -> model inputs per face track: what the recogniser runs in its own process or in workers.

A :class:`Preparer` holds only what preparation needs (the preprocessing profile, the face detector, whether
several people get their own rows), not the model, so worker processes of :mod:`mmadfer.predict.archive` can
carry it cheaply and any runtime (ONNX Runtime, OpenVINO) stays in the main process.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import PreprocessConfig
from ..media.faces import split_tracks
from ..media.pipeline import SampledWindow, finish_window, sample_window
from .tracks import RecordingDetector, TrackDetector

__all__ = ["Preparer", "WindowInfo", "MIN_TRACK_PRESENCE"]

#: With ``multi_face``, a person counts as a separate track if seen in at least this fraction of a window's frames.
MIN_TRACK_PRESENCE = 0.5


@dataclass(frozen=True)
class WindowInfo:
    """Where a window is (what a timeline row needs of it, without its decoded frames)."""

    path: str
    start_s: float
    end_s: float
    has_audio: bool


@dataclass
class Preparer:
    """Prepares windows under ``preprocess``, with ``detector`` (None: frames used whole) and ``multi_face``."""

    preprocess: PreprocessConfig
    detector: Any = None
    multi_face: bool = True

    def prepare(self, clip) -> list[dict[str, Any]]:
        """Model inputs for one decoded :class:`~mmadfer.media.decode.Clip`, one entry per face track."""
        return self.prepare_sampled(sample_window(clip, self.preprocess))

    def prepare_sampled(self, window: SampledWindow, found: list[np.ndarray] | None = None) -> list[dict[str, Any]]:
        """As :meth:`prepare`, from a sampled window. ``found``: the detector's boxes for ``window.frames`` when
        they were detected elsewhere (batched on the GPU); by default the detector runs here.

        Faces are detected once. If ``multi_face`` is on and two or more people each appear in at least
        ``MIN_TRACK_PRESENCE`` of the frames, each person is cropped on their own
        (:func:`~mmadfer.media.faces.split_tracks`) instead of one crop that spans them all.
        """
        detector = self.detector if found is None or self.detector is None else TrackDetector(found)
        if detector is None or not self.multi_face:
            return [finish_window(window, self.preprocess, detector=detector)]
        recorded = RecordingDetector(detector)
        first = finish_window(window, self.preprocess, detector=recorded)
        found = recorded.found or []
        tracks = [t for t in split_tracks(found)
                  if sum(len(b) > 0 for b in t) >= MIN_TRACK_PRESENCE * max(1, len(found))]
        if len(tracks) < 2:
            return [first]
        return [finish_window(window, self.preprocess, detector=TrackDetector(t)) for t in tracks]
