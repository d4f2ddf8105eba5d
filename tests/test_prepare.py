"""`mmadfer prepare`: good clips are all prepared, bad files are reported without stopping the run, re-runs resume."""
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mmadfer.cli import main
from mmadfer.config import PreprocessConfig
from mmadfer.data.datasets import build_dataset
from mmadfer.data.prepare import assign_clip_ids, prepare_videos
from mmadfer.data.synthetic import make_astronaut_video, render_clip
from mmadfer.media.encode import write_video
from mmadfer.media.fbank import audio_features

PRE = PreprocessConfig(img_size=32)


@pytest.fixture
def raw_folder(tmp_path) -> Path:
    """Three good clips (one without audio, one in a sub-folder), an empty file and a text file named .mp4."""
    folder = tmp_path / "raw"
    (folder / "more").mkdir(parents=True)
    for i, (name, audio) in enumerate([("a", True), ("b", True), ("more/silent clip", False)]):
        c = render_clip(i % 4, num_frames=10, size=48, seed=(1, i))
        write_video(folder / f"{name}.mp4", c.frames, c.fps, c.waveform if audio else None,
                    c.sample_rate if audio else None)
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "notes.mp4").write_text("this is not a video\n" * 20)
    (folder / "readme.txt").write_text("ignored: not a video ending")
    (tmp_path / "labels.csv").write_text("video,label\nraw/a.mp4,happy\nb.mp4,sad\nsilent clip,sad\nempty.mp4,happy\n")
    return folder


def _report(root: Path) -> dict[str, dict]:
    with open(root / "prepare_report.csv", newline="") as f:
        return {row["clip_id"]: row for row in csv.DictReader(f)}


