"""Face detection (MTCNN from facenet-pytorch) and the face crops the model sees.

The reference crops MAFW and raw video with MTCNN: it detects faces in every frame, takes the union of all boxes,
makes it square around its centre and clamps it to the frame (:func:`union_square_box`). That one box per clip is
``mode='union'``. For footage where the face moves a lot or several people appear, ``mode='track'`` follows one face
with a temporally smoothed square box (:func:`track_boxes`), and :func:`split_tracks` separates several people.

Detectors are chosen by name in :mod:`mmadfer.media.detectors` (``mtcnn``, ``mtcnn-fast``, ``none``).

Boxes are ``(x1, y1, x2, y2)`` in pixels. Detector output is a list with one float ``[k, 4]`` array per frame
(``k = 0`` when no face was found); crop boxes are integer ``[T, 4]`` arrays whose squares have equal sides, so a
whole clip is cropped by one gather and resized by one batched call.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from .._optional import require
from ..accel import default_device

__all__ = [
    "FaceDetector", "FaceCrops", "box_iou", "crop_boxes", "crop_faces", "split_tracks", "track_boxes",
    "union_square_box",
]

Boxes = Sequence[np.ndarray]  # one float [k, 4] array per frame


class FaceDetector:
    """Batched MTCNN face detector (facenet-pytorch; its weights ship inside the pip package, nothing is downloaded).

    The defaults are the reference's detection (name ``'mtcnn'`` in :data:`mmadfer.media.detectors.DETECTORS`).
    ``max_side`` and ``min_face_fraction`` make it cheaper on large frames (the ``'mtcnn-fast'`` detector): MTCNN's
    proposal network scans an image pyramid from ``min_face_size`` up, so its cost grows with the frame's pixels
    times ``(12 / min_face_size)**2``; a smaller frame and a larger smallest face cut both factors.

    Args:
        device: torch device; defaults to CUDA when available.
        min_face_size: smallest face searched for, in pixels of the frame MTCNN sees (its pyramid starts there).
        thresholds: the three MTCNN stage thresholds.
        batch_size: frames per MTCNN call (frames of one clip share a size, so they batch).
        max_side: if set, frames larger than this are downscaled for detection and boxes are scaled back, which
            makes high-resolution video much cheaper at the cost of missing faces smaller than
            ``min_face_size * long_side / max_side`` pixels. ``None`` (the reference) detects at full resolution.
        min_face_fraction: if set, the smallest face searched for is at least this fraction of the (detection)
            frame's shorter side, so the search scales with the resolution: 0.1 finds faces at least a tenth of
            the frame high, whatever the frame size. ``None`` (the reference): ``min_face_size`` pixels.
    """

    #: Frames are detected independently, so the frames of several clips may share one call.
    per_frame = True

    def __init__(
        self,
        device: str | torch.device | None = None,
        min_face_size: int = 20,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        batch_size: int = 32,
        max_side: int | None = None,
        min_face_fraction: float | None = None,
    ):
        facenet = require("facenet_pytorch", "face detection")
        if min_face_fraction is not None and not 0 < min_face_fraction < 1:
            raise ValueError(f"min_face_fraction must be in (0, 1), got {min_face_fraction}")
        self.device = torch.device(device or default_device())
        self.batch_size = int(batch_size)
        self.max_side = max_side
        self.min_face_size = int(min_face_size)
        self.min_face_fraction = min_face_fraction
        self._detect_face = require("facenet_pytorch.models.utils.detect_face", "face detection").detect_face
        self._mtcnn = facenet.MTCNN(
            keep_all=True, device=self.device, min_face_size=min_face_size, thresholds=list(thresholds),
            post_process=False, select_largest=False,
        )

    def smallest_face(self, height: int, width: int) -> int:
        """The smallest face searched for in a ``height`` x ``width`` frame, in that frame's pixels."""
        if self.min_face_fraction is None:
            return self.min_face_size
        return max(self.min_face_size, round(self.min_face_fraction * min(height, width)))

    @torch.inference_mode()
    def detect(self, frames: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Detect every face in uint8 RGB ``[T, H, W, 3]`` frames.

        Returns:
            ``boxes``: T float32 ``[k, 4]`` arrays (x1, y1, x2, y2), and ``probs``: T float32 ``[k]`` arrays.
        """
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
        scale = 1.0
        if self.max_side and max(frames.shape[1:3]) > self.max_side:
            scale = max(frames.shape[1:3]) / self.max_side
            h, w = round(frames.shape[1] / scale), round(frames.shape[2] / scale)
            frames = _resize_hwc(frames, (h, w))
        boxes: list[np.ndarray] = []
        probs: list[np.ndarray] = []
        min_face = self.smallest_face(*frames.shape[1:3])
        if min(frames.shape[1:3]) < min_face:  # too small to hold a face (MTCNN's pyramid would be empty)
            return [np.zeros((0, 4), np.float32)] * len(frames), [np.zeros(0, np.float32)] * len(frames)
        m = self._mtcnn
        for i in range(0, len(frames), self.batch_size):
            # what MTCNN.detect runs, with this frame size's smallest face: per frame a [k, 5] array (box, prob)
            found, _ = self._detect_face(frames[i : i + self.batch_size], min_face, m.pnet, m.rnet, m.onet,
                                         m.thresholds, m.factor, m.device)
            for f in found:
                f = np.asarray(f, np.float32).reshape(-1, 5)
                boxes.append(f[:, :4] * scale)
                probs.append(np.ascontiguousarray(f[:, 4]))
        return boxes, probs


def _resize_hwc(frames: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """uint8 ``[T, H, W, 3]`` -> ``[T, h, w, 3]``, bilinear with antialiasing (torchvision's uint8 kernel, which
    matches PIL's bilinear resize of the reference to one grey level), all frames in one call."""
    h, w = (size, size) if isinstance(size, int) else size
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # [T, 3, H, W]
    x = TF.resize(x, [h, w], interpolation=InterpolationMode.BILINEAR, antialias=True)
    return x.permute(0, 2, 3, 1).numpy()


# --------------------------------------------------------------------------------------------------------------
# boxes
# --------------------------------------------------------------------------------------------------------------
def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a [n, 4]`` with every box in ``b [m, 4]`` -> ``[n, m]``."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: np.clip(x[:, 2:] - x[:, :2], 0, None).prod(-1)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _square_boxes(cx, cy, side, width: int, height: int) -> np.ndarray:
    """Integer square boxes ``[T, 4]`` centred at (cx, cy), shrunk to fit the frame, then shifted inside it."""
    cx, cy, side = np.broadcast_arrays(*(np.asarray(v, np.float64) for v in (cx, cy, side)))
    s = np.clip(np.round(side), 1, min(width, height)).astype(np.int64)
    x1 = np.clip(np.round(cx - s / 2), 0, width - s).astype(np.int64)
    y1 = np.clip(np.round(cy - s / 2), 0, height - s).astype(np.int64)
    return np.stack([x1, y1, x1 + s, y1 + s], axis=-1).reshape(-1, 4)


def union_square_box(boxes_per_frame: Boxes, width: int, height: int) -> np.ndarray | None:
    """The reference crop: the union of all boxes of the clip, squared around its centre (side = the longer side),
    clamped to the frame. Returns an int ``[4]`` box, or None when no frame has a face."""
    found = [np.asarray(b, np.float64).reshape(-1, 4) for b in boxes_per_frame if len(b)]
    if not found:
        return None
    allb = np.concatenate(found)
    x1, y1 = allb[:, 0].min(), allb[:, 1].min()
    x2, y2 = allb[:, 2].max(), allb[:, 3].max()
    return _square_boxes((x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1), width, height)[0]


def _follow_one_face(boxes_per_frame: Boxes) -> np.ndarray:
    """One box per frame ``[T, 4]`` (NaN where none yet): start from the largest face, then take in each frame the
    face overlapping the previous pick most (or, if none overlaps, the one whose centre is nearest)."""
    picked = np.full((len(boxes_per_frame), 4), np.nan)
    prev = None
    for t, b in enumerate(boxes_per_frame):
        b = np.asarray(b, np.float64).reshape(-1, 4)
        if not len(b):
            continue
        if prev is None:
            i = int(np.argmax((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])))
        else:
            iou = box_iou(prev, b)[0]
            if iou.max() > 0:
                i = int(iou.argmax())
            else:
                gap = (b[:, :2] + b[:, 2:]) / 2 - (prev[:2] + prev[2:]) / 2
                i = int(np.linalg.norm(gap, axis=1).argmin())
        prev = picked[t] = b[i]
    return picked


def _fill_gaps(picked: np.ndarray) -> np.ndarray:
    """Frames without a box reuse the last box; frames before the first detection take the first box."""
    valid = ~np.isnan(picked[:, 0])
    idx = np.where(valid, np.arange(len(picked)), -1)
    idx = np.maximum.accumulate(idx)  # index of the last valid frame so far
    idx[idx < 0] = np.argmax(valid)  # leading frames: the first detection
    return picked[idx]


def _median_filter(x: np.ndarray, window: int) -> np.ndarray:
    """Centred running median of ``[T, ...]`` along time (edges padded by repetition)."""
    if window <= 1 or len(x) < 2:
        return x
    half = window // 2
    padded = np.concatenate([np.repeat(x[:1], half, 0), x, np.repeat(x[-1:], half, 0)])
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1, axis=0), axis=-1)


