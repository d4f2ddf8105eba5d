"""Datasets: a DFEW-layout round trip through `mmadfer synth`, the index parsers, and bad-sample handling."""
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmadfer.cli import main
from mmadfer.config import DFEW_CLASSES, PreprocessConfig
from mmadfer.data.annotations import (
    ClipRecord, read_clip_csv, read_dfew_csv, read_mafw_split, read_reference_annotation,
)
from mmadfer.data.datasets import (
    DFEW, MAFW, CSVClipDataset, FrameFolderDataset, SampleError, build_dataset, collate_clips,
)
from mmadfer.data.layout import write_fold_annotations
from mmadfer.data.synthetic import SYNTH_CLASSES
from mmadfer.media.wav import write_wav
from mmadfer.errors import MediaError
from mmadfer.media.fbank import audio_features

PRE = PreprocessConfig(img_size=32)
CLIPS = 20


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    assert main(["synth", str(root), "--clips", str(CLIPS), "--size", "48", "--frames", "20"]) == 0
    return root


@pytest.fixture
def synth_copy(synth_root, tmp_path) -> Path:
    """A private copy of the synthetic dataset that a test may damage."""
    root = tmp_path / "copy"
    shutil.copytree(synth_root, root, ignore=shutil.ignore_patterns("raw"))
    return root


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


# -- round trip ------------------------------------------------------------------------------------------------
def test_synth_layout_loads_through_dfew(synth_root):
    train = DFEW(synth_root, fold=1, split="train", preprocess=PRE)
    test = DFEW(synth_root, fold=1, split="test", preprocess=PRE)
    assert (len(train), len(test)) == (16, 4) and train.train and not test.train
    assert train.class_names == SYNTH_CLASSES and train.preprocess is PRE
    assert sorted(test.labels) == [0, 1, 2, 3]  # stratified: one clip of each class per fold
    for ds in (train, test):
        item = ds[3]
        assert item["video"].dtype == torch.uint8 and item["video"].shape == (16, 3, 32, 32)
        assert item["audio"].dtype == torch.float32 and item["audio"].shape == (1, 512, 128)
        assert item["label"].dtype == torch.int64 and int(item["label"]) == ds.labels[3]
        assert item["index"] == 3
    # the test item is deterministic; its audio is the WAV's normalised fbank, not silence
    a, b = test[0], test[0]
    assert torch.equal(a["video"], b["video"]) and torch.equal(a["audio"], b["audio"])
    assert not torch.allclose(a["audio"], audio_features(None, None, PRE))
    batch = collate_clips([train[i] for i in range(3)])
    assert batch["video"].shape == (3, 16, 3, 32, 32) and batch["label"].tolist() == train.labels[:3]


def test_synth_folds_partition_the_clips(synth_root):
    ann = synth_root / "annotations"
    every = {f"clips/synth_{i:05d}" for i in range(CLIPS)}
    tests = []
    for k in range(1, 6):
        test = {line.split()[0] for line in _lines(ann / f"set_{k}_test.txt")}
        train = {line.split()[0] for line in _lines(ann / f"set_{k}_train.txt")}
        assert not test & train and test | train == every
        tests.append(test)
    assert set().union(*tests) == every and sum(map(len, tests)) == CLIPS
    assert _lines(synth_root / "classes.txt") == list(SYNTH_CLASSES)


def test_synth_rerun_keeps_finished_clips(synth_root, capsys):
    before = (synth_root / "clips" / "synth_00003" / "00001.jpg").stat().st_mtime_ns
    assert main(["synth", str(synth_root), "--clips", str(CLIPS), "--size", "48", "--frames", "20"]) == 0
    assert "0 written" in capsys.readouterr().out
    assert (synth_root / "clips" / "synth_00003" / "00001.jpg").stat().st_mtime_ns == before


def test_build_dataset_folder_kind_reads_all_txt(synth_root, tmp_path):
    root = tmp_path / "flat"
    shutil.copytree(synth_root / "clips", root / "clips")
    write_fold_annotations(root, [(f"synth_{i:05d}", 20, i % 4) for i in range(8)], num_folds=None)
    ds = build_dataset("folder", root, fold=None, split="all", preprocess=PRE)
    assert len(ds) == 8 and not ds.train and ds.class_names == ("class0", "class1", "class2", "class3")
    assert ds[7]["video"].shape == (16, 3, 32, 32)
    with pytest.raises(ValueError, match="unknown dataset kind"):
        build_dataset("kinetics", root)


def test_train_mode_augments(synth_root):
    ds = DFEW(synth_root, fold=1, split="train", preprocess=PRE)
    torch.manual_seed(0)
    assert not torch.equal(ds[0]["video"], ds[0]["video"])


