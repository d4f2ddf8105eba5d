"""Synthetic audio-visual data whose label needs both modalities, and an animated real face for demos and tests.

:func:`write_synthetic_dataset` (``mmadfer synth``) draws cartoon faces that talk or stay calm and gives them a
voice that is low or high. The four classes are the pairs::

    label  name            face (visual bit)                          voice (audio bit)
    0      calm-low        brows resting, mouth closed                fundamental 105-150 Hz
    1      calm-high       brows resting, mouth closed                fundamental 250-340 Hz
    2      animated-low    brows raised, mouth opening and closing    fundamental 105-150 Hz
    3      animated-high   brows raised, mouth opening and closing    fundamental 250-340 Hz

The two bits are independent and balanced, so a model that sees only the faces (or only hears the voices) knows
one bit and cannot beat 50 % accuracy, while one that fuses both can reach 100 %. Every clip also varies what should
not matter: face position, size and skin tone, background colour, pixel noise, the mouth's rhythm and phase, the
voice's syllable rate, loudness and background hiss. The cues are large (the face fills most of the frame; the
mouth opens to a quarter of the face's height), so they survive downscaling to 32 x 32 pixels.

The dataset is written in mmadfer's layout (see :mod:`mmadfer.data.layout`), so
:class:`~mmadfer.data.datasets.DFEW` reads it exactly as it reads real DFEW; with ``raw=True`` each clip is also
written as an mp4 with audio under ``OUT/raw/``, listed in ``OUT/raw.csv`` for
:class:`~mmadfer.data.datasets.CSVClipDataset` and ``mmadfer prepare``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torchvision.transforms.v2.functional import resize, resized_crop
from tqdm.auto import tqdm

from .._optional import require
from ..io import atomic_write, write_csv
from ..media.decode import Clip
from ..media.encode import write_video
from ..media.pipeline import prepare_window
from .annotations import write_classes
from .layout import CLASSES_FILE, CLIPS_DIR, clip_dir, clip_wav, count_frames, write_clip_folder, write_fold_annotations

if TYPE_CHECKING:
    from ..config import ModelConfig

__all__ = ["SYNTH_CLASSES", "SYNTH_SAMPLE_RATE", "SynthClip", "render_clip", "rendered_inputs",
           "write_synthetic_dataset", "make_astronaut_video", "SYNTHETIC_MARKER", "is_synthetic_dataset"]

#: The file that marks a dataset folder as written by :func:`write_synthetic_dataset` (so models trained on it say so).
SYNTHETIC_MARKER = "SYNTHETIC.txt"

#: Class names in label order: ``label = 2 * visual_bit + audio_bit``.
SYNTH_CLASSES = ("calm-low", "calm-high", "animated-low", "animated-high")
SYNTH_SAMPLE_RATE = 16000
SYNTH_FPS = 25.0
_LOW_F0, _HIGH_F0 = (105.0, 150.0), (250.0, 340.0)


@dataclass
class SynthClip:
    """One rendered clip: frames uint8 ``[T, H, W, 3]``, mono audio float32 ``[1, N]`` at ``sample_rate``."""

    frames: np.ndarray
    waveform: np.ndarray
    sample_rate: int
    fps: float
    label: int

    @property
    def visual_bit(self) -> int:
        return self.label // 2

    @property
    def audio_bit(self) -> int:
        return self.label % 2


def _ellipse(u: np.ndarray, v: np.ndarray, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    return ((u - cx) / rx) ** 2 + ((v - cy) / ry) ** 2 <= 1.0


def _face_frames(rng: np.random.Generator, animated: bool, num_frames: int, size: int, fps: float) -> np.ndarray:
    """Cartoon face video uint8 ``[T, size, size, 3]``; ``animated`` raises the brows and moves the mouth."""
    v, u = np.mgrid[0:size, 0:size].astype(np.float32) / size  # [S, S] normalised coordinates
    # what should not matter: placement, size, colours, noise, rhythm
    rx = rng.uniform(0.30, 0.36)
    ry = rx * 1.2
    cx, cy = 0.5 + rng.uniform(-0.08, 0.08, size=2)
    skin = rng.uniform([150, 105, 75], [245, 200, 170])
    while True:
        background = rng.uniform(0, 255, size=3)
        if np.abs(background - skin).sum() > 150:  # keep the face visible against the background
            break
    feature = rng.uniform(20, 70, size=3)  # eyes and brows
    lips = np.array([rng.uniform(20, 60), rng.uniform(0, 20), rng.uniform(0, 25)])  # a dark mouth: salient at 32 px
    noise = rng.uniform(2.0, 8.0)

    base = np.empty((size, size, 3), np.float32)
    base[:] = background
    base[_ellipse(u, v, cx, cy, rx, ry)] = skin
    brow_y = cy - (0.68 if animated else 0.42) * ry
    for side in (-1, 1):
        ex = cx + side * 0.38 * rx
        base[_ellipse(u, v, ex, cy - 0.18 * ry, 0.13 * rx, 0.10 * ry)] = feature
        base[(np.abs(u - ex) <= 0.22 * rx) & (np.abs(v - brow_y) <= 0.05 * ry)] = feature

    t = np.arange(num_frames) / fps
    if animated:  # mouth opens and closes 2.5-4.5 times a second, from a random phase
        phase = rng.uniform(0, 2 * np.pi)
        openness = 0.5 - 0.5 * np.cos(2 * np.pi * rng.uniform(2.5, 4.5) * t + phase)
    else:
        openness = np.zeros(num_frames)
    mouth_y = cy + 0.48 * ry
    frames = np.empty((num_frames, size, size, 3), np.uint8)
    for i, o in enumerate(openness):
        f = base.copy()
        f[_ellipse(u, v, cx, mouth_y, 0.5 * rx, (0.05 + 0.4 * o) * ry)] = lips
        f += rng.normal(0.0, noise, size=f.shape).astype(np.float32)
        frames[i] = np.clip(f, 0, 255).astype(np.uint8)
    return frames


def _voice(rng: np.random.Generator, high: bool, num_samples: int, sample_rate: int) -> np.ndarray:
    """Voice-like mono audio float32 ``[N]``: a harmonic tone (low or high fundamental with a gentle pitch contour)
    under a syllable envelope, plus hiss."""
    t = np.arange(num_samples) / sample_rate
    f0 = rng.uniform(*(_HIGH_F0 if high else _LOW_F0))
    contour = f0 * (1.0 + 0.04 * np.sin(2 * np.pi * rng.uniform(0.5, 1.5) * t + rng.uniform(0, 2 * np.pi)))
    phase = 2 * np.pi * np.cumsum(contour) / sample_rate
    tone = sum(np.sin(k * phase) / k**1.5 for k in range(1, 7))
    syllables = 0.5 - 0.5 * np.cos(2 * np.pi * rng.uniform(3.0, 5.0) * t + rng.uniform(0, 2 * np.pi))
    envelope = 0.25 + 0.75 * syllables
    x = rng.uniform(0.15, 0.45) * envelope * tone / 1.6
    x += rng.normal(0.0, rng.uniform(0.002, 0.01), size=num_samples)
    return np.clip(x, -1, 1).astype(np.float32)


def render_clip(label: int, *, num_frames: int = 24, size: int = 112, fps: float = SYNTH_FPS,
                sample_rate: int = SYNTH_SAMPLE_RATE, seed: int | tuple[int, ...] = 0) -> SynthClip:
    """Render one clip of class ``label`` (0..3, see :data:`SYNTH_CLASSES`); the same seed gives the same clip."""
    if label not in range(len(SYNTH_CLASSES)):
        raise ValueError(f"label must be in 0..{len(SYNTH_CLASSES) - 1}, got {label}")
    rng = np.random.default_rng(seed)
    frames = _face_frames(rng, animated=bool(label // 2), num_frames=num_frames, size=size, fps=fps)
    audio = _voice(rng, high=bool(label % 2), num_samples=round(num_frames / fps * sample_rate),
                   sample_rate=sample_rate)
    return SynthClip(frames, audio[None], sample_rate, fps, label)


def rendered_inputs(cfg: ModelConfig, num_clips: int, *, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Model inputs from rendered clips, prepared as a video is for prediction (test frame rule, fbank):
    ``(video [1, T, 3, S, S] float32 in [0, 1], audio [1, 1, F, M] float32)`` for a :class:`~mmadfer.ModelConfig`.

    Real-looking inputs without any dataset: int8 calibration and agreement checks use them beside random noise.
    The classes cycle, so any four consecutive clips cover all of them.
    """
    out = []
    for i in range(num_clips):
        s = render_clip(i % len(SYNTH_CLASSES), num_frames=2 * cfg.num_frames, size=cfg.img_size, seed=(seed, i))
        clip = Clip(frames=s.frames, fps=s.fps, waveform=s.waveform, sample_rate=s.sample_rate, has_audio=True,
                    frame_times=np.arange(len(s.frames)) / s.fps, path=f"rendered-{seed}-{i}", start_s=0.0,
                    duration_s=len(s.frames) / s.fps)
        p = prepare_window(clip, cfg.preprocess, detector=None)
        out.append((p["video"][None].float() / 255, p["audio"][None].float()))
    return out