def track_boxes(boxes_per_frame: Boxes, width: int, height: int, smoothing: int = 5) -> np.ndarray | None:
    """A smoothed single-face track: int ``[T, 4]`` square boxes, or None when no frame has a face.

    Follows the largest face of the first frame that has one, frame to frame by overlap; frames without a detection
    reuse the last box. The box centre is smoothed by a running median over ``smoothing`` frames (robust to a
    single bad detection). The side is one value per clip, the largest smoothed face size, so the crop keeps one
    scale and the face does not appear to breathe; the camera pans, it does not zoom.
    """
    picked = _follow_one_face(boxes_per_frame)
    if np.isnan(picked[:, 0]).all():
        return None
    b = _fill_gaps(picked)
    centre = _median_filter((b[:, :2] + b[:, 2:]) / 2, smoothing)  # [T, 2]
    side = _median_filter(np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]), smoothing).max()
    return _square_boxes(centre[:, 0], centre[:, 1], side, width, height)


def split_tracks(boxes_per_frame: Boxes, iou: float = 0.3) -> list[list[np.ndarray]]:
    """Separate several people: link detections frame to frame by greedy IoU matching (>= ``iou``).

    Returns one entry per person, most-seen first; each is in ``boxes_per_frame`` form (one ``[0 or 1, 4]`` array
    per frame), so it can be passed to :func:`crop_faces`, :func:`track_boxes` or :func:`union_square_box`.
    """
    T = len(boxes_per_frame)
    tracks: list[list[np.ndarray]] = []
    last: list[np.ndarray] = []  # each track's most recent box
    for t, b in enumerate(boxes_per_frame):
        b = np.asarray(b, np.float32).reshape(-1, 4)
        free = set(range(len(b)))
        if last and len(b):
            ious = box_iou(np.stack(last), b)  # [tracks, dets]
            for flat in np.argsort(-ious, axis=None):
                k, d = np.unravel_index(flat, ious.shape)
                if ious[k, d] < iou:
                    break
                if d in free and tracks[k][t].shape[0] == 0:
                    tracks[k][t] = b[d : d + 1]
                    last[k] = b[d]
                    free.discard(d)
        for d in sorted(free):
            tracks.append([np.zeros((0, 4), np.float32) for _ in range(T)])
            tracks[-1][t] = b[d : d + 1]
            last.append(b[d])
    return sorted(tracks, key=lambda tr: -sum(len(x) for x in tr))


