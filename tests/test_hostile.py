"""Broken and hostile input (issue 11): each case gets a clear, bounded answer, and no input is ever overwritten."""
from __future__ import annotations

import os
import time
import tracemalloc

import av
import numpy as np
import pytest

from mmadfer import CheckpointError, save_checkpoint
from mmadfer.cli import main
from mmadfer.data.synthetic import make_astronaut_video
from mmadfer.media.decode import VideoReader, open_video
from mmadfer.media.encode import write_video
from mmadfer.media.windows import count_windows, kept_windows, window_spans
from mmadfer.predict import Recognizer


@pytest.fixture(scope="module")
def checkpoint(tiny_model, tmp_path_factory):
    return save_checkpoint(tiny_model, tmp_path_factory.mktemp("ck") / "tiny.safetensors")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_astronaut_video(tmp_path_factory.mktemp("v") / "a.mp4", seconds=1.0, fps=8, size=64, audio=False)


def _predict(*args):
    return main(["predict", *map(str, args), "--no-faces", "--backend", "torch"])


# -- outputs -----------------------------------------------------------------------------------------------------------
def test_anonymize_never_overwrites_an_input(checkpoint, clip, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    video = folder / "talk.mp4"
    video.write_bytes(open(clip, "rb").read())
    original = video.read_bytes()
    # `--anonymize DIR` into the input folder names the input itself as the anonymised copy
    assert _predict(folder, "-c", checkpoint, "-o", tmp_path / "out", "--anonymize", folder) == 2
    assert "is an input video" in capsys.readouterr().err and video.read_bytes() == original
    os.link(video, tmp_path / "hard.mp4")  # the same file under another name: still an input
    assert _predict(video, "-c", checkpoint, "-o", tmp_path / "out2", "--anonymize", tmp_path / "hard.mp4",
                    "--overwrite") == 2
    assert video.read_bytes() == original
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())  # nothing was processed


def test_existing_outputs_are_kept_unless_overwrite(checkpoint, clip, tmp_path, capsys):
    table = tmp_path / "t.csv"
    table.write_text("mine\n")
    assert _predict(clip, "-c", checkpoint, "-o", table) == 2
    assert "exists; refusing to replace it" in capsys.readouterr().err and table.read_text() == "mine\n"
    assert _predict(clip, "-c", checkpoint, "-o", table, "--overwrite") == 0
    assert table.read_text().startswith("start_s")
    assert "mmadfer: predicting with torch fp32" in capsys.readouterr().err  # predict says what ran


def test_unwritable_output_folder_fails_before_any_video(checkpoint, clip, tmp_path, capsys, monkeypatch):
    if os.geteuid() == 0:  # root writes anywhere: make the folder a file's child instead
        (tmp_path / "file").write_text("")
        out = tmp_path / "file" / "sub"
    else:
        out = tmp_path / "ro"
        out.mkdir(mode=0o500)
    decoded = []
    monkeypatch.setattr(VideoReader, "read", lambda self, *a, **k: decoded.append(1) or 1 / 0)
    assert _predict(clip, "-c", checkpoint, "-o", out) == 2
    assert "cannot write outputs there" in capsys.readouterr().err and decoded == []


