"""Kaldi log-mel filterbank features, exactly as the reference computes them, in pure (batched) PyTorch.

The reference feeds AudioMAE with ``torchaudio.compliance.kaldi.fbank(w - w.mean(), htk_compat=True,
use_energy=False, window_type='hanning', num_mel_bins=128, dither=0.0, frame_shift=10, sample_frequency=sr)``.
torchaudio is not a dependency, so this module re-implements that one configuration (25 ms symmetric Hann
window, 10 ms shift, ``snip_edges``, per-frame DC removal, pre-emphasis 0.97, FFT padded to a power of two,
power spectrum, Kaldi mel banks from 20 Hz to Nyquist, natural log floored at float eps). It matches the
golden torchaudio outputs (``../shared/golden/fbank_ref_sr*.npy``) at any sample rate.

Everything is vectorised over a batch of waveforms, so the same code runs one clip on a CPU or thousands on a GPU;
mel banks and windows are cached per (rate, device, dtype).
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch
from scipy.signal import resample_poly

from ..config import PreprocessConfig

__all__ = ["kaldi_fbank", "kaldi_fbank_batch", "audio_features", "resample_to", "fbank_frame_count"]

_FRAME_SHIFT_MS = 10.0
_FRAME_LENGTH_MS = 25.0
_PREEMPHASIS = 0.97
_LOW_FREQ = 20.0
_PROFILE_RATE = {"16k-mono": 16000}
# The reference runs in float32, so empty mel bins are floored at float32's eps whatever dtype we compute in.
_LOG_FLOOR = torch.finfo(torch.float32).eps


def _window_geometry(sample_rate: int) -> tuple[int, int, int]:
    """(window_shift, window_size, padded_window_size) in samples, computed as torchaudio does."""
    shift = int(sample_rate * _FRAME_SHIFT_MS * 0.001)
    size = int(sample_rate * _FRAME_LENGTH_MS * 0.001)
    padded = 1 << (size - 1).bit_length()
    return shift, size, padded


def fbank_frame_count(num_samples: int, sample_rate: int) -> int:
    """Number of fbank frames for ``num_samples`` samples (``snip_edges``: only whole 25 ms windows)."""
    shift, size, _ = _window_geometry(sample_rate)
    return 0 if num_samples < size else 1 + (num_samples - size) // shift


def _mel(freq):
    """HTK mel scale, written exactly as torchaudio writes it (log(1 + f/700), not log1p) for identical banks."""
    return 1127.0 * (torch.log(1.0 + freq / 700.0) if torch.is_tensor(freq) else math.log(1.0 + freq / 700.0))


@functools.lru_cache(maxsize=32)
def _mel_banks(sample_rate: int, num_mel_bins: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Kaldi's triangular mel filters ``[padded//2 + 1, num_mel_bins]`` (last FFT bin has weight 0).

    Built in float32 like torchaudio's ``get_mel_banks`` so the filters are bit-compatible, then cast.
    """
    _, _, padded = _window_geometry(sample_rate)
    num_fft_bins = padded // 2
    mel_low, mel_high = _mel(_LOW_FREQ), _mel(0.5 * sample_rate)
    delta = (mel_high - mel_low) / (num_mel_bins + 1)
    b = torch.arange(num_mel_bins).unsqueeze(1)
    left, center, right = (mel_low + (b + k) * delta for k in (0.0, 1.0, 2.0))  # [bins, 1] each
    mel = _mel((sample_rate / padded) * torch.arange(num_fft_bins, dtype=torch.float32)).unsqueeze(0)  # [1, fft]
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)  # [bins, fft]
    banks = torch.nn.functional.pad(banks, (0, 1))  # Nyquist bin gets weight 0, as in Kaldi
    return banks.T.contiguous().to(device=device, dtype=dtype)  # [fft+1, bins]


