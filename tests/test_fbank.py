"""Kaldi fbank against torchaudio's golden outputs, an independent float64 re-derivation, and the audio profiles."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mmadfer.config import PreprocessConfig
from mmadfer.media.fbank import audio_features, fbank_frame_count, kaldi_fbank, kaldi_fbank_batch, resample_to

GOLDEN = Path(__file__).parents[1].parent / "shared" / "golden"


def golden_waveform(sr: int, seconds: float = 6.0) -> np.ndarray:
    """The chirp + tones recipe of ``golden/README.md``."""
    t = np.arange(int(sr * seconds), dtype=np.float64) / sr
    w = (0.3 * np.sin(2 * np.pi * (200 * t + 150 * t * t)) + 0.1 * np.sin(2 * np.pi * 1000 * t)
         + 0.05 * np.sin(2 * np.pi * 3000 * t * (1 + 0.1 * np.sin(2 * np.pi * 2 * t))))
    return w.astype(np.float32)


def kaldi_fbank_numpy(w: np.ndarray, sr: int, bins: int = 128) -> np.ndarray:
    """Kaldi's recipe written out literally, frame by frame, in float64 numpy: an independent reference."""
    w = w.astype(np.float64) - w.mean()
    shift, size = int(sr * 0.010), int(sr * 0.025)
    nfft = 1
    while nfft < size:
        nfft *= 2
    n = np.arange(size)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / (size - 1))
    mel = lambda f: 1127.0 * np.log(1.0 + f / 700.0)  # noqa: E731
    lo, hi = mel(20.0), mel(sr / 2)
    edges = lo + np.arange(bins + 2) * (hi - lo) / (bins + 1)
    fft_mel = mel(np.arange(nfft // 2) * sr / nfft)
    banks = np.zeros((bins, nfft // 2 + 1))
    for b in range(bins):
        left, centre, right = edges[b : b + 3]
        up = (fft_mel - left) / (centre - left)
        down = (right - fft_mel) / (right - centre)
        banks[b, : nfft // 2] = np.maximum(0.0, np.minimum(up, down))
    out = []
    for start in range(0, len(w) - size + 1, shift):
        x = w[start : start + size].copy()
        x -= x.mean()
        x = x - 0.97 * np.concatenate([x[:1], x[:-1]])
        spec = np.abs(np.fft.rfft(x * window, nfft)) ** 2
        out.append(np.log(np.maximum(banks @ spec, np.finfo(np.float32).eps)))
    return np.array(out)


@pytest.mark.parametrize("sr", [16000, 44100, 48000])
def test_matches_torchaudio_golden(sr):
    ref = np.load(GOLDEN / f"fbank_ref_sr{sr}.npy")
    ours = kaldi_fbank(golden_waveform(sr), sr).numpy()
    assert ours.shape == ref.shape == (598, 128)
    diff = np.abs(ours - ref)
    assert diff.max() <= 1e-2 and diff.mean() <= 1e-4, (diff.max(), diff.mean())


def test_independent_reference_agrees_with_golden():
    """Validates the numpy re-derivation used below for rates that have no golden file."""
    ref = np.load(GOLDEN / "fbank_ref_sr16000.npy")
    diff = np.abs(kaldi_fbank_numpy(golden_waveform(16000), 16000) - ref)
    assert diff.max() <= 1e-2 and diff.mean() <= 1e-4


@pytest.mark.parametrize("sr", [8000, 11025, 22050, 32000])
def test_any_rate_matches_independent_reference(sr):
    w = golden_waveform(sr, seconds=2.0)
    ours = kaldi_fbank(w, sr).numpy()
    ref = kaldi_fbank_numpy(w, sr)
    assert ours.shape == ref.shape == (fbank_frame_count(len(w), sr), 128)
    diff = np.abs(ours - ref)
    assert diff.max() <= 1e-2 and diff.mean() <= 1e-4, (diff.max(), diff.mean())


def test_first_channel_mean_removed_and_input_types():
    sr = 16000
    w = golden_waveform(sr, seconds=1.0)
    expected = kaldi_fbank(w, sr)
    other = np.random.default_rng(0).standard_normal(len(w)).astype(np.float32)
    stereo = np.stack([w + 0.25, other])  # a DC offset on channel 0, noise on channel 1
    torch.testing.assert_close(kaldi_fbank(stereo, sr), expected, atol=1e-2, rtol=0)  # float32 rounding of the DC
    torch.testing.assert_close(kaldi_fbank(torch.from_numpy(w), sr), expected)
    assert not torch.allclose(kaldi_fbank(other, sr), expected, atol=1.0)
    with pytest.raises(TypeError, match="floating point"):
        kaldi_fbank((w * 32767).astype(np.int16), sr)
    with pytest.raises(ValueError, match="shape"):
        kaldi_fbank(np.zeros((1, 1, 400), np.float32), sr)


def test_batch_equals_one_by_one_and_float64():
    sr = 22050
    rng = np.random.default_rng(1)
    batch = (0.1 * rng.standard_normal((3, sr))).astype(np.float32)
    out = kaldi_fbank_batch(batch, sr)
    assert out.shape == (3, fbank_frame_count(sr, sr), 128)
    for i in range(3):
        torch.testing.assert_close(out[i], kaldi_fbank(batch[i], sr))
    out64 = kaldi_fbank_batch(batch.astype(np.float64), sr)
    assert out64.dtype == torch.float64
    torch.testing.assert_close(out64.float(), out, atol=2e-2, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batch_on_gpu_matches_cpu():
    w = torch.from_numpy(np.stack([golden_waveform(48000, 1.0), golden_waveform(48000, 1.0)[::-1].copy()]))
    torch.testing.assert_close(kaldi_fbank_batch(w.cuda(), 48000).cpu(), kaldi_fbank_batch(w, 48000), atol=1e-2, rtol=0)


def test_too_short_gives_no_frames():
    assert kaldi_fbank(np.zeros(399, np.float32), 16000).shape == (0, 128)
    assert kaldi_fbank(np.zeros(400, np.float32), 16000).shape == (1, 128)


SILENCE = (0.0 + 4.2677393) / (2 * 4.5689974)  # an all-zero fbank, normalised


@pytest.mark.parametrize("waveform", [None, np.zeros((0, 0), np.float32), np.zeros((2, 0), np.float32),
                                      np.zeros((1, 100), np.float32)], ids=["none", "empty", "empty2ch", "short"])
def test_no_audio_is_the_reference_all_zero_fbank(waveform):
    feats = audio_features(waveform, 16000, PreprocessConfig())
    assert feats.shape == (1, 512, 128) and feats.dtype == torch.float32
    torch.testing.assert_close(feats, torch.full((1, 512, 128), SILENCE))


def test_reference_profile_pads_cuts_and_normalises():
    cfg = PreprocessConfig()
    sr = 44100
    long = golden_waveform(sr, seconds=6.0)  # 598 frames -> cut to 512
    feats = audio_features(np.stack([long, np.zeros_like(long)]), sr, cfg)
    torch.testing.assert_close(feats[0], (kaldi_fbank(long, sr)[:512] + 4.2677393) / (2 * 4.5689974), atol=1e-3, rtol=0)
    short = long[: 2 * sr]  # 198 frames, then zero-padded
    feats = audio_features(short, sr, cfg)[0]
    torch.testing.assert_close(feats[:198], (kaldi_fbank(short, sr) + 4.2677393) / (2 * 4.5689974), atol=1e-3, rtol=0)
    torch.testing.assert_close(feats[198:], torch.full((512 - 198, 128), SILENCE))


def test_16k_mono_profile_downmixes_and_resamples():
    cfg = PreprocessConfig(audio_profile="16k-mono")
    sr = 48000
    t = np.arange(3 * sr) / sr
    left = (0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    right = (0.3 * np.sin(2 * np.pi * 2500 * t)).astype(np.float32)
    feats = audio_features(np.stack([left, right]), sr, cfg)[0]
    mono16 = resample_to((left + right) / 2, sr, 16000)
    assert mono16.shape == (16000 * 3,)
    expected = (kaldi_fbank(mono16, 16000) + 4.2677393) / (2 * 4.5689974)
    torch.testing.assert_close(feats[: expected.shape[0]], expected, atol=1e-3, rtol=0)
    # Both tones survive band-limited resampling at their mel positions; the reference profile hears only the left.
    frame = feats[100]
    for f in (1000, 2500):
        assert frame[mel_bin(f, 16000)] > frame.median() + 0.5, f
    ref = audio_features(np.stack([left, right]), sr, PreprocessConfig())[0]
    assert ref[100].argmax().item() == pytest.approx(mel_bin(1000, sr), abs=1)
    assert ref[100, mel_bin(2500, sr)] < ref[100].max() - 1.0


def mel_bin(freq: float, sr: int, bins: int = 128) -> int:
    """The Kaldi mel filter whose centre is nearest ``freq``."""
    mel = lambda f: 1127.0 * np.log(1.0 + f / 700.0)  # noqa: E731
    centres = mel(20.0) + np.arange(1, bins + 1) * (mel(sr / 2) - mel(20.0)) / (bins + 1)
    return int(np.abs(centres - mel(freq)).argmin())


def test_resample_is_band_limited():
    sr = 44100
    t = np.arange(sr) / sr
    tone = np.sin(2 * np.pi * 12000 * t).astype(np.float32)  # above the 8 kHz Nyquist of 16 kHz audio
    assert np.abs(resample_to(tone, sr, 16000)[1000:-1000]).max() < 0.01
    low = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    out = resample_to(low, sr, 16000)
    expected = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    assert np.abs(out[1000:-1000] - expected[1000:-1000]).max() < 1e-2
