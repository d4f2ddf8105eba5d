"""Sparse face detection: detect on every k-th frame of a clip and carry the boxes to the frames between.

Faces in a talking-head window move little between two sampled frames (0.32 s apart at the model's 16 frames per
5.12 s), so :class:`KeyframeDetector` runs its detector on the keyframes (every ``every``-th frame and the last) and
fills each frame between two keyframes by linear interpolation of the faces the two keyframes share. Where they do
not agree (a face appears, leaves, or jumps so far that its two boxes do not overlap by ``match_iou``), the
frames between are detected too, so tracking never invents a face. A keyframe that found fewer faces than a
neighbouring keyframe is detected again by ``fallback`` (for ``'mtcnn-fast'``: MTCNN at full resolution), so a face
the cheap detector missed once is recovered.

The frames of one call must be one clip in time order (``per_frame = False``): batches that mix clips go through
:func:`mmadfer.media.detectors.detect_clips`, which calls :meth:`KeyframeDetector.detect` once per clip.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .faces import box_iou

__all__ = ["KeyframeDetector", "match_faces"]


def match_faces(a: np.ndarray, b: np.ndarray, min_iou: float) -> list[tuple[int, int]] | None:
    """Pair the faces of two frames (``[n, 4]`` and ``[m, 4]`` boxes) one to one by greedy IoU, or None when they
    do not agree: different counts, or a pair overlapping less than ``min_iou``. Two empty frames agree (``[]``)."""
    if len(a) != len(b):
        return None
    iou = box_iou(a, b)  # [n, n]
    pairs: list[tuple[int, int]] = []
    used_a, used_b = set(), set()
    for flat in np.argsort(-iou, axis=None):
        i, j = np.unravel_index(flat, iou.shape)
        if i in used_a or j in used_b:
            continue
        if iou[i, j] < min_iou:
            return None
        pairs.append((int(i), int(j)))
        used_a.add(i)
        used_b.add(j)
    return pairs


class KeyframeDetector:
    """Detect faces on keyframes with ``detector`` and track them between (see the module docstring).

    Args:
        detector: any :class:`~mmadfer.media.detectors.Detector`; it sees only the keyframes (and the frames of
            keyframe pairs that disagree).
        every: keyframe spacing in frames of the clip (1: every frame, as ``detector`` alone).
        match_iou: two keyframes' boxes are the same face when they overlap at least this much.
        fallback: a detector for keyframes that lost a face their neighbour has (None: no second look).
    """

    per_frame = False

    def __init__(self, detector: Any, every: int = 2, match_iou: float = 0.3, fallback: Any = None):
        if int(every) < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        self.detector, self.every, self.match_iou, self.fallback = detector, int(every), float(match_iou), fallback

    @property
    def device(self):
        return self.detector.device

    def __repr__(self) -> str:
        return f"KeyframeDetector({self.detector!r}, every={self.every}, match_iou={self.match_iou})"

    def detect(self, frames: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Faces in uint8 ``[T, H, W, 3]`` frames of one clip in time order: T float32 ``[k, 4]`` boxes and T
        ``[k]`` probabilities (an interpolated face gets the lower probability of its two keyframes)."""
        frames = np.asarray(frames)
        T = len(frames)
        boxes: list[Any] = [None] * T
        probs: list[Any] = [None] * T

        def run(detector, which: list[int]) -> None:
            found, p = detector.detect(frames[which])
            for t, b, q in zip(which, found, p):
                boxes[t], probs[t] = np.asarray(b, np.float32).reshape(-1, 4), np.asarray(q, np.float32).reshape(-1)

        if T == 0:
            return [], []
        keys = sorted(set(range(0, T, self.every)) | {T - 1})
        run(self.detector, keys)
        if self.fallback is not None:  # a keyframe that lost a face its neighbour has: a second look
            lost = [k for i, k in enumerate(keys)
                    if any(len(boxes[n]) > len(boxes[k]) for n in keys[max(0, i - 1):i + 2])]
            if lost:
                run(self.fallback, lost)
        disagree: list[int] = []
        for a, c in zip(keys, keys[1:]):
            if c - a < 2:
                continue
            pairs = match_faces(boxes[a], boxes[c], self.match_iou)
            if pairs is None:
                disagree.extend(range(a + 1, c))
                continue
            for t in range(a + 1, c):
                w = (t - a) / (c - a)
                boxes[t] = np.asarray([(1 - w) * boxes[a][i] + w * boxes[c][j] for i, j in pairs],
                                      np.float32).reshape(-1, 4)
                probs[t] = np.asarray([min(probs[a][i], probs[c][j]) for i, j in pairs], np.float32)
        if disagree:
            run(self.detector, disagree)
        return boxes, probs