def write_synthetic_dataset(out: str | os.PathLike, num_clips: int, *, num_frames: int = 24, size: int = 112,
                            seed: int = 0, folds: int = 5, raw: bool = True, progress: bool = False) -> dict:
    """Write ``num_clips`` synthetic clips (labels balanced: clip ``i`` has label ``i % 4``) in mmadfer's layout:
    frame folders, 16 kHz WAVs, ``annotations/set_<k>_{train,test}.txt`` for a stratified ``folds``-fold split
    (``all.txt`` if ``folds < 2``) ``classes.txt`` and the marker ``SYNTHETIC.txt``; with ``raw``, also ``raw/<clip_id>.mp4`` (H.264 + AAC) and
    ``raw.csv`` (``video,label`` with class names).

    Resumable: a clip whose frame folder (and mp4, with ``raw``) exists is kept; clip ``i`` is always rendered from
    seed ``(seed, i)``, so re-running reproduces the same dataset. Returns ``{'written': n, 'skipped': n}``.
    """
    if num_clips < 1:
        raise ValueError(f"num_clips must be positive, got {num_clips}")
    if num_frames < 1 or size < 16:
        raise ValueError(f"need num_frames >= 1 and size >= 16, got {num_frames} and {size}")
    root = Path(out)
    (root / CLIPS_DIR).mkdir(parents=True, exist_ok=True)
    if raw:
        (root / "raw").mkdir(exist_ok=True)
    entries, raw_rows, written = [], [], 0
    for i in tqdm(range(num_clips), desc="synth", unit="clip", disable=not progress):
        clip_id, label = f"synth_{i:05d}", i % len(SYNTH_CLASSES)
        folder, mp4 = clip_dir(root, clip_id), root / "raw" / f"synth_{i:05d}.mp4"
        done = folder.is_dir() and clip_wav(root, clip_id).is_file() and (not raw or mp4.is_file())
        if not done:
            clip = render_clip(label, num_frames=num_frames, size=size, seed=(seed, i))
            if raw:
                write_video(mp4, clip.frames, clip.fps, clip.waveform, clip.sample_rate)
            write_clip_folder(root, clip_id, clip.frames, clip.waveform, clip.sample_rate)
            written += 1
        entries.append((clip_id, count_frames(folder), label))
        raw_rows.append((f"raw/{mp4.name}", SYNTH_CLASSES[label]))
    write_fold_annotations(root, entries, num_folds=folds if folds and folds >= 2 else None, seed=seed)
    write_classes(root / CLASSES_FILE, SYNTH_CLASSES)
    with atomic_write(root / SYNTHETIC_MARKER) as f:
        f.write("Synthetic clips written by mmadfer synth: cartoon faces and tones, not people. A model trained on "
                "them records that it is synthetic.\n")
    if raw:
        write_csv(root / "raw.csv", ["video", "label"], raw_rows)
    return {"written": written, "skipped": num_clips - written}


