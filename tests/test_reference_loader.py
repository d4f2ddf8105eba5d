"""DFEW and MAFW in the authors' own folder layouts, read with default options, against what the authors' test loader
returned (golden/reference_loader), plus fixtures for what the golden does not cover."""
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmadfer.config import PreprocessConfig
from mmadfer.data.datasets import MAFW, SampleError, build_dataset
from mmadfer.media.sampling import sample_indices
from mmadfer.media.wav import write_wav
from mmadfer.media.fbank import audio_features
from reference import GOLDEN

REF = GOLDEN / "reference_loader"


@pytest.fixture(scope="module")
def golden():
    with np.load(REF / "official_test_items.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("kind,folder", [("dfew", "dfew"), ("mafw", "mfaw")])
def test_authors_layout_gives_the_authors_tensors(golden, kind, folder):
    ds = build_dataset(kind, REF / folder, fold=1, split="test")  # default options: no audio_root, no clip_root
    assert not ds.train and len(ds) == sum(k.startswith(f"{kind}_") and k.endswith("_video") for k in golden)
    for i, record in enumerate(ds.records):
        cid = Path(record.path).name
        item = ds[i]
        ref_video, ref_audio = golden[f"{kind}_{cid}_video"], golden[f"{kind}_{cid}_audio"]
        video_diff = np.abs(item["video"].numpy().astype(np.int16) - ref_video.astype(np.int16))
        assert item["video"].shape == ref_video.shape == (16, 3, 224, 224)
        assert video_diff.max() <= 2 and video_diff.mean() <= 0.05, (cid, video_diff.max(), video_diff.mean())
        assert np.abs(item["audio"].numpy() - ref_audio).max() <= 1e-3, cid
        assert int(item["label"]) == int(golden[f"{kind}_{cid}_label"]), cid
        files = ds.frame_files(Path(record.path))
        picked = sample_indices(min(record.num_frames, len(files)), 16)
        assert [Path(files[j]).name for j in picked] == [str(f) for f in golden[f"{kind}_{cid}_files"]], cid


def test_mafw_clip_without_wav_is_counted_not_silent(caplog):
    ds = build_dataset("mafw", REF / "mfaw", fold=1, split="test")
    with caplog.at_level(logging.WARNING, logger="mmadfer.data.datasets"):
        report = ds.audio_report()
    assert report["audio_missing"] == 1 and report["audio_too_short"] == 0
    assert [Path(p).name for p in report["audio_missing_clips"]] == ["00042"]
    assert any("1 of 3 clips have no audio file" in r.getMessage() for r in caplog.records)


# -- fixtures of our own: a long MAFW clip (string order matters for sure), absent and too-short audio ------------
def _frame(value: int, size: tuple[int, int]) -> Image.Image:
    """A frame whose grey level encodes its index (value) and whose size differs per frame, as MAFW's crops."""
    return Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8))


@pytest.fixture
def mafw_root(tmp_path) -> Path:
    """The authors' MAFW layout under a root named like theirs: clip 00001 has 150 unpadded frames of varying size,
    clip 00002 has a WAV of 100 samples at 16 kHz (< one 25 ms window), clip 00003 has no WAV."""
    root = tmp_path / "mfaw"
    rng = np.random.default_rng(0)
    for cid, n in (("00001", 150), ("00002", 20), ("00003", 20)):
        folder = root / "clips_faces" / cid
        folder.mkdir(parents=True)
        for i in range(n):
            _frame(i, tuple(int(v) for v in rng.integers(40, 90, 2))).save(folder / f"{i}.png")
    (root / "clips_wav").mkdir()
    t = np.arange(32000) / 16000
    write_wav(root / "clips_wav" / "00001.wav", 0.3 * np.sin(2 * np.pi * 440 * t)[None], 16000)
    write_wav(root / "clips_wav" / "00002.wav", np.full((1, 100), 0.1), 16000)
    ann = root / "annotations"
    ann.mkdir()
    lines = [f"/elsewhere/mfaw/clips_faces/{cid} {n - 1} {label}\n" for cid, n, label in
             (("00001", 150, 4), ("00002", 20, 0), ("00003", 20, 10))]
    (ann / "MAFW_set_2_test_faces.txt").write_text("".join(lines))
    return root


