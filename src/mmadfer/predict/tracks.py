"""Face tracks: detector adapters that split one window's detections into people, and stable ids across windows.

With ``multi_face``, :meth:`~mmadfer.predict.recognizer.Recognizer.prepare` detects faces once per window through a
:class:`RecordingDetector`, splits what it found into tracks (:func:`mmadfer.media.faces.split_tracks`) and crops
each track through a :class:`TrackDetector`; :class:`TrackLinker` gives the tracks of consecutive windows the same
id when they overlap.
"""
from __future__ import annotations

import numpy as np

from ..media.faces import box_iou

__all__ = ["RecordingDetector", "TrackDetector", "TrackLinker"]


class RecordingDetector:
    """Detector adapter that remembers what the wrapped detector found (so several tracks need one detection)."""

    def __init__(self, detector):
        self.detector, self.found = detector, None

    def detect(self, frames: np.ndarray):
        boxes, probs = self.detector.detect(frames)
        self.found = boxes
        return boxes, probs


class TrackDetector:
    """Detector adapter that serves one face track's boxes to :func:`prepare_window`."""

    def __init__(self, boxes: list[np.ndarray]):
        self.boxes = boxes

    def detect(self, frames: np.ndarray):
        if len(frames) != len(self.boxes):
            raise RuntimeError(f"track has {len(self.boxes)} frames, detector asked for {len(frames)}")
        return self.boxes, [np.ones(len(b), np.float32) for b in self.boxes]


class TrackLinker:
    """Gives face tracks of consecutive windows stable ids: a track keeps the id of the previous window's track whose
    mean crop box overlaps it most (IoU ≥ ``min_iou``); otherwise it gets a new id."""

    def __init__(self, min_iou: float = 0.1):
        self.min_iou = min_iou
        self.last: dict[int, np.ndarray] = {}
        self.next_id = 0

    def link(self, boxes: list[np.ndarray | None]) -> list[int]:
        means = [None if b is None else np.asarray(b, np.float64).reshape(-1, 4).mean(0) for b in boxes]
        ids: list[int] = [-1] * len(boxes)
        prev = list(self.last.items())
        if prev and any(m is not None for m in means):
            iou = box_iou(np.stack([b for _, b in prev]), np.stack([m if m is not None else np.zeros(4) for m in means]))
            for flat in np.argsort(-iou, axis=None):
                k, d = np.unravel_index(flat, iou.shape)
                if iou[k, d] < self.min_iou:
                    break
                if means[d] is not None and ids[d] < 0 and prev[k][0] not in ids:
                    ids[d] = prev[k][0]
        current = {}
        for d, m in enumerate(means):
            if m is None:
                continue
            if ids[d] < 0:
                ids[d], self.next_id = self.next_id, self.next_id + 1
            current[ids[d]] = m
        self.last = current or self.last
        return ids
