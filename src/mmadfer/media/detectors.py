"""Face detectors by name: the :class:`Detector` protocol, the :data:`DETECTORS` table and :func:`make_detector`.

Everything that crops faces (``predict``, ``prepare``, ``serve``, ``export --calibrate``, distillation) takes a
detector built here from a name, so a new detector is one entry in :data:`DETECTORS` and one builder below.

- ``mtcnn`` (the default, the reference): facenet-pytorch's MTCNN on every sampled frame at the decoded
  resolution, smallest face 20 px.
- ``mtcnn-fast``: the same MTCNN on frames downscaled to ``max_side`` (default 320) pixels on their long side, with
  the smallest face a fraction ``min_face`` (default 0.1) of the short side, on every ``every``-th (default 2)
  frame of a clip, boxes interpolated between (:class:`~mmadfer.media.keyframes.KeyframeDetector`; a keyframe
  that lost a face is detected again at full resolution). Options go after a colon:
  ``mtcnn-fast:every=3,max_side=256,min_face=0.08``. Faces smaller than ``min_face`` of the frame are not found.
- ``none``: no detection; the frames are used whole (footage that is face crops already).

Only detectors whose weights ship inside a package from the package index, under a permissive licence, belong
here: nothing is downloaded at run time (docs: README "Faster face detection" lists the candidates checked).
"""
from __future__ import annotations

import warnings
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np
import torch

from .faces import FaceDetector
from .keyframes import KeyframeDetector

__all__ = ["Detector", "DETECTORS", "FAST_DEFAULTS", "parse_detector", "make_detector", "detector_spec",
           "detect_clips"]


@runtime_checkable
class Detector(Protocol):
    """What cropping faces needs of a face detector.

    ``detect(frames)`` takes uint8 RGB ``[T, H, W, 3]`` frames of one clip in time order and returns ``(boxes,
    probs)``: T float32 ``[k, 4]`` arrays of ``(x1, y1, x2, y2)`` pixel boxes in those frames (``k = 0``: no face)
    and T float32 ``[k]`` arrays of confidences. ``device`` is where it runs (a batched GPU detector is fed from the
    main process). ``per_frame`` says whether frames are detected independently, so that the frames of several
    clips may share one call (:func:`detect_clips`).
    """

    device: torch.device
    per_frame: bool

    def detect(self, frames: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        ...


#: name -> what it is (``--detector`` choices; ``auto`` is ``mtcnn``, or no detection without facenet-pytorch).
DETECTORS: dict[str, str] = {
    "mtcnn": "MTCNN on every sampled frame at the decoded resolution (the reference)",
    "mtcnn-fast": "MTCNN on downscaled keyframes, boxes interpolated between "
                  "(options: every=2, max_side=320, min_face=0.1)",
    "none": "no detection: frames used whole (for face-cropped footage)",
}
#: The options of ``mtcnn-fast`` and their defaults.
FAST_DEFAULTS: dict[str, float] = {"every": 2, "max_side": 320, "min_face": 0.1}


def parse_detector(spec: str) -> tuple[str, dict[str, float]]:
    """``'NAME[:key=value,...]'`` -> ``(name, options)``, checked against :data:`DETECTORS`.

    Raises:
        ValueError: an unknown name or option, or a value that is not a number (the message names it).
    """
    name, _, rest = str(spec).partition(":")
    name = name.strip().lower()
    if name == "auto":
        name = "mtcnn"
    if name not in DETECTORS:
        raise ValueError(f"unknown face detector {spec!r}; choose from {', '.join(DETECTORS)}")
    allowed = FAST_DEFAULTS if name == "mtcnn-fast" else {}
    options: dict[str, float] = {}
    for item in filter(None, (x.strip() for x in rest.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if key not in allowed or not eq:
            known = ", ".join(f"{k}=VALUE" for k in allowed) or "none"
            raise ValueError(f"face detector {name!r} has no option {item!r} (options: {known})")
        try:
            options[key] = float(value)
        except ValueError:
            raise ValueError(f"face detector option {key} must be a number, got {value!r}") from None
    return name, options


def detector_spec(asked: Any, made: Any) -> str:
    """One canonical name for the detector :func:`make_detector` made from ``asked``, every option spelled out
    (``'mtcnn-fast:every=2,max_side=320,min_face=0.1'``), for cache keys and records: two runs that crop faces
    alike get the same name. A detector object is named by its class."""
    if made is None:
        return "none"
    if not isinstance(asked, str):
        return type(made).__name__
    name, options = parse_detector(asked)
    if name != "mtcnn-fast":
        return name
    o = {**FAST_DEFAULTS, **options}
    return name + ":" + ",".join(f"{k}={o[k]:g}" for k in FAST_DEFAULTS)


def make_detector(detector: Any = "auto", device: str | torch.device | None = None, **options: Any) -> Any:
    """The face detector a caller asked for, on ``device``.

    ``detector``: a name of :data:`DETECTORS` with optional options (``'mtcnn-fast:every=3'``; ``options`` as
    keywords override them), ``'auto'`` (``mtcnn``; without facenet-pytorch it warns and returns None: whole frames
    are used instead of face crops), None or ``'none'`` (no detection: None), or a detector object, returned as it
    is.
    """
    if detector is None or not isinstance(detector, str):
        return detector
    name, parsed = parse_detector(detector)
    parsed.update(options)
    if name == "none":
        return None
    if name == "mtcnn":
        try:
            return FaceDetector(device)
        except ImportError as e:
            if detector.strip().lower() != "auto":
                raise
            warnings.warn(f"face detection is off ({e}); whole frames are used instead of face crops", stacklevel=2)
            return None
    o = {**FAST_DEFAULTS, **parsed}
    fast = FaceDetector(device, max_side=int(o["max_side"]), min_face_fraction=float(o["min_face"]), min_face_size=12)
    return KeyframeDetector(fast, every=int(o["every"]), fallback=FaceDetector(device))


def detect_clips(detector: Any, clips: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
    """Boxes for several clips (each uint8 ``[T_i, H, W, 3]``, all of one frame size): one detector call for all
    of them when the detector is ``per_frame`` (a batch on the GPU), else one call per clip (a tracking detector
    must not follow a face from one clip into the next)."""
    if not clips:
        return []
    if not getattr(detector, "per_frame", False):
        return [detector.detect(c)[0] for c in clips]
    boxes, _ = detector.detect(np.concatenate(clips))
    out, at = [], 0
    for c in clips:
        out.append(boxes[at:at + len(c)])
        at += len(c)
    return out