def is_synthetic_dataset(root: str | os.PathLike) -> bool:
    """Whether ``root`` (a dataset folder, or a file inside one) was written by :func:`write_synthetic_dataset`."""
    root = Path(root)
    return any((d / SYNTHETIC_MARKER).is_file() for d in (root, root.parent))


def make_astronaut_video(path: str | os.PathLike, seconds: float = 3.0, fps: float = 25, audio: bool = True,
                         size: int = 256, seed: int = 0, sample_rate: int = 44100, channels: int = 2,
                         width: int | None = None, zoom: float = 0.06, travel: float = 0.0) -> str:
    """Write an mp4 of a real face: scikit-image's ``astronaut()`` photo (Eileen Collins) with a slow zoom, pan and
    brightness drift, and, with ``audio``, a voice-like track (harmonic tone with a pitch contour and syllable
    envelope) at ``sample_rate`` with ``channels`` channels (44.1 kHz stereo by default, to exercise channel and
    rate handling). The face stays well inside the frame so a face detector finds it in every frame.

    Frames are ``size`` pixels high and ``width`` wide (default ``size``: square); a wider frame shows the moving
    ``size``-square picture in the middle of a dimmed still of the whole photo (``size=720, width=1280``: 720p).
    Frames are streamed to the encoder, so long high-resolution videos never sit in memory.

    ``zoom``: the face's size varies by this fraction either way (slowly, 0.35 Hz). ``travel``: in a wide frame the
    picture also slides sideways, over this fraction of the free width either side of the middle (0.15 Hz): faces
    that move and change scale, for checking face tracking."""
    data = require("skimage.data", "the astronaut demo video")
    image = torch.from_numpy(np.ascontiguousarray(data.astronaut())).permute(2, 0, 1)  # [3, 512, 512]
    rng = np.random.default_rng(seed)
    n = max(1, round(seconds * fps))
    t = np.arange(n) / fps
    p = rng.uniform(0, 2 * np.pi, size=4)
    side = 360 * (1 + zoom * np.sin(2 * np.pi * 0.35 * t + p[0]))  # crop window around the face (x~225, y~115)
    cx = 228 + 14 * np.sin(2 * np.pi * 0.25 * t + p[1])
    cy = 170 + 10 * np.sin(2 * np.pi * 0.3 * t + p[2])
    gain = 1 + 0.08 * np.sin(2 * np.pi * 0.5 * t + p[3])
    width = width or size
    if not 0 <= zoom <= 0.4 or not 0 <= travel <= 1:
        raise ValueError(f"zoom must be in [0, 0.4] and travel in [0, 1], got {zoom} and {travel}")
    if width < size:
        raise ValueError(f"width must be at least size ({size}), got {width}")
    middle = (width - size) // 2
    lefts = np.clip(np.round(middle + travel * middle * np.sin(2 * np.pi * 0.15 * t + p[1])), 0, width - size)
    backdrop = None
    if width > size:
        backdrop = (resize(image, [size, width], antialias=True).float() * 0.5).to(torch.uint8).permute(1, 2, 0)

    def frames():
        for i in range(n):
            top, left = int(round(cy[i] - side[i] / 2)), int(round(cx[i] - side[i] / 2))
            top, left = max(0, min(top, 512 - int(side[i]))), max(0, min(left, 512 - int(side[i])))
            crop = resized_crop(image, top, left, int(side[i]), int(side[i]), [size, size], antialias=True)
            face = (crop.float() * gain[i]).clamp(0, 255).to(torch.uint8).permute(1, 2, 0)
            if backdrop is None:
                yield face.numpy()
            else:
                frame = backdrop.clone()
                left0 = int(lefts[i])
                frame[:, left0:left0 + size] = face
                yield frame.numpy()

    waveform = None
    if audio:
        mono = _voice(rng, high=False, num_samples=round(seconds * sample_rate), sample_rate=sample_rate)
        waveform = np.stack([mono * (1.0 - 0.2 * c) for c in range(channels)])  # [C, N], channels differ in level
    return write_video(path, frames(), fps, waveform, sample_rate if audio else None)
