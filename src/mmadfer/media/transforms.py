"""Clip transforms: the reference's test resize and train augmentation, on uint8 video tensors.

Both take and return uint8 ``[T, 3, H, W]``; the model divides by 255 on the device, which keeps host-to-GPU traffic
four times smaller than float32. The clip is wrapped as a :class:`torchvision.tv_tensors.Video`, so
``torchvision.transforms.v2`` draws each random parameter once per call and applies it to every frame: a clip keeps
one crop, one flip and one brightness, as in the reference's ``Group*`` transforms.
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import InterpolationMode

__all__ = ["TestTransform", "TrainTransform", "clip_transform", "AUGMENTATIONS", "check_video"]

#: Train-time augmentation levels: the reference recipe, a light one (crops keep most of the face: for small
#: frames and synthetic cues), or none.
AUGMENTATIONS = ("reference", "light", "none")


def check_video(video: torch.Tensor) -> None:
    """Raise ValueError unless ``video`` is a uint8 ``[T, 3, H, W]`` tensor with at least one frame."""
    if not isinstance(video, torch.Tensor) or video.dtype != torch.uint8 or video.ndim != 4 or video.shape[1] != 3:
        desc = f"{video.dtype} {tuple(video.shape)}" if isinstance(video, torch.Tensor) else type(video).__name__
        raise ValueError(f"expected a uint8 video tensor [T, 3, H, W], got {desc}")
    if video.shape[0] == 0:
        raise ValueError("expected a video with at least one frame, got T = 0")


class _ClipTransform(nn.Module):
    """Applies a v2 pipeline to a whole clip at once and returns a plain uint8 tensor."""

    def __init__(self, size: int, pipeline: v2.Transform):
        super().__init__()
        if int(size) <= 0:
            raise ValueError(f"size must be positive, got {size}")
        self.size = int(size)
        self.pipeline = pipeline

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        check_video(video)
        out = self.pipeline(tv_tensors.Video(video))  # [T, 3, H, W] -> [T, 3, size, size], one draw for all T
        return out.as_subclass(torch.Tensor)

    def extra_repr(self) -> str:
        return f"size={self.size}"


class TestTransform(_ClipTransform):
    """Bilinear resize to ``size x size`` with antialiasing (what PIL's bilinear ``resize`` does on the reference's
    uint8 JPEGs). The aspect ratio is not kept: face crops are square already, as in the reference's ``GroupResize``."""

    __test__ = False  # not a pytest test class

    def __init__(self, size: int):
        super().__init__(size, v2.Resize((int(size), int(size)), interpolation=InterpolationMode.BILINEAR, antialias=True))


class TrainTransform(_ClipTransform):
    """The reference's train augmentation, drawn once per clip, in its order:

    1. brightness jitter 0.5 (a factor uniform in [0.5, 1.5]),
    2. random-resized crop to ``size x size``: area 8-100 % of the frame, aspect ratio 3/4-4/3, bilinear,
    3. horizontal flip with probability 0.5.

    Randomness comes from torch's global generator, which :class:`torch.utils.data.DataLoader` seeds per worker.
    """

    def __init__(self, size: int, *, crop_scale: tuple[float, float] = (0.08, 1.0), brightness: float = 0.5):
        s = int(size)
        super().__init__(s, v2.Compose([
            v2.ColorJitter(brightness=brightness),
            v2.RandomResizedCrop(s, scale=crop_scale, ratio=(3 / 4, 4 / 3),
                                 interpolation=InterpolationMode.BILINEAR, antialias=True),
            v2.RandomHorizontalFlip(p=0.5),
        ]))


def clip_transform(size: int, train: bool, augment: str = "reference") -> _ClipTransform:
    """The transform a dataset applies: the test resize, or the train augmentation at level ``augment``
    (``'reference'``: the paper's; ``'light'``: crops of 60-100 % of the area and brightness 0.2; ``'none'``)."""
    if augment not in AUGMENTATIONS:
        raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {augment!r}")
    if not train or augment == "none":
        return TestTransform(size)
    if augment == "light":
        return TrainTransform(size, crop_scale=(0.6, 1.0), brightness=0.2)
    return TrainTransform(size)
