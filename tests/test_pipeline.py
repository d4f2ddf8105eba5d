"""prepare_window: decoded clip -> model inputs (frame rule, face crop, resize, audio profile)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mmadfer.config import PreprocessConfig
from mmadfer.errors import MediaError
from mmadfer.media.decode import Clip, read_clip
from mmadfer.media.encode import write_video
from mmadfer.media.fbank import audio_features
from mmadfer.media.pipeline import prepare_window

SILENCE = (0.0 + 4.2677393) / (2 * 4.5689974)


def make_clip(n: int, *, h: int = 40, w: int = 40, audio: bool = True) -> Clip:
    frames = np.zeros((n, h, w, 3), np.uint8)
    frames[..., 0] = (np.arange(n) % 256)[:, None, None]  # frame i has red level i
    sr = 16000
    wave = (0.2 * np.sin(2 * np.pi * 500 * np.arange(sr * 2) / sr)).astype(np.float32)[None] if audio else \
        np.zeros((0, 0), np.float32)
    return Clip(frames=frames, fps=25.0, waveform=wave, sample_rate=sr if audio else 0, has_audio=audio,
                frame_times=np.arange(n) / 25.0, path="mem.mp4", start_s=0.0, duration_s=n / 25.0)


def test_test_rule_resize_and_audio_without_detector():
    cfg = PreprocessConfig(img_size=32)
    clip = make_clip(100)
    out = prepare_window(clip, cfg, detector=None)
    expected = [int(100 / 16 / 2 + 100 / 16 * k) for k in range(16)]  # centre of each of 16 segments
    assert out["frame_indices"] == expected
    video = out["video"]
    assert video.dtype == torch.uint8 and video.shape == (16, 3, 32, 32)
    assert video[:, 0, 16, 16].tolist() == expected  # flat frames keep their level through the resize
    torch.testing.assert_close(out["audio"], audio_features(clip.waveform, 16000, cfg))
    assert out["audio"].shape == (1, 512, 128) and out["has_audio"]
    assert math.isnan(out["face_coverage"]) and out["boxes"] is None and not out["face_fallback"]


def test_short_clip_repeats_last_frame_and_silent_clip():
    out = prepare_window(make_clip(5, h=30, w=50, audio=False), PreprocessConfig(img_size=16), detector=None)
    assert out["frame_indices"] == [0, 1, 2, 3, 4] + [4] * 11
    assert out["video"].shape == (16, 3, 16, 16)  # non-square input is resized, as the reference's test transform
    assert not out["has_audio"]
    torch.testing.assert_close(out["audio"], torch.full((1, 512, 128), SILENCE))


def test_train_rule_is_random_but_reproducible():
    clip = make_clip(64)
    cfg = PreprocessConfig(img_size=16)
    a = prepare_window(clip, cfg, detector=None, train=True, generator=torch.Generator().manual_seed(3))
    b = prepare_window(clip, cfg, detector=None, train=True, generator=torch.Generator().manual_seed(3))
    assert a["frame_indices"] == b["frame_indices"]
    assert all(4 * k <= i < 4 * (k + 1) for k, i in enumerate(a["frame_indices"]))


def test_empty_clip_is_a_media_error():
    with pytest.raises(MediaError, match="no video frames"):
        prepare_window(make_clip(0), PreprocessConfig(), detector=None)


def test_16k_profile_is_used():
    clip = make_clip(20)
    cfg = PreprocessConfig(img_size=16, audio_profile="16k-mono")
    torch.testing.assert_close(prepare_window(clip, cfg, detector=None)["audio"],
                               audio_features(clip.waveform, 16000, cfg))


def test_with_detector_on_a_real_face(tmp_path):
    pytest.importorskip("facenet_pytorch")
    skdata = pytest.importorskip("skimage.data")
    from mmadfer.media.faces import FaceDetector, _resize_hwc

    img = _resize_hwc(skdata.astronaut()[None], 192)[0]
    frames = np.stack([np.roll(img, 2 * i, axis=1) for i in range(6)])
    sr = 8000
    path = write_video(tmp_path / "a.mp4", frames, 6, (0.1 * np.sin(np.arange(sr) / 5)).astype(np.float32), sr)
    clip = read_clip(path)
    out = prepare_window(clip, PreprocessConfig(img_size=48), detector=FaceDetector(device="cpu"))
    assert out["video"].shape == (16, 3, 48, 48) and out["face_coverage"] == 1.0 and not out["face_fallback"]
    x1, y1, x2, y2 = out["boxes"][0]
    assert 50 < x1 < 80 and 15 < y1 < 35 and 30 < x2 - x1 < 60  # the astronaut's face at 192 px
    assert out["has_audio"]
