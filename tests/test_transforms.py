"""Clip transforms: PIL-equivalent test resize; train augmentation drawn once per clip."""
import numpy as np
import pytest
import torch
from PIL import Image

from mmadfer.media.transforms import TestTransform, TrainTransform


def _noise_frame(h=90, w=70, seed=0) -> np.ndarray:
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


def test_test_transform_matches_pil_bilinear_and_stays_uint8():
    frames = np.stack([_noise_frame(seed=s) for s in range(3)])  # [T, H, W, 3]
    out = TestTransform(32)(torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous())
    assert out.dtype == torch.uint8 and out.shape == (3, 3, 32, 32) and type(out) is torch.Tensor
    for t in range(3):
        ref = np.asarray(Image.fromarray(frames[t]).resize((32, 32), Image.BILINEAR)).astype(int)
        diff = np.abs(out[t].permute(1, 2, 0).numpy().astype(int) - ref)
        assert diff.max() <= 1 and diff.mean() < 0.05


def test_train_transform_applies_one_draw_to_every_frame():
    # an asymmetric image so that crops and flips change it; every frame identical
    frame = torch.from_numpy(_noise_frame(64, 80)).permute(2, 0, 1)
    clip = frame.expand(8, -1, -1, -1).contiguous()
    tf = TrainTransform(24)
    torch.manual_seed(0)
    outs = [tf(clip) for _ in range(6)]
    for out in outs:
        assert out.dtype == torch.uint8 and out.shape == (8, 3, 24, 24)
        assert torch.equal(out, out[:1].expand_as(out)), "frames of one clip got different augmentations"
    # ... while different calls draw different augmentations
    assert len({o[0].numpy().tobytes() for o in outs}) == len(outs)


def test_train_transform_flips_sometimes():
    ramp = torch.arange(40, dtype=torch.uint8).mul(6).expand(2, 3, 40, 40).contiguous()  # brighter to the right
    tf = TrainTransform(16)
    torch.manual_seed(1)
    left_brighter = [bool(o[0, 0, :, 0].float().mean() > o[0, 0, :, -1].float().mean()) for o in map(tf, [ramp] * 40)]
    assert 5 < sum(left_brighter) < 35


@pytest.mark.parametrize("bad", [torch.zeros(4, 3, 8, 8), torch.zeros(4, 8, 8, 3, dtype=torch.uint8),
                                 torch.zeros(0, 3, 8, 8, dtype=torch.uint8)])
def test_transforms_reject_bad_input(bad):
    with pytest.raises(ValueError, match="video"):
        TestTransform(8)(bad)


def test_augment_levels():
    from mmadfer.media.transforms import TestTransform, TrainTransform, clip_transform

    clip = torch.randint(0, 256, (4, 3, 48, 48), dtype=torch.uint8)
    assert torch.equal(clip_transform(32, True, "none")(clip), TestTransform(32)(clip))
    assert isinstance(clip_transform(32, False, "reference"), TestTransform)  # test time never augments
    light = clip_transform(32, True, "light")
    assert isinstance(light, TrainTransform) and light(clip).shape == (4, 3, 32, 32)
    with pytest.raises(ValueError, match="augment"):
        clip_transform(32, True, "heavy")
