"""Audio files of the frame-folder layout: read any audio file with PyAV, write 16-bit PCM WAV.

The reference extracted each clip's audio to WAV with FFmpeg at its native rate and channel count; ``prepare`` and
``synth`` write the same (16-bit PCM), and the datasets read whatever format a user's WAVs are in (8/16/24/32-bit,
float, any channel layout) through PyAV, with the same sample conversion as video clips
(:func:`mmadfer.media.decode.audio_frame_to_float`).
"""
from __future__ import annotations

import os
import wave

import av
import numpy as np

from ..errors import MediaError
from ..io import atomic_path
from .decode import audio_frame_to_float, open_media

__all__ = ["read_audio", "write_wav"]


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Decode the first audio stream of ``path``: returns float32 ``[C, N]`` in [-1, 1] and the sample rate.

    A file whose audio stream holds no samples gives ``[C, 0]``. Raises :class:`MediaError` (naming the file) for a
    missing, empty or undecodable file, or one without an audio stream.
    """
    path = os.fspath(path)
    container = open_media(path)
    try:
        if not container.streams.audio:
            raise MediaError(path, "no audio stream")
        stream = container.streams.audio[0]
        if stream.codec_context is None:
            raise MediaError(path, "undecodable audio codec: this FFmpeg build has no decoder for it")
        rate = int(stream.codec_context.sample_rate or stream.rate or 0)
        channels = int(stream.codec_context.channels or stream.codec_context.layout.nb_channels or 1)
        try:
            chunks = [audio_frame_to_float(frame) for frame in container.decode(stream)]  # each [C, n]
        except av.error.FFmpegError as e:
            raise MediaError(path, f"corrupt audio ({getattr(e, 'strerror', None) or e})") from None
    finally:
        container.close()
    if chunks and not rate:
        raise MediaError(path, "audio stream has no sample rate")
    waveform = np.concatenate(chunks, axis=1) if chunks else np.zeros((channels, 0), np.float32)
    return waveform, rate


def write_wav(path: str | os.PathLike, waveform: np.ndarray, sample_rate: int) -> None:
    """Write float ``[C, N]`` (or ``[N]``) audio in [-1, 1] as 16-bit PCM WAV, atomically. ``N`` may be 0."""
    w = np.asarray(waveform, dtype=np.float32)
    w = w[None] if w.ndim == 1 else w
    if w.ndim != 2 or w.shape[0] < 1:
        raise ValueError(f"write_wav: waveform must be [N] or [C, N], got shape {np.shape(waveform)}")
    if int(sample_rate) <= 0:
        raise ValueError(f"write_wav: sample_rate must be positive, got {sample_rate}")
    pcm = np.round(np.clip(w, -1.0, 1.0) * 32767.0).astype("<i2").T  # [N, C], interleaved
    with atomic_path(path, suffix=".wav") as tmp:
        with wave.open(os.fspath(tmp), "wb") as f:
            f.setnchannels(w.shape[0])
            f.setsampwidth(2)
            f.setframerate(int(sample_rate))
            f.writeframes(np.ascontiguousarray(pcm).tobytes())