# --------------------------------------------------------------------------------------------------------------
# cropping
# --------------------------------------------------------------------------------------------------------------
@dataclass
class FaceCrops:
    """Face crops of a clip.

    Attributes:
        frames: uint8 ``[T, S, S, 3]``.
        boxes: int ``[T, 4]`` crop box used in each frame (x1, y1, x2, y2), in the input frames' pixels.
        coverage: fraction of frames in which a face was detected.
        fallback: True when no face was found at all and the centre square of the frame was used instead.
    """

    frames: np.ndarray
    boxes: np.ndarray
    coverage: float
    fallback: bool


def crop_boxes(boxes_per_frame: Boxes, width: int, height: int, mode: str = "union") -> tuple[np.ndarray, bool]:
    """The int ``[T, 4]`` crop boxes for a clip and whether they are the no-face centre-square fallback."""
    T = len(boxes_per_frame)
    if mode == "union":
        box = union_square_box(boxes_per_frame, width, height)
        boxes = None if box is None else np.repeat(box[None], T, axis=0)
    elif mode == "track":
        boxes = track_boxes(boxes_per_frame, width, height)
    else:
        raise ValueError(f"mode must be 'union' or 'track', got {mode!r}")
    if boxes is None:
        return np.repeat(_square_boxes(width / 2, height / 2, min(width, height), width, height), T, axis=0), True
    return boxes, False


def crop_faces(
    frames: np.ndarray, boxes_per_frame: Boxes, mode: str = "union", out_size: int | None = None
) -> FaceCrops:
    """Crop uint8 ``[T, H, W, 3]`` frames to the face (see :func:`crop_boxes`), optionally resized to ``out_size``
    (bilinear with antialiasing, as PIL). Without any face, the centre square is used and ``fallback`` is set."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[0] == 0 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [T, H, W, 3] with T > 0, got {frames.shape}")
    T, H, W = frames.shape[:3]
    if len(boxes_per_frame) != T:
        raise ValueError(f"{len(boxes_per_frame)} box lists for {T} frames")
    boxes, fallback = crop_boxes(boxes_per_frame, W, H, mode)
    coverage = float(np.mean([len(b) > 0 for b in boxes_per_frame])) if T else 0.0
    s = int(boxes[0, 2] - boxes[0, 0])  # every box of a clip has the same side
    if (boxes == boxes[0]).all():
        x1, y1 = boxes[0, :2]
        crops = frames[:, y1 : y1 + s, x1 : x1 + s]  # [T, s, s, 3] view
    else:  # one gather for all frames: rows [T, s, 1] x cols [T, 1, s]
        offs = np.arange(s)
        rows = (boxes[:, 1, None] + offs)[:, :, None]
        cols = (boxes[:, 0, None] + offs)[:, None, :]
        crops = frames[np.arange(T)[:, None, None], rows, cols]
    if out_size is not None and out_size != s:
        crops = _resize_hwc(crops, out_size)
    return FaceCrops(frames=np.ascontiguousarray(crops), boxes=boxes, coverage=coverage, fallback=fallback)