def test_long_mafw_clip_uses_the_authors_string_order(mafw_root):
    pre = PreprocessConfig(img_size=32)
    ds = MAFW(mafw_root, fold=2, split="test", preprocess=pre)
    assert ds.frame_order == "lexicographic"
    item = ds[0]
    order = sorted(f"{i}.png" for i in range(150))  # glob + str.sort, as the authors' loader
    expected = [int(order[j].split(".")[0]) for j in sample_indices(149, 16)]  # num_frames = count - 1
    assert expected != sample_indices(149, 16)  # natural order would pick other frames
    assert item["video"].shape == (16, 3, 32, 32)
    assert item["video"][:, 0, 16, 16].tolist() == expected  # each frame resized once from its own size
    assert not torch.equal(item["audio"], audio_features(None, None, pre))
    natural = MAFW(mafw_root, fold=2, split="test", preprocess=pre, frame_order="natural")[0]
    assert natural["video"][:, 0, 16, 16].tolist() == sample_indices(149, 16)


def test_short_and_absent_audio_are_silent_and_counted(mafw_root, caplog):
    pre = PreprocessConfig(img_size=32)
    ds = MAFW(mafw_root, fold=2, split="test", preprocess=pre)
    silent = audio_features(None, None, pre)
    assert torch.equal(ds[1]["audio"], silent) and torch.equal(ds[2]["audio"], silent)
    with caplog.at_level(logging.WARNING, logger="mmadfer.data.datasets"):
        report = ds.audio_report()
    assert (report["audio_missing"], report["audio_too_short"]) == (1, 1)
    assert [Path(p).name for p in report["audio_too_short_clips"]] == ["00002"]
    assert [Path(p).name for p in report["audio_missing_clips"]] == ["00003"]
    assert "1 of 3 clips have no audio file and 1 have audio shorter than one 25 ms window" in caplog.text
    strict = MAFW(mafw_root, fold=2, split="test", preprocess=pre, allow_missing_audio=False)
    with pytest.raises(SampleError, match=r"audio file not found .*clips_wav/00003.wav"):
        strict[2]


def test_dfew_raw_wav_beside_clip_folder_by_integer_id(tmp_path):
    """DFEW's official layout (Clip/clip_224x224/00007) with the authors' raw_wav/7.wav beside it."""
    frames = tmp_path / "DFEW" / "Clip" / "clip_224x224" / "00007"
    frames.mkdir(parents=True)
    for i in range(1, 6):
        _frame(10 * i, (24, 24)).save(frames / f"{i:05d}.jpg", quality=100)
    wav_dir = tmp_path / "DFEW" / "Clip" / "raw_wav"
    wav_dir.mkdir()
    t = np.arange(8000) / 8000
    write_wav(wav_dir / "7.wav", 0.2 * np.sin(2 * np.pi * 300 * t)[None], 8000)
    ann = tmp_path / "DFEW" / "annotations"
    ann.mkdir()
    (ann / "DFEW_set_3_test.txt").write_text("/data/someone/dfew/clip_224x224/00007 5 2\n")
    ds = build_dataset("dfew", tmp_path / "DFEW", fold=3, split="test", preprocess=PreprocessConfig(img_size=24))
    assert ds.audio_path(ds.records[0]) == wav_dir / "7.wav"
    item = ds[0]
    assert not torch.equal(item["audio"], audio_features(None, None, ds.preprocess)) and int(item["label"]) == 2
    assert ds.audio_report()["audio_missing"] == 0
    (wav_dir / "7.wav").unlink()
    with pytest.raises(SampleError, match="audio file not found"):
        build_dataset("dfew", tmp_path / "DFEW", fold=3, split="test", preprocess=ds.preprocess)[0]


def test_evaluation_report_counts_silent_clips(mafw_root, tmp_path):
    import json

    from mmadfer import MMADFER
    from mmadfer.config import MAFW_CLASSES, ModelConfig
    from mmadfer.train.engine import evaluate_model

    torch.manual_seed(0)
    model = MMADFER(ModelConfig.tiny(num_classes=11, class_names=MAFW_CLASSES)).eval()
    ds = MAFW(mafw_root, fold=2, split="test", preprocess=model.cfg.preprocess)
    metrics = evaluate_model(model, ds, batch_size=3, out_dir=tmp_path / "eval", progress=False)
    written = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["num_clips"] == 3
    assert (written["audio_missing"], written["audio_too_short"]) == (1, 1)