# -- bad samples -------------------------------------------------------------------------------------------------
def test_corrupt_jpeg_raises_sample_error_naming_index_and_path(synth_copy):
    ds = DFEW(synth_copy, fold=1, split="test", preprocess=PRE)
    folder = Path(ds.records[2].path)
    (folder / "00001.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    with pytest.raises(SampleError) as info:
        ds[2]
    msg = str(info.value)
    assert "sample 2" in msg and str(folder) in msg and "00001.jpg" in msg and "cannot decode image" in msg
    assert info.value.index == 2 and isinstance(info.value, MediaError)
    ds[1]  # the others still load


def test_skip_policy_drops_bad_samples_and_logs_once(synth_copy, caplog):
    ds = DFEW(synth_copy, fold=1, split="test", preprocess=PRE, on_bad_sample="skip")
    shutil.rmtree(ds.records[0].path)
    (Path(ds.records[1].path).parent / (Path(ds.records[1].path).name + ".wav")).unlink()
    with caplog.at_level(logging.WARNING, logger="mmadfer.data.datasets"):
        assert ds[0] is None and ds[0] is None and ds[1] is None
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2  # once per bad sample
    assert "frame folder not found" in warnings[0] and "audio file not found" in warnings[1]
    batch = collate_clips([ds[i] for i in range(4)])
    assert batch["index"].tolist() == [2, 3] and batch["video"].shape[0] == 2
    assert collate_clips([ds[0], ds[1]]) is None


def test_missing_and_empty_audio(synth_copy):
    ds = DFEW(synth_copy, fold=1, split="test", preprocess=PRE)
    wav = Path(ds.records[0].path + ".wav")
    wav.unlink()
    with pytest.raises(SampleError, match="audio file not found"):
        ds[0]
    silent = audio_features(None, None, PRE)
    lenient = DFEW(synth_copy, fold=1, split="test", preprocess=PRE, allow_missing_audio=True)
    assert torch.equal(lenient[0]["audio"], silent)
    write_wav(wav, np.zeros((2, 0)), 44100)  # an empty WAV marks a clip without sound
    assert torch.equal(ds[0]["audio"], silent)


def test_annotation_frame_count_caps_the_sampled_frames(synth_copy):
    folder = synth_copy / "clips" / "synth_00000"
    for i in range(11, 21):  # keep 10 frames; the annotation says 20
        (folder / f"{i:05d}.jpg").unlink()
    ds = FrameFolderDataset([ClipRecord(str(folder), 20, 0)], SYNTH_CLASSES, preprocess=PRE)
    assert ds[0]["video"].shape == (16, 3, 32, 32)  # N = min(20, 10): every frame, then the last repeated


def test_frames_are_ordered_naturally(tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    for i in range(12):  # MAFW-style unpadded names: 0.jpg ... 11.jpg, frame i has brightness 20 * i
        Image.fromarray(np.full((8, 8, 3), 20 * i, np.uint8)).save(folder / f"{i}.jpg", quality=100)
    write_wav(tmp_path / "clip.wav", np.zeros((1, 1600)), 16000)
    pre = PreprocessConfig(img_size=8, num_frames=12)
    natural = FrameFolderDataset([ClipRecord(str(folder), None, 0)], ["a"], preprocess=pre)[0]["video"]
    assert natural[:, 0, 4, 4].div(20).round().tolist() == list(range(12))
    lexi = FrameFolderDataset([ClipRecord(str(folder), None, 0)], ["a"], preprocess=pre, frame_order="lexicographic")
    assert lexi[0]["video"][:, 0, 4, 4].div(20).round().tolist() == [0, 1, 10, 11, 2, 3, 4, 5, 6, 7, 8, 9]


def test_label_out_of_range_is_rejected_at_construction(tmp_path):
    with pytest.raises(ValueError, match="label 3 is out of range"):
        FrameFolderDataset([ClipRecord(str(tmp_path), None, 3)], ["a", "b"])
    with pytest.raises(ValueError, match="on_bad_sample"):
        FrameFolderDataset([], ["a"], on_bad_sample="ignore")


# -- index parsers -----------------------------------------------------------------------------------------------
def test_reference_annotation_reroots_the_authors_absolute_paths(tmp_path):
    (tmp_path / "frames" / "00001").mkdir(parents=True)
    ann = tmp_path / "DFEW_set_1_test.txt"
    ann.write_text("/scratch/someone/dfew/clip_224x224/00001 144 1\n\nclips/00002 70 6\n")
    recs = read_reference_annotation(ann, root=tmp_path / "frames")
    assert recs[0] == ClipRecord(str(tmp_path / "frames" / "00001"), 144, 1)
    assert recs[1] == ClipRecord(str(tmp_path / "frames" / "clips" / "00002"), 70, 6)
    assert read_reference_annotation(ann, root=tmp_path, label_offset=1)[1].label == 5
    ann.write_text("clips/00001 144\n")
    with pytest.raises(ValueError, match=r"DFEW_set_1_test.txt:1: expected 'path num_frames label'"):
        read_reference_annotation(ann)
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_reference_annotation(tmp_path / "nope.txt")


def _official_dfew(tmp_path: Path, synth_root: Path) -> Path:
    root = tmp_path / "DFEW"
    frames = root / "Clip" / "clip_224x224"
    for i in (1, 2, 12):
        shutil.copytree(synth_root / "clips" / f"synth_{i:05d}", frames / f"{i:05d}")
        shutil.copy(synth_root / "clips" / f"synth_{i:05d}.wav", tmp_path / f"{i}.wav")  # DFEW-style wav names
    split = root / "EmoLabel_DataSplit" / "test(single-labeled)"
    split.mkdir(parents=True)
    (split / "set_2.csv").write_text("video_name,label\n1,1\n2,7\n12,3\n")
    return root


def test_dfew_reads_the_official_split_csv(tmp_path, synth_root):
    root = _official_dfew(tmp_path, synth_root)
    recs = read_dfew_csv(root / "EmoLabel_DataSplit" / "test(single-labeled)" / "set_2.csv", root / "Clip" / "clip_224x224")
    assert [Path(r.path).name for r in recs] == ["00001", "00002", "00012"] and [r.label for r in recs] == [0, 6, 2]
    ds = DFEW(root, fold=2, split="test", preprocess=PRE, audio_root=tmp_path)
    assert ds.class_names == DFEW_CLASSES and ds.labels == [0, 6, 2] and ds.annotation_file.suffix == ".csv"
    assert ds[2]["video"].shape == (16, 3, 32, 32)
    with pytest.raises(FileNotFoundError, match="set_3_test.txt"):
        DFEW(root, fold=3, split="test")
    with pytest.raises(ValueError, match="folds 1..5"):
        DFEW(root, fold=6, split="test")


def test_mafw_split_file_by_name_or_index(tmp_path):
    split = tmp_path / "MAFW" / "Train & Test Set" / "single" / "no_caption" / "set_1"
    split.mkdir(parents=True)
    (split / "train.txt").write_text("00025.mp4 happiness\n00026.mp4 Contempt\n")
    (split / "test.txt").write_text("00027 4\n00028 11\n")
    assert [r.label for r in read_mafw_split(split / "train.txt", tmp_path)] == [3, 7]
    assert [r.label for r in read_mafw_split(split / "test.txt", tmp_path)] == [3, 10]  # 1-based
    assert Path(read_mafw_split(split / "test.txt", tmp_path)[0].path).name == "00027"
    ds = MAFW(tmp_path, fold=1, split="test")
    assert ds.num_classes == 11 and ds.labels == [3, 10] and ds.allow_missing_audio
    (split / "test.txt").write_text("00027 grumpy\n")
    with pytest.raises(ValueError, match="unknown class 'grumpy'"):
        read_mafw_split(split / "test.txt", tmp_path)


def test_clip_csv_classes_and_errors(tmp_path):
    csv = tmp_path / "clips.csv"
    csv.write_text("video,label,start,end\na.mp4,sad,,\nsub/b.mp4,happy,1.5,4\n")
    recs, names = read_clip_csv(csv)
    assert names == ("happy", "sad") and [r.label for r in recs] == [1, 0]
    assert recs[1] == ClipRecord(str(tmp_path / "sub" / "b.mp4"), None, 0, start_s=1.5, end_s=4.0)
    recs, names = read_clip_csv(csv, class_names=["sad", "happy", "angry"])
    assert [r.label for r in recs] == [0, 1] and names == ("sad", "happy", "angry")
    csv.write_text("file,label\na.mp4,sad\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['video'\]"):
        read_clip_csv(csv)
    csv.write_text("video,label,start,end\na.mp4,sad,3,2\n")
    with pytest.raises(ValueError, match="clips.csv:2: end 2.0 is not after start 3.0"):
        read_clip_csv(csv)
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        CSVClipDataset(tmp_path / "missing.csv")


def test_csv_dataset_reads_the_synth_raw_videos(synth_root, tmp_path):
    ds = CSVClipDataset(synth_root / "raw.csv", preprocess=PRE)
    assert len(ds) == CLIPS and ds.class_names == tuple(sorted(SYNTH_CLASSES))  # names from the CSV, sorted
    ds = CSVClipDataset(synth_root / "raw.csv", preprocess=PRE, class_names=SYNTH_CLASSES)
    assert ds.labels == [i % 4 for i in range(CLIPS)]
    item = ds[5]
    assert item["video"].dtype == torch.uint8 and item["video"].shape == (16, 3, 32, 32)
    assert item["audio"].shape == (1, 512, 128) and not torch.allclose(item["audio"], audio_features(None, None, PRE))
    assert int(item["label"]) == 1 and item["index"] == 5
    # a frame of the decoded mp4 is close to the same frame of the JPEG folder (both are lossy copies)
    folder = FrameFolderDataset([ClipRecord(str(synth_root / "clips" / "synth_00005"), None, 1)], SYNTH_CLASSES,
                                preprocess=PRE)
    assert (item["video"].float() - folder[0]["video"].float()).abs().mean() < 6

    train = CSVClipDataset(synth_root / "raw.csv", preprocess=PRE, train=True)
    assert train[0]["video"].shape == (16, 3, 32, 32)

    csv = tmp_path / "one.csv"
    csv.write_text(f"video,label\n{synth_root / 'raw' / 'nope.mp4'},x\n")
    with pytest.raises(SampleError, match=r"sample 0 .*nope.mp4.*video file not found"):
        CSVClipDataset(csv)[0]