def test_stale_temporaries_of_a_killed_run_are_removed(checkpoint, clip, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    stale = out / ".a.csv.k3j2h1g0.tmp"  # what atomic_write leaves when its process is SIGKILLed
    stale_video = out / ".a.mp4.ab12cd34.mp4"
    fresh = out / ".a.csv.zz99yy88.tmp"  # another process's write in progress: newer than this run
    other = out / ".notes.txt.ab12cd34.tmp"  # not one of our outputs: never touched
    for p in (stale, stale_video, fresh, other):
        p.write_text("partial")
    old = time.time() - 3600
    for p in (stale, stale_video, other):
        os.utime(p, (old, old))
    os.utime(fresh, (time.time() + 60, time.time() + 60))
    assert _predict(clip, "-c", checkpoint, "-o", out, "--anonymize", out) == 0
    assert not stale.exists() and not stale_video.exists() and fresh.exists() and other.exists()
    assert (out / "a.csv").exists() and (out / "a.mp4").exists()


# -- inputs ------------------------------------------------------------------------------------------------------------
def test_symlink_loop_fifo_and_folder_named_like_videos_are_reported_as_failed(checkpoint, clip, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.mp4").write_bytes(open(clip, "rb").read())
    (folder / "loop.mp4").symlink_to(folder / "loop.mp4")
    os.mkfifo(folder / "pipe.mp4")
    (folder / "x.mp4").mkdir()
    assert _predict(folder, "-c", checkpoint, "-o", tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert "loop.mp4: a symbolic link loop" in err and "pipe.mp4: a FIFO" in err and "x.mp4: a folder" in err
    assert "1 succeeded, 3 failed" in err


def test_crafted_timestamp_is_bounded_by_the_decoded_content(checkpoint, tmp_path, monkeypatch):
    path = write_video(tmp_path / "crafted.mkv", np.zeros((11, 32, 32, 3), np.uint8), 10,
                       frame_times=[i / 10 for i in range(10)] + [1e7])  # the last frame says 1e7 s
    assert os.path.getsize(path) < 100_000 and open_video(path).duration_s > 1e7 - 1
    reads = []
    real = VideoReader.read

    def counted(self, *a, **k):
        reads.append(1)
        assert len(reads) < 100, "walking the timestamps window by window"
        return real(self, *a, **k)

    monkeypatch.setattr(VideoReader, "read", counted)
    with open_video(path) as reader:
        assert [c.num_frames for c in kept_windows(reader, 5.12)] == [10]
    rec = Recognizer.from_checkpoint(checkpoint, device="cpu", backend="torch", detector=None)
    tracemalloc.start()
    df = rec.predict_video(path, progress={"disable": True})  # the bar's total: counted, not listed
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(df) == 1 and peak < 50e6


def test_count_windows_is_window_spans_without_the_list():
    rng = np.random.default_rng(0)
    for _ in range(2000):
        d, w = float(rng.uniform(0, 40)), float(rng.choice([5.12, rng.uniform(0.5, 8)]))
        st, s0 = float(rng.choice([w, rng.uniform(0.2, 9)])), float(rng.choice([0.0, rng.uniform(0, 5)]))
        assert count_windows(d, w, st, start_s=s0) == len(window_spans(d, w, st, start_s=s0))
    assert count_windows(1e12, 5.12) == 195_312_500_000  # constant time and memory


def test_one_pixel_video_gives_rows_without_faces(checkpoint, tmp_path):
    pytest.importorskip("facenet_pytorch")
    path = tmp_path / "dot.mkv"
    with av.open(str(path), "w") as c:  # FFV1 takes odd sizes; H.264 needs even ones
        s = c.add_stream("ffv1", rate=8)
        s.width = s.height = 1
        s.pix_fmt = "yuv444p"
        for i in range(16):
            for p in s.encode(av.VideoFrame.from_ndarray(np.full((1, 1, 3), 10 * i, np.uint8), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    rec = Recognizer.from_checkpoint(checkpoint, device="cpu", backend="torch")  # with the face detector
    df = rec.predict_video(path)
    assert len(df) == 1 and df.face_coverage.tolist() == [0.0]  # too small to hold a face: frames used whole


# -- model files -------------------------------------------------------------------------------------------------------
def test_garbage_onnx_and_xml_give_checkpoint_errors_naming_the_file(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    from mmadfer.runtime.onnx import OnnxRunner

    bad = tmp_path / "model.onnx"
    bad.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match="model.onnx.*not a readable ONNX model"):
        OnnxRunner(bad)
    assert main(["predict", str(bad), "-c", str(bad)]) == 2
    assert "model.onnx" in capsys.readouterr().err
    pytest.importorskip("openvino")
    from mmadfer.runtime.openvino import OpenVinoRunner

    xml = tmp_path / "model.xml"
    xml.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match="model.xml"):
        OpenVinoRunner(xml)
