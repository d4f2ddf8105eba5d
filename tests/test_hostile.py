"""Broken and hostile input (issue 11): each case gets a clear, bounded answer, and no input is ever overwritten."""
from __future__ import annotations

import csv
import json
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
    old = time.time() - 7 * 86400  # older than this test process, however long the suite has run
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


# -- issue 22: resume by output, hostile names, class names, CSV cells, locks ------------------------------------------
def test_skip_existing_completes_a_killed_anonymize_run(checkpoint, tmp_path, capsys):
    """A run killed after v1's timeline but before v1's anonymised copy, with outputs cut short (v0's timeline, v1's
    chart) and a face crop missing: --skip-existing keeps every complete output untouched and makes exactly the
    missing and incomplete ones, byte for byte as a full run writes them."""
    src = tmp_path / "in"
    for i in range(2):
        make_astronaut_video(src / f"v{i}.mp4", seconds=1.0, fps=8, size=64, seed=i, audio=False)
    out, anon, faces = tmp_path / "t", tmp_path / "a", tmp_path / "f"
    argv = [src, "-c", checkpoint, "-o", out, "--anonymize", anon, "--plot", "--save-faces", faces, "--workers", "0"]
    assert _predict(*argv) == 0
    full = {p: p.read_bytes() for p in (anon / "v1.mp4", out / "v1.png", out / "v0.csv")}
    # what a SIGKILL while v1's anonymised copy is encoded leaves: its hidden temporary, half written, no v1.mp4
    temp = anon / ".v1.mp4.k1ll3d00.mp4"
    temp.write_bytes(full[anon / "v1.mp4"][:4000])
    old = time.time() - 7 * 86400  # older than this test process (stale), however long the suite has run
    os.utime(temp, (old, old))
    (anon / "v1.mp4").unlink()
    (out / "v1.png").write_bytes(full[out / "v1.png"][:3000])  # files cut short (a copy, a power cut...)
    (out / "v0.csv").write_bytes(full[out / "v0.csv"][:-10])
    crop = sorted((faces / "v0").glob("*.jpg"))[0]
    crop.unlink()
    capsys.readouterr()
    assert _predict(*argv) == 2  # without --skip-existing nothing is replaced
    assert "exists; refusing to replace it" in capsys.readouterr().err
    kept = {p: p.stat().st_mtime_ns for p in (out / "v0.png", anon / "v0.mp4", out / "v1.csv")}

    assert _predict(*argv, "--skip-existing") == 0
    err = capsys.readouterr().err
    assert "2 succeeded, 0 failed" in err, err  # both videos had something missing
    assert "v1.png: incomplete (" in err and "v0.csv: incomplete (cut short" in err  # what was refused, and why
    assert not temp.exists() and not list(tmp_path.rglob(".*"))  # the stale temporary is gone, no new one left
    for p, data in full.items():
        assert p.read_bytes() == data, p  # remade exactly
    assert crop.is_file()
    assert kept == {p: p.stat().st_mtime_ns for p in kept}  # complete outputs untouched

    assert _predict(*argv, "--skip-existing") == 0  # nothing left to do
    assert "0 succeeded, 0 failed, 2 skipped" in capsys.readouterr().err


def test_hostile_names_never_stop_a_batch(tmp_path, capsys):
    """Non-UTF-8 bytes, 250-byte names, a name whose output cannot exist, formula-like and mathtext class names, with
    --plot --index: every good video is processed, the index lists every one losslessly, nothing raw reaches
    the terminal."""
    from urllib.parse import unquote_to_bytes

    import torch

    from mmadfer import MMADFER, ModelConfig

    torch.manual_seed(0)
    labels = ("=HYPERLINK(1)", "cost $5 or $6", r"$x^$", "@calm")  # r"$x^$" is invalid mathtext
    ck = save_checkpoint(MMADFER(ModelConfig.tiny(num_classes=4, class_names=labels)), tmp_path / "m.safetensors")
    src = tmp_path / "in"
    names = [b"good.mp4", b"caf\xe9 \x1b[31m.mp4", b"n" * 246 + b".mp4", b"q" * 251 + b".mp4"]
    for i, name in enumerate(names):
        make_astronaut_video(os.fsdecode(os.fsencode(src) + b"/" + name), seconds=1.0, fps=8, size=64, seed=i,
                             audio=False)
    broken = b"broken\xff\x1b]0;pwn\x07.mp4"  # not a video either: fails alone, its line shown escaped
    (tmp_path / "in").joinpath(os.fsdecode(broken)).write_bytes(b"junk" * 100)
    out = tmp_path / "out"
    assert _predict(src, "-c", ck, "-o", out, "--format", "json", "--plot", "--index", "--workers", "0") == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err and "\udcff" not in err  # nothing raw reaches the terminal
    assert "broken\\xff\\x1b]0;pwn\\x07.mp4: " in err
    lines = [ln for ln in err.splitlines() if "qqqq" in ln]
    assert len(lines) == 1 and "256 bytes, over this file system's limit of 255" in lines[0]
    assert "3 succeeded, 2 failed" in err
    made = sorted(os.listdir(os.fsencode(out)))
    assert made == sorted([b"index.csv", b"summary.csv"] + [n[:-4] + ext for n in names[:3] for ext in (b".json", b".png")])
    assert "caf\\xe9 \\x1b[31m.mp4" in (out / "summary.csv").read_text(encoding="utf-8")  # escaped there too

    from mmadfer.io import read_csv

    rows = read_csv(out / "index.csv")
    by_name = {os.path.basename(unquote_to_bytes(r["video_bytes"]) if r["video_bytes"] else
                                os.fsencode(r["video"])): r for r in rows}
    assert set(by_name) == {*names, broken}  # every name exactly, from the CSV alone
    assert {n: by_name[n]["status"] for n in by_name} == {**dict.fromkeys(names[:3], "done"), names[3]: "failed",
                                                          broken: "failed"}
    raw = (out / "index.csv").read_bytes().decode("utf-8")  # valid UTF-8 throughout
    assert "caf\\xe9 \\x1b[31m.mp4" in raw and "%E9%20%1B%5B31m.mp4" in raw  # shown escaped, and the exact bytes
    doc = json.loads(open(os.fsencode(out) + b"/" + names[1][:-4] + b".json", encoding="utf-8").read())
    assert doc["video_bytes"].endswith("caf%E9%20%1B%5B31m.mp4") and "\\xe9" in doc["video"]
    assert {w["label"] for w in doc["windows"]} <= set(labels)  # JSON keeps labels as they are

    # CSV cells for spreadsheets: the label column escaped (OWASP), p_ headers are safe already
    assert _predict(src / "good.mp4", "-c", ck, "-o", tmp_path / "g.csv") == 0
    cells = (tmp_path / "g.csv").read_text().splitlines()[1].split(",")
    assert cells[2][0] == "'" and cells[2][1:] in labels


