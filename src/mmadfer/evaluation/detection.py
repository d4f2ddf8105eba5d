"""How far a face detector's boxes agree with a reference detector's: per-face IoU, lost windows, extra faces.

Used to check a faster detector (``mtcnn-fast``) against the reference (MTCNN on every frame at the decoded
resolution) on the same sampled frames. Every face the reference found in a frame is scored by the best IoU of the
candidate's boxes in that frame (0 when the candidate found nothing there). A window **loses** a face when the
reference found one in some frame of the window and the candidate's boxes overlap none of the reference's (IoU
< ``hit_iou``) in any frame of it: the model would then see no face, or another one, for that window.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..media.faces import box_iou

__all__ = ["face_ious", "extra_faces", "window_lost", "longest_run", "iou_summary", "HIT_IOU"]

#: Two boxes are the same face at this IoU or more.
HIT_IOU = 0.5


def face_ious(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]) -> np.ndarray:
    """For each face of each frame of ``reference`` (one ``[k, 4]`` array per frame), the best IoU of the
    candidate's boxes in the same frame: a flat float array, one entry per reference face."""
    if len(reference) != len(candidate):
        raise ValueError(f"{len(reference)} reference frames but {len(candidate)} candidate frames")
    out = [box_iou(r, c).max(1) if len(c) else np.zeros(len(r)) for r, c in zip(reference, candidate) if len(r)]
    return np.concatenate(out) if out else np.zeros(0)


def extra_faces(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray], hit_iou: float = HIT_IOU) -> int:
    """Candidate boxes that match no reference box of their frame (faces the reference does not see)."""
    return int(sum((box_iou(c, r).max(1) < hit_iou).sum() if len(r) else len(c)
                   for r, c in zip(reference, candidate) if len(c)))


def window_lost(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray], hit_iou: float = HIT_IOU) -> bool:
    """Whether the candidate lost the face in this window (see the module docstring)."""
    ious = face_ious(reference, candidate)
    return bool(len(ious) and ious.max() < hit_iou)


def longest_run(flags: Sequence[bool]) -> int:
    """The longest run of consecutive true values (consecutive windows that lost the face)."""
    best = run = 0
    for f in flags:
        run = run + 1 if f else 0
        best = max(best, run)
    return best


def iou_summary(ious: np.ndarray) -> dict[str, Any]:
    """Median, mean, 5th and 10th percentiles, minimum, and the shares at or above 0.5 and 0.9 of an IoU array."""
    x = np.asarray(ious, np.float64)
    if not len(x):
        return {"n": 0}
    return {"n": int(len(x)), "median": round(float(np.median(x)), 4), "mean": round(float(x.mean()), 4),
            "p10": round(float(np.percentile(x, 10)), 4), "p5": round(float(np.percentile(x, 5)), 4),
            "min": round(float(x.min()), 4), "share_ge_0.5": round(float((x >= 0.5).mean()), 4),
            "share_ge_0.9": round(float((x >= 0.9).mean()), 4)}
