"""Synthetic data: the label needs both modalities, the cues survive 32 px, and the astronaut video is real media."""
import numpy as np
import pytest
import torch

from mmadfer.config import PreprocessConfig
from mmadfer.data.datasets import FrameFolderDataset
from mmadfer.data.synthetic import SYNTH_CLASSES, make_astronaut_video, render_clip, write_synthetic_dataset

N = 32


@pytest.fixture(scope="module")
def synth_items(tmp_path_factory):
    """Every clip of a small synthetic dataset as the tiny model sees it: 16 frames at 32 x 32 and the fbank."""
    root = tmp_path_factory.mktemp("synth")
    write_synthetic_dataset(root, N, size=64, raw=False, folds=1)
    ds = FrameFolderDataset.from_layout(root, fold=None, split="all", preprocess=PreprocessConfig(img_size=32))
    assert ds.class_names == SYNTH_CLASSES
    return [ds[i] for i in range(len(ds))]


def _visual_feature(video: torch.Tensor) -> float:
    """How much the face moves: a high percentile over pixels of each pixel's standard deviation over time."""
    gray = video.float().mean(1)  # [T, 32, 32]
    return gray.std(0).flatten().quantile(0.98).item()


def _audio_feature(audio: torch.Tensor) -> int:
    """Pitch: the mel bin (of the lowest 40) with the most energy over the voiced first 0.9 s."""
    return int(audio[0, :90].mean(0)[:40].argmax())


def test_label_needs_both_modalities(synth_items):
    labels = np.array([int(it["label"]) for it in synth_items])
    assert np.bincount(labels).tolist() == [N // 4] * 4
    visual = np.array([_visual_feature(it["video"]) > 8.0 for it in synth_items])  # animated face?
    audio = np.array([_audio_feature(it["audio"]) > 11 for it in synth_items])  # high voice?
    # each simple feature recovers its own modality's bit exactly, at the tiny model's 32 px ...
    assert (visual == labels // 2).all() and (audio == labels % 2).all()
    # ... so both together classify perfectly,
    assert ((2 * visual + audio) == labels).mean() == 1.0

    # while one bit alone is worth 50 %: the best any rule using it can do is the majority label per bit value
    def best_accuracy_from(bit):
        return sum(np.bincount(labels[bit == b], minlength=4).max() for b in (0, 1)) / len(labels)

    assert best_accuracy_from(visual) <= 0.55 and best_accuracy_from(audio) <= 0.55


def test_render_is_reproducible_and_varies_nuisances():
    a, b = render_clip(2, seed=(0, 5)), render_clip(2, seed=(0, 5))
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.waveform, b.waveform)
    c = render_clip(2, seed=(0, 6))
    assert not np.array_equal(a.frames[0], c.frames[0])
    assert a.frames.shape == (24, 112, 112, 3) and a.waveform.shape == (1, round(24 / 25 * 16000))
    assert (a.visual_bit, a.audio_bit) == (1, 0)
    with pytest.raises(ValueError, match="label"):
        render_clip(4)


def test_astronaut_video_round_trips(tmp_path):
    from mmadfer.media.decode import read_clip

    path = make_astronaut_video(tmp_path / "astronaut.mp4", seconds=1.0, size=128)
    clip = read_clip(path)
    assert clip.frames.shape[1:] == (128, 128, 3) and 24 <= clip.num_frames <= 26 and abs(clip.fps - 25) < 0.01
    assert clip.has_audio and clip.sample_rate == 44100 and clip.waveform.shape[0] == 2
    assert 0.9 < clip.waveform.shape[1] / 44100 < 1.1
    left, right = np.abs(clip.waveform).mean(1)
    assert right < 0.9 * left  # the channels differ, to exercise the first-channel rule
    assert clip.frames.std() > 20 and not np.array_equal(clip.frames[0], clip.frames[-1])  # a moving photo

    silent = make_astronaut_video(tmp_path / "silent.mp4", seconds=0.4, size=64, audio=False)
    assert not read_clip(silent).has_audio