def test_class_names_are_checked_at_load_and_drawn_as_text(tmp_path):
    import pandas as pd

    from mmadfer import MMADFER, ModelConfig, load_checkpoint
    from mmadfer.predict.timeline import plot_timeline
    from mmadfer.metrics import classification_metrics, plot_confusion

    for names, why in [(("a", "b\x1b]0;pwn\x07"), "non-printable"), (("a", ""), "empty"), (("a", "a"), "repeats"),
                       (("a", "no_face"), "reserved"), (("uncertain", "b"), "reserved"), (("a", " b"), "spaces")]:
        path = save_checkpoint(MMADFER(ModelConfig.tiny(num_classes=2, class_names=names)), tmp_path / "bad.safetensors")
        with pytest.raises(CheckpointError, match=why) as e:
            load_checkpoint(path)
        assert str(path) in str(e.value) and "\x1b" not in str(e.value)

    labels = ["cost $5 or $6", r"$x^$", "=x"]
    df = pd.DataFrame({"start_s": [0.0, 1.0, 2.0], "end_s": [1.0, 2.0, 3.0], "label": labels, "confidence": 0.5,
                       **{f"p_{c}": [1 / 3] * 3 for c in labels}, "face_coverage": 1.0, "has_audio": True})
    df.attrs.update(labels=labels, stride_s=1.0, video="a $b$ c.mp4")
    fig = plot_timeline(df, tmp_path / "t.png")
    shown = [t for t in fig.legends[0].get_texts()][:3]
    assert [t._preprocess_math(t.get_text()) for t in shown] == [(c, False) for c in labels]  # literal, no mathtext
    assert fig._suptitle._preprocess_math(fig._suptitle.get_text()) == ("a $b$ c.mp4", False)
    plot_confusion(classification_metrics([0, 1, 2], [0, 2, 1], labels), tmp_path / "c.png")  # mathtext would raise


def test_csv_cells_lock_files_and_terminal_text(tmp_path):
    from mmadfer.io import csv_cell, file_lock, read_csv, write_csv
    from mmadfer.text import terminal_text

    cells = ["=1+1", "+x", "-x", "@x", "\tx", "'x", "-0.5", "+3e-2", "plain", "a=b"]  # control characters escaped
    write_csv(tmp_path / "c.csv", ["v"], [[c] for c in cells])
    with open(tmp_path / "c.csv", newline="") as f:
        written = [row[0] for row in csv.reader(f)][1:]
    assert written == ["'=1+1", "'+x", "'-x", "'@x", "'\\tx", "''x", "-0.5", "+3e-2", "plain", "a=b"]
    assert csv_cell("\rx") == "'\\rx" and csv_cell("a\rb") == "a\\rb" and csv_cell(-1) == -1
    assert [r["v"] for r in read_csv(tmp_path / "c.csv")] == [c.replace("\t", "\\t") for c in cells]

    target = tmp_path / "victim"
    (tmp_path / "lock").symlink_to(target)  # planted where a lock file will be opened
    with pytest.raises(OSError, match="symbolic link"):
        with file_lock(tmp_path / "lock"):
            pass
    assert not target.exists()
    assert terminal_text("a\x1b]0;t\x07b\u202e" + os.fsdecode(b"\xff")) == "a\\x1b]0;t\\x07b\\u202e\\xff"