def test_prepare_keeps_good_clips_reports_bad_ones_and_resumes(raw_folder, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["prepare", str(raw_folder), "--out", str(out), "--no-faces", "--size", "32", "--workers", "1",
            "--labels", str(tmp_path / "labels.csv")]
    assert main(argv) == 1  # some inputs failed
    captured = capsys.readouterr()
    assert "prepared 3, skipped 0 (already done), failed 2 of 5 videos" in captured.out
    assert "empty.mp4" in captured.err and "notes.mp4" in captured.err

    report = _report(out)
    assert set(report) == {"a", "b", "silent_clip", "empty", "notes"}
    for cid in ("a", "b", "silent_clip"):
        assert report[cid]["status"] == "ok" and report[cid]["n_frames"] == "10"
        assert len(list((out / "clips" / cid).glob("*.jpg"))) == 10
    assert report["a"]["has_audio"] == "True" and report["silent_clip"]["has_audio"] == "False"
    assert report["empty"]["status"] == "failed" and "empty" in report["empty"]["reason"]
    assert report["notes"]["status"] == "failed" and "not a media file" in report["notes"]["reason"]
    assert not (out / "clips" / "empty").exists() and not list((out / "clips").glob("*.tmp"))
    assert json.loads((out / "prepare_report.json").read_text())["summary"] == {"ok": 3, "skipped": 0, "failed": 2}

    # annotations for the labelled, prepared clips; classes are the CSV's sorted names
    assert (out / "classes.txt").read_text().split() == ["happy", "sad"]
    lines = sorted((out / "annotations" / "all.txt").read_text().splitlines())
    assert lines == ["clips/a 10 0", "clips/b 10 1", "clips/silent_clip 10 1"]
    ds = build_dataset("folder", out, fold=None, split="all", preprocess=PRE)
    items = [ds[i] for i in range(len(ds))]
    assert all(it["video"].shape == (16, 3, 32, 32) for it in items)
    silent = audio_features(None, None, PRE)
    assert [torch.equal(it["audio"], silent) for it in items] == [False, False, True]

    # a re-run skips the finished clips (their files are not rewritten) and still reports the bad ones
    stamp = (out / "clips" / "a" / "00001.jpg").stat().st_mtime_ns
    assert main(argv[:-2]) == 1
    report = _report(out)
    assert [report[c]["status"] for c in ("a", "b", "silent_clip", "empty")] == ["skipped"] * 3 + ["failed"]
    assert report["a"]["n_frames"] == "10" and report["silent_clip"]["has_audio"] == "False"
    assert (out / "clips" / "a" / "00001.jpg").stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_worker_processes_give_the_same_result(raw_folder, tmp_path):
    serial = prepare_videos([raw_folder], tmp_path / "serial", faces=False, size=32, workers=1, progress=False)
    parallel = prepare_videos([raw_folder], tmp_path / "parallel", faces=False, size=32, workers=2, progress=False)
    assert [(r.clip_id, r.status, r.reason, r.n_frames) for r in parallel.results] == \
        [(r.clip_id, r.status, r.reason, r.n_frames) for r in serial.results]
    for name in ("a/00007.jpg", "silent_clip.wav", "b.wav"):
        assert (tmp_path / "parallel" / "clips" / name).read_bytes() == (tmp_path / "serial" / "clips" / name).read_bytes()


def test_interrupted_clip_is_redone(raw_folder, tmp_path):
    out = tmp_path / "out"
    prepare_videos([raw_folder / "a.mp4"], out, faces=False, size=32, workers=1, progress=False)
    # simulate an interrupt after the WAV was written and while the frames were being written
    shutil.rmtree(out / "clips" / "a")
    (out / "clips" / "a.tmp").mkdir()
    (out / "clips" / "a.tmp" / "00001.jpg").write_bytes(b"half")
    summary = prepare_videos([raw_folder / "a.mp4"], out, faces=False, size=32, workers=1, progress=False)
    assert [r.status for r in summary.results] == ["ok"]
    assert len(list((out / "clips" / "a").glob("*.jpg"))) == 10 and not (out / "clips" / "a.tmp").exists()


def test_clip_ids_are_safe_and_unique():
    ids = assign_clip_ids([Path("x/my clip.mp4"), Path("y/my clip.mov"), Path("z/ok-1.mkv")])
    assert ids == ["my_clip", "my_clip_2", "ok-1"]


def test_missing_input_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.mp4"):
        prepare_videos([tmp_path / "nothing.mp4"], tmp_path / "out")


@pytest.mark.slow
def test_prepare_crops_a_real_face(tmp_path):
    pytest.importorskip("facenet_pytorch")
    video = make_astronaut_video(tmp_path / "astronaut.mp4", seconds=0.6, size=160)
    summary = prepare_videos([video], tmp_path / "out", size=64, workers=1, progress=False)
    (result,) = summary.results
    assert result.status == "ok", result.reason
    assert result.face_coverage > 0.9 and not result.fallback and result.has_audio and result.channels == 2
    frames = sorted((tmp_path / "out" / "clips" / "astronaut").glob("*.jpg"))
    assert len(frames) == result.n_frames == 15
    from PIL import Image

    crop = np.asarray(Image.open(frames[0]))
    assert crop.shape == (64, 64, 3)


def test_a_clip_named_dot_dot_never_deletes_outside_its_folder(raw_folder, tmp_path, capsys):
    """'...mp4' has the stem '..' and '..mp4' the stem '.': their clip folders would be ROOT or ROOT/clips."""
    out = tmp_path / "R"
    assert main(["prepare", str(raw_folder / "a.mp4"), str(raw_folder / "b.mp4"), "--out", str(out), "--no-faces",
                 "--size", "32", "--workers", "1"]) == 0
    (out / "notes.txt").write_text("x")
    for name in ("...mp4", "..mp4"):
        shutil.copy(raw_folder / "a.mp4", tmp_path / name)
    capsys.readouterr()
    assert main(["prepare", str(tmp_path / "...mp4"), str(tmp_path / "..mp4"), str(raw_folder / "b.mp4"), "--out",
                 str(out), "--no-faces", "--size", "32", "--workers", "1"]) == 1
    assert (out / "notes.txt").read_text() == "x"
    assert len(list((out / "clips" / "a").glob("*.jpg"))) == 10 and (out / "clips" / "b.wav").is_file()
    report = _report(out)
    assert report[".."]["status"] == "failed" and "unsafe clip name '..'" in report[".."]["reason"]
    assert report["."]["status"] == "failed" and report["b"]["status"] == "skipped"
    assert "unsafe clip name" in capsys.readouterr().err


def test_cleanup_refuses_paths_outside_its_folder(tmp_path):
    from mmadfer.data.layout import check_clip_id, remove_inside, write_clip_folder

    (tmp_path / "clips" / "x").mkdir(parents=True)
    (tmp_path / "keep.txt").write_text("x")
    for bad in ("..", ".", "", "a/b", "../clips"):
        with pytest.raises(ValueError, match="unsafe clip name"):
            check_clip_id(bad)
        with pytest.raises(ValueError, match="unsafe clip name"):
            write_clip_folder(tmp_path, bad, np.zeros((1, 8, 8, 3), np.uint8), None, 16000)
    for outside in (tmp_path / "clips", tmp_path / "clips" / "..", tmp_path, tmp_path / "keep.txt"):
        with pytest.raises(ValueError, match="refusing to delete"):
            remove_inside(outside, tmp_path / "clips")
    assert (tmp_path / "keep.txt").is_file() and (tmp_path / "clips" / "x").is_dir()
    (tmp_path / "clips" / "link").symlink_to(tmp_path)  # a link inside is removed, never followed
    remove_inside(tmp_path / "clips" / "link", tmp_path / "clips")
    remove_inside(tmp_path / "clips" / "x", tmp_path / "clips")
    assert (tmp_path / "keep.txt").is_file() and not (tmp_path / "clips" / "x").exists()