@functools.lru_cache(maxsize=32)
def _hann(size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Kaldi's 'hanning' window is the symmetric Hann window: 0.5 - 0.5 cos(2πn / (N-1))."""
    return torch.hann_window(size, periodic=False, device=device, dtype=dtype)


def _as_tensor(waveform) -> torch.Tensor:
    w = torch.from_numpy(np.ascontiguousarray(waveform)) if isinstance(waveform, np.ndarray) else waveform
    if not torch.is_floating_point(w):
        raise TypeError(f"waveform must be floating point in [-1, 1], got dtype {w.dtype}")
    return w


def kaldi_fbank_batch(waveforms, sample_rate: int, *, num_mel_bins: int = 128) -> torch.Tensor:
    """Log-mel fbank of a batch of equal-length mono waveforms.

    Args:
        waveforms: ``[B, N]`` float tensor or array (any device); each row has its own mean removed first.
        sample_rate: Hz, 8000-48000 typical; the 25 ms / 10 ms geometry is derived from it.
    Returns:
        ``[B, frames, num_mel_bins]`` in the waveforms' dtype and device; ``frames`` is
        :func:`fbank_frame_count` (0 when a waveform is shorter than one 25 ms window).
    """
    w = _as_tensor(waveforms)
    if w.ndim != 2:
        raise ValueError(f"waveforms must be [B, N], got shape {tuple(w.shape)}")
    sample_rate = int(sample_rate)
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    shift, size, padded = _window_geometry(sample_rate)
    B, N = w.shape
    if N < size:
        return w.new_zeros(B, 0, num_mel_bins)
    w = w - w.mean(dim=1, keepdim=True)  # [B, N] whole-waveform mean, as the reference does before fbank
    frames = w.unfold(1, size, shift)  # [B, M, size]
    frames = frames - frames.mean(dim=2, keepdim=True)  # Kaldi remove_dc_offset, per frame
    prev = torch.cat([frames[..., :1], frames[..., :-1]], dim=2)  # replicate-padded x[n-1]
    frames = (frames - _PREEMPHASIS * prev) * _hann(size, w.device, w.dtype)  # [B, M, size]
    power = torch.fft.rfft(frames, n=padded).abs().pow(2.0)  # [B, M, padded//2 + 1]
    mel = power @ _mel_banks(sample_rate, num_mel_bins, w.device, w.dtype)  # [B, M, bins]
    return mel.clamp_min(_LOG_FLOOR).log()


def kaldi_fbank(waveform, sample_rate: int, *, num_mel_bins: int = 128) -> torch.Tensor:
    """Reference fbank of one waveform: ``[N]`` or ``[C, N]`` (first channel used) -> ``[frames, num_mel_bins]``.

    Equivalent to ``torchaudio.compliance.kaldi.fbank(w - w.mean(), htk_compat=True, use_energy=False,
    window_type='hanning', num_mel_bins=128, dither=0.0, frame_shift=10, sample_frequency=sample_rate)``
    on the first channel ``w``.
    """
    w = _as_tensor(waveform)
    if w.ndim == 2:
        w = w[:1]
    elif w.ndim == 1:
        w = w.unsqueeze(0)
    else:
        raise ValueError(f"waveform must be [N] or [C, N], got shape {tuple(w.shape)}")
    return kaldi_fbank_batch(w, sample_rate, num_mel_bins=num_mel_bins)[0]


def resample_to(waveform: np.ndarray, sample_rate: int, target_rate: int) -> np.ndarray:
    """Band-limited polyphase resampling of ``[..., N]`` float audio (scipy's Kaiser-windowed FIR)."""
    if sample_rate == target_rate:
        return waveform

    g = math.gcd(int(sample_rate), int(target_rate))
    out = resample_poly(np.asarray(waveform, dtype=np.float64), target_rate // g, sample_rate // g, axis=-1)
    return out.astype(np.float32)


def _select_audio(waveform, sample_rate: int, profile: str) -> tuple[np.ndarray | torch.Tensor, int]:
    """Apply the profile's channel and rate rule: 'reference' = first channel, native rate;
    '16k-mono' = mean of channels, resampled to 16 kHz. Returns a 1-D waveform and its rate."""
    if isinstance(waveform, torch.Tensor):
        waveform = waveform.detach().cpu().numpy()
    w = np.asarray(waveform, dtype=np.float32)
    if w.ndim == 1:
        w = w[None]
    if w.ndim != 2:
        raise ValueError(f"waveform must be [N] or [C, N], got shape {w.shape}")
    if profile == "reference":
        return w[0], sample_rate
    target = _PROFILE_RATE[profile]
    return resample_to(w.mean(axis=0), sample_rate, target), target


def audio_features(waveform, sample_rate: int | None, cfg: PreprocessConfig | None = None) -> torch.Tensor:
    """The model's audio input: normalised fbank ``[1, cfg.audio_frames, cfg.num_mel_bins]`` (float32, CPU).

    ``waveform`` is ``[N]`` or ``[C, N]`` in [-1, 1] (numpy or torch), or None / empty for a clip without sound,
    which gets the reference's all-zero fbank before normalisation. Audio shorter than one 25 ms window has no
    fbank frames and is likewise all zeros. Longer audio is cut to ``audio_frames`` frames, shorter is zero-padded.
    """
    cfg = cfg or PreprocessConfig()
    fb = torch.zeros(cfg.audio_frames, cfg.num_mel_bins)  # [512, 128]
    if waveform is not None and np.prod(np.shape(waveform)) > 0:
        if not sample_rate or sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive for a non-empty waveform, got {sample_rate}")
        w, rate = _select_audio(waveform, int(sample_rate), cfg.audio_profile)
        # The mean is of the whole waveform (as in the reference); then only samples that reach the first
        # `audio_frames` frames matter, so the rest is not transformed.
        shift, size, _ = _window_geometry(rate)
        w = torch.from_numpy(np.ascontiguousarray((w - w.mean())[: size + shift * (cfg.audio_frames - 1)]))
        feats = kaldi_fbank(w, rate, num_mel_bins=cfg.num_mel_bins)  # [frames, bins]
        fb[: feats.shape[0]] = feats
    return ((fb - cfg.fbank_mean) / (2 * cfg.fbank_std)).unsqueeze(0)
