"""Recognizer, `mmadfer predict`, timelines, anonymised copies and real-time mode, on real-looking videos.

The videos are scikit-image's astronaut photo animated (a real face MTCNN finds) at several lengths and frame rates,
with and without audio, written by ``make_astronaut_video``. The model is a tiny random one: these tests check the
plumbing (windows, batching, columns, probabilities, errors, files), not accuracy.
"""
from __future__ import annotations

import json
import os
import warnings

import av
import numpy as np
import pandas as pd
import pytest
import torch

from conftest import open_tiny_model
from mmadfer import MMADFER, ModelConfig, save_checkpoint
from mmadfer.cli import main
from mmadfer.data.synthetic import make_astronaut_video
from mmadfer.media.decode import open_video, read_clip
from mmadfer.media.encode import write_video
from mmadfer.media.windows import keep_window, window_spans
from mmadfer.predict import Recognizer, table_columns

LABELS = ("calm", "joy", "anger", "grief")


# ---------------------------------------------------------------------------------------------------------------------
# window arithmetic (hand-computed)
# ---------------------------------------------------------------------------------------------------------------------
def test_window_spans_hand_computed():
    # 12.0 s, window 5.12, stride 2: starts 0 2 4 6 8 10; at 8 the window is cut to 4.0 s (kept, >= 2.56),
    # at 10 to 2.0 s (dropped, < 2.56)
    assert window_spans(12.0, 5.12, 2.0) == [(0.0, 5.12), (2.0, 7.12), (4.0, 9.12), (6.0, 11.12), (8.0, 12.0)]
    # default stride = window: 0 and 5.12 are whole; 10.24 is cut to 1.76 s and dropped
    assert window_spans(12.0, 5.12) == [(0.0, 5.12), (5.12, 10.24)]
    # a cut window of exactly half a window is kept
    assert window_spans(7.68, 5.12) == [(0.0, 5.12), (5.12, 7.68)]
    # shorter than one window: one row for the whole video
    assert window_spans(3.0, 5.12) == [(0.0, 3.0)]
    assert window_spans(0.5, 5.12, 0.25) == [(0.0, 0.5)]
    # a part of the file
    assert window_spans(60.0, 4.0, 4.0, start_s=10.0, end_s=20.0) == [(10.0, 14.0), (14.0, 18.0), (18.0, 20.0)]
    # an hour at a 1 s stride: starts 0..3597 (the one at 3597 is 3.0 s long, at 3598 only 2.0 s)
    assert len(window_spans(3600.0, 5.12, 1.0)) == 3598
    assert keep_window(0, 0.1, 5.12) and not keep_window(1, 2.5, 5.12) and keep_window(1, 2.56, 5.12)
    with pytest.raises(ValueError):
        window_spans(10.0, 0.0)
    with pytest.raises(ValueError):
        window_spans(10.0, 5.12, -1.0)


# ---------------------------------------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_checkpoint(open_tiny_model(LABELS), tmp_path_factory.mktemp("ck") / "tiny.safetensors")


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    return {
        "long": make_astronaut_video(d / "long.mp4", seconds=12.0, fps=10, size=160, seed=1),
        "short": make_astronaut_video(d / "short.mp4", seconds=3.0, fps=15, size=160, seed=2),
        "silent": make_astronaut_video(d / "silent.mp4", seconds=6.0, fps=12, size=160, seed=3, audio=False),
    }


@pytest.fixture(scope="module")
def rec(checkpoint):
    return Recognizer.from_checkpoint(checkpoint, device="cpu")


def _check_timeline(df: pd.DataFrame, duration: float, window: float, stride: float, has_audio: bool):
    assert list(df.columns) == table_columns(LABELS)
    spans = window_spans(duration, window, stride)
    assert len(df) == len(spans)
    np.testing.assert_allclose(df[["start_s", "end_s"]].to_numpy(float), np.array(spans).reshape(-1, 2), atol=1e-3)
    p = df[[f"p_{c}" for c in LABELS]].to_numpy()
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    assert (df.label == [LABELS[i] for i in p.argmax(1)]).all()
    np.testing.assert_allclose(df.confidence, p.max(1), rtol=1e-6)
    assert (df.has_audio == has_audio).all()
    assert df.face_coverage.between(0, 1).all()


# ---------------------------------------------------------------------------------------------------------------------
# Recognizer
# ---------------------------------------------------------------------------------------------------------------------
def test_predict_video_exact_windows_and_faces(rec, videos):
    duration = open_video(videos["long"]).duration_s
    assert duration == pytest.approx(12.0, abs=0.05)
    df = rec.predict_video(videos["long"], stride_s=2.0)
    assert len(df) == 5
    _check_timeline(df, duration, 5.12, 2.0, has_audio=True)
    assert (df.face_coverage == 1.0).all()  # the astronaut's face is found in every sampled frame
    assert df.attrs["labels"] == list(LABELS) and df.attrs["window_s"] == 5.12 and df.attrs["stride_s"] == 2.0

    silent = rec.predict_video(videos["silent"])  # 6 s: a whole window, then 0.88 s (dropped)
    _check_timeline(silent, open_video(videos["silent"]).duration_s, 5.12, 5.12, has_audio=False)
    assert len(silent) == 1


def test_batching_and_prefetch_do_not_change_results(checkpoint, videos):
    kw = dict(device="cpu", detector=None)
    one = Recognizer.from_checkpoint(checkpoint, batch_size=1, prefetch=False, **kw)
    many = Recognizer.from_checkpoint(checkpoint, batch_size=4, **kw)
    events = []
    a = one.predict_video(videos["long"], 3.0, 1.5)
    b = many.predict_video(videos["long"], 3.0, 1.5, on_progress=events.append)
    assert len(a) == len(window_spans(12.0, 3.0, 1.5)) == 8  # starts 0, 1.5, ..., 10.5 (1.5 s: half, kept)
    # progress: a start, each window joining a batch (so a caller can stop between windows), one event per batch of
    # 4 windows, the end; counts, elapsed time and the estimate
    assert [e.stage for e in events] == ["starting", *["preparing"] * 3, "predicting", *["preparing"] * 3,
                                         "predicting", "done"]
    scored = [e for e in events if e.stage != "preparing"]
    assert [e.windows_done for e in scored] == [0, 4, 8, 8] and {e.windows_total for e in events} == {8}
    assert all(x.elapsed_s <= y.elapsed_s for x, y in zip(events, events[1:]))
    assert events[0].estimate_s is None and events[-1].estimate_s == 0.0
    pd.testing.assert_frame_equal(a, b, atol=1e-5)
    assert np.isnan(a.face_coverage).all()  # no detector: frames used whole, coverage unknown


def test_predict_batch_matches_model_and_preprocessing_profile(checkpoint, videos):
    from mmadfer.accel import native_bf16

    default = Recognizer.from_checkpoint(checkpoint, device="cpu", detector=None, backend="torch")
    assert default.precision == ("bf16" if native_bf16("cpu") else "fp32")  # the fastest arithmetic that keeps top-1
    rec = Recognizer.from_checkpoint(checkpoint, device="cpu", detector=None, precision="fp32")  # exact parity below
    assert rec.preprocess.img_size == 32 and rec.window_s == 5.12
    model = MMADFER(ModelConfig.tiny(num_classes=4, class_names=LABELS))
    from mmadfer.checkpoints import load_checkpoint

    model = load_checkpoint(checkpoint)
    video = torch.randint(0, 256, (3, 16, 3, 32, 32), dtype=torch.uint8)
    audio = torch.randn(3, 1, 512, 128)
    with torch.no_grad():
        expected = torch.softmax(model(video, audio), -1).numpy()
    np.testing.assert_allclose(rec.predict_batch(video, audio), expected, atol=1e-6)
    np.testing.assert_allclose(rec.predict_batch(video.numpy(), audio.numpy()), expected, atol=1e-6)
    np.testing.assert_allclose(default.predict_batch(video, audio), expected, atol=5e-3)  # bf16: close, not equal
    # the window fed to the model is exactly prepare_window's output for that span of the file
    from mmadfer.media.pipeline import prepare_window

    clip = read_clip(videos["short"])
    prepared = prepare_window(clip, rec.preprocess, detector=None)
    row = rec.predict_video(videos["short"]).iloc[0]
    p = rec.predict_batch(prepared["video"][None], prepared["audio"][None])[0]
    np.testing.assert_allclose(row[[f"p_{c}" for c in LABELS]].to_numpy(float), p, atol=1e-5)


def test_several_faces_get_stable_track_ids(rec, tmp_path, videos):
    clip = read_clip(videos["silent"])
    two = np.concatenate([clip.frames, clip.frames[:, :, ::-1]], axis=2)  # two people side by side
    path = write_video(tmp_path / "two.mp4", two, clip.fps)
    df = rec.predict_video(path, stride_s=2.0)
    assert "track_id" in df.columns
    assert len(df) == 2 * len(window_spans(6.0, 5.12, 2.0)) == 4
    assert sorted(df.track_id) == [0, 0, 1, 1]  # the same two ids in both windows
    assert df.groupby("start_s").track_id.nunique().eq(2).all()


def test_no_label_without_a_face_and_face_boxes(rec, tmp_path, videos):
    """A face, then none: the faceless windows are ``no_face`` with no confidence (CSV: empty, JSON: null), their
    probabilities kept; face windows carry their crop as frame fractions; ``min_confidence`` gives ``uncertain``."""
    from mmadfer.config import NO_FACE, UNCERTAIN
    from mmadfer.predict import write_table

    clip = read_clip(videos["silent"])  # 6 s at 12 fps, the astronaut's face in every frame
    blank = np.random.default_rng(0).integers(90, 110, clip.frames.shape, dtype=np.uint8)
    path = write_video(tmp_path / "face_then_none.mp4", np.concatenate([clip.frames, blank]), clip.fps)
    df = rec.predict_video(path, stride_s=3.0)  # windows at 0, 3 (half face), 6 (none)
    p = df[[f"p_{c}" for c in LABELS]].to_numpy()
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)  # probabilities stay, whatever the label
    face, none = df.face_coverage >= 0.5, df.face_coverage < 0.5
    assert face.iloc[0] and none.iloc[-1]
    assert (df.label[none] == NO_FACE).all() and df.confidence[none].isna().all()
    assert (df.label[face] == [LABELS[i] for i in p[face].argmax(1)]).all()
    np.testing.assert_allclose(df.confidence[face], p[face].max(1), rtol=1e-6)
    boxes = df[["box_x0", "box_y0", "box_x1", "box_y1"]]
    assert boxes[df.face_coverage == 0].isna().all().all()
    b = boxes[face].to_numpy()
    assert ((b >= 0) & (b <= 1)).all() and (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()
    write_table(df, tmp_path / "t.csv"), write_table(df, tmp_path / "t.json")
    csv = pd.read_csv(tmp_path / "t.csv", keep_default_na=False)
    assert (csv.label[none.to_numpy()] == NO_FACE).all() and (csv.confidence[none.to_numpy()] == "").all()
    assert all(w["confidence"] is None for w in json.loads((tmp_path / "t.json").read_text())["windows"]
               if w["label"] == NO_FACE)
    # the same windows with every threshold off, and with min_confidence: the probabilities never change
    open_rec = Recognizer(rec.runner, device="cpu", min_face_coverage=None, min_confidence=1.0)
    other = open_rec.predict_video(path, stride_s=3.0)
    pd.testing.assert_frame_equal(other.filter(like="p_"), df.filter(like="p_"))
    assert (other.label == UNCERTAIN).all() and other.confidence.notna().all()
    with pytest.raises(ValueError, match="min-face-coverage"):
        Recognizer(rec.runner, device="cpu", min_face_coverage=1.5)


def test_save_faces_only_when_asked(rec, videos, tmp_path):
    rec.predict_video(videos["short"])
    assert not any(tmp_path.iterdir())
    rec.predict_video(videos["long"], save_faces=tmp_path / "crops")
    saved = sorted(p.name for p in (tmp_path / "crops").iterdir())
    assert saved == ["00000.000s.jpg", "00005.120s.jpg"]
    from PIL import Image

    assert Image.open(tmp_path / "crops" / saved[0]).size == (4 * 32, 4 * 32)  # 16 crops, 4 per row


def test_media_error_names_the_file(rec, tmp_path):
    from mmadfer import MediaError

    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    with pytest.raises(MediaError, match="bad.mp4"):
        rec.predict_video(bad)


# ---------------------------------------------------------------------------------------------------------------------
# the CLI: a folder of good and bad files
# ---------------------------------------------------------------------------------------------------------------------
def _audio_only_mp4(path):
    with av.open(str(path), "w") as out:
        st = out.add_stream("aac", rate=16000, layout="mono")
        af = av.AudioFrame.from_ndarray(np.zeros((1, 16000), np.float32), format="fltp", layout="mono")
        af.sample_rate, af.pts = 16000, 0
        out.mux(st.encode(af))
        out.mux(st.encode())
    return path


@pytest.mark.slow
def test_cli_batch_with_bad_files(checkpoint, videos, tmp_path, capsys):
    folder = tmp_path / "in"
    (folder / "more").mkdir(parents=True)
    for name in ("long", "short"):
        os.symlink(videos[name], folder / f"{name}.mp4")
    os.symlink(videos["silent"], folder / "more" / "silent.mp4")
    (folder / "zero.mp4").write_bytes(b"")
    (folder / "notes.mp4").write_text("this is a text file\n" * 20)
    data = open(videos["long"], "rb").read()
    (folder / "cut.mp4").write_bytes(data[: len(data) // 3])
    _audio_only_mp4(folder / "voice.mp4")
    (folder / "readme.txt").write_text("ignored: not a video extension")
    missing = tmp_path / "missing.mp4"
    out = tmp_path / "out"

    argv = ["predict", str(folder), str(missing), "--checkpoint", str(checkpoint), "--output", str(out), "--plot",
            "--report"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    # one line per bad file and the summary (plus, on a first run, the note that the int8 model is being converted)
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(("converting ", "mmadfer: "))]
    assert "Traceback" not in err
    expected = {"zero.mp4": "empty", "notes.mp4": "not a media file", "cut.mp4": "truncated",
                "voice.mp4": "no video stream", "missing.mp4": "not found"}
    for name, words in expected.items():
        hits = [ln for ln in lines if name in ln]
        assert len(hits) == 1 and words in hits[0], (name, hits)
    assert lines[-1].startswith("3 succeeded, 5 failed")
    assert len(lines) == 6

    tables = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.csv"))
    assert tables == ["long.csv", "more/silent.csv", "short.csv", "summary.csv"]
    summary = pd.read_csv(out / "summary.csv").set_index("video")
    assert len(summary) == 3  # the videos that have a timeline; the bad files have none
    for name, (duration, audio) in {"long": (12.0, True), "short": (3.0, True), "more/silent": (6.0, False)}.items():
        df = pd.read_csv(out / f"{name}.csv")
        _check_timeline(df, duration, 5.12, 5.12, has_audio=audio)
        assert (out / f"{name}.png").stat().st_size > 10_000
        _check_summary_and_report(df, summary.loc[str(folder / f"{name}.mp4")], out / f"{name}.html")
    assert not list(out.rglob(".*"))  # no temporary files left behind

    # re-run: everything that succeeded is skipped, the bad files are still reported
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert main(argv + ["--skip-existing"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("0 succeeded, 5 failed, 3 skipped")
    assert stamps == {p: p.stat().st_mtime_ns for p in out.rglob("*")}


def _check_summary_and_report(df: pd.DataFrame, row: pd.Series, report) -> None:
    """summary.csv's row and the HTML report of one video, recomputed from its timeline by hand."""
    stride = 5.12  # default stride: windows do not overlap, each stands for its own span
    own = np.minimum(df.end_s - df.start_s, stride)
    shares = {c: own[df.label == c].sum() / own.sum() for c in df.label.unique()}
    dominant = max(shares, key=shares.get)
    assert row.windows == len(df) and row.dominant_label == dominant
    assert row.dominant_share == pytest.approx(shares[dominant], abs=1e-5)
    for c in LABELS:
        assert row[f"share_{c}"] == pytest.approx(shares.get(c, 0.0), abs=1e-5)
    assert row.share_no_face == pytest.approx(shares.get("no_face", 0.0), abs=1e-5)
    assert row.face_found_pct == pytest.approx(100 * np.average(df.face_coverage, weights=own), abs=1e-3)
    assert row.audio_found_pct == pytest.approx(100 * np.average(df.has_audio, weights=own), abs=1e-3)
    text = report.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and '<html lang="en">' in text and "<main>" in text
    assert "<h1>" in text and "<script" not in text and "http://" not in text and "https://" not in text
    assert f"Most of the time: {dominant} ({100 * shares[dominant]:.0f}% of the time)" in text
    assert text.count('<th scope="row">') >= len(df) and 'alt="Timeline chart of' in text
    assert "training data not recorded" in text  # the tiny test checkpoint records nothing


def test_smoothing_and_summary_by_hand():
    """label_smoothed: a centred moving average of the probabilities over the windows with a face; no_face stays;
    the raw columns never change. The summary counts each moment once with overlapping windows."""
    from mmadfer.predict.smoothing import add_smoothed_labels
    from mmadfer.predict.summary import summarize, summary_table

    p = np.array([[0.9, 0.1, 0, 0], [0.4, 0.6, 0, 0], [0.9, 0.1, 0, 0], [0.1, 0.9, 0, 0], [0.5, 0.5, 0, 0]])
    df = pd.DataFrame({"start_s": [0.0, 1, 2, 3, 4], "end_s": [2.0, 3, 4, 5, 6],
                       "label": ["calm", "joy", "calm", "no_face", "calm"], "confidence": [0.9, 0.6, 0.9, np.nan, 0.5],
                       **{f"p_{c}": p[:, i] for i, c in enumerate(LABELS)},
                       "face_coverage": [1.0, 1.0, 0.5, 0.0, 1.0], "has_audio": [True, True, True, True, False]})
    df.attrs.update(labels=list(LABELS), stride_s=1.0)
    raw = df.copy()
    add_smoothed_labels(df, 2.0, min_confidence=0.7)  # centres 1..5, +-1 s: window 1 averages 0, 1, 2 -> calm 0.73
    assert df.columns[df.columns.get_loc("label") + 1] == "label_smoothed"
    # window 0: (0.9+0.4)/2 = 0.65 calm < 0.7; 1: calm 0.733; 2: (0.4+0.9)/2 skipping no_face = 0.65; 3: no_face;
    # 4: only itself (its neighbour has no face) 0.5 -> uncertain
    assert df.label_smoothed.tolist() == ["uncertain", "calm", "uncertain", "no_face", "uncertain"]
    pd.testing.assert_frame_equal(df.drop(columns="label_smoothed"), raw)
    s = summarize(raw)
    # each window stands for 1 s (the stride), the last for its own 2 s: 6 s in all
    assert s["shares"]["calm"] == pytest.approx(4 / 6) and s["shares"]["no_face"] == pytest.approx(1 / 6)
    assert s["dominant_label"] == "calm" and s["windows"] == 5 and s["duration_s"] == 6.0
    assert s["face_found_pct"] == pytest.approx(100 * (1 + 1 + 0.5 + 0 + 2) / 6)
    assert s["audio_found_pct"] == pytest.approx(100 * 4 / 6)
    smoothed = summary_table([("a.mp4", df)])
    assert smoothed.label_column[0] == "label_smoothed" and smoothed.share_uncertain[0] == pytest.approx(4 / 6)


def test_cli_single_file_json_and_errors(checkpoint, videos, tmp_path, capsys):
    out = tmp_path / "short.json"
    assert main(["predict", videos["short"], "-c", str(checkpoint), "-o", str(out), "--no-faces",
                 "--window", "2", "--stride", "1"]) == 0
    doc = json.loads(out.read_text())
    assert doc["labels"] == list(LABELS) and doc["window_s"] == 2.0 and doc["stride_s"] == 1.0
    assert [(w["start_s"], w["end_s"]) for w in doc["windows"]] == window_spans(3.0, 2.0, 1.0)
    assert "1 succeeded, 0 failed" in capsys.readouterr().err

    assert main(["predict", videos["short"], "-c", str(tmp_path / "nope.safetensors")]) == 2
    assert "nope.safetensors" in capsys.readouterr().err
    assert main(["predict", videos["short"], videos["long"], "-c", str(checkpoint), "-o", str(tmp_path / "x.csv")]) == 2
    assert "folders" in capsys.readouterr().err
    assert main(["predict", videos["short"], "-c", str(checkpoint), "--stride", "0"]) == 2


# ---------------------------------------------------------------------------------------------------------------------
# anonymised copy
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_anonymize_pixelates_faces_and_draws_labels(checkpoint, videos, tmp_path):
    from mmadfer.media.faces import FaceDetector

    src = videos["short"]
    dst = tmp_path / "anon.mp4"
    assert main(["predict", src, "-c", str(checkpoint), "-o", str(tmp_path), "--anonymize", str(dst)]) == 0
    a, b = read_clip(src), read_clip(dst)
    assert b.frames.shape == a.frames.shape and not b.has_audio  # audio is dropped by default
    np.testing.assert_allclose(b.frame_times, a.frame_times, atol=1e-3)
    boxes, _ = FaceDetector("cpu").detect(a.frames[::5])
    assert all(len(x) == 1 for x in boxes)
    for i, box in zip(range(0, len(a.frames), 5), boxes):
        x1, y1, x2, y2 = box[0].astype(int)
        face_a = a.frames[i, y1:y2, x1:x2].astype(float)
        face_b = b.frames[i, y1:y2, x1:x2].astype(float)
        # pixelated: the fine detail (differences between neighbouring pixels) is gone
        detail = lambda f: np.abs(np.diff(f, axis=1)).mean()  # noqa: E731
        assert detail(face_b) < 0.5 * detail(face_a)
    label = pd.read_csv(tmp_path / "short.csv").label[0]
    caption_a, caption_b = a.frames[:, :20, :80].astype(float), b.frames[:, :20, :80].astype(float)
    assert np.abs(caption_a - caption_b).mean() > 20, label  # the caption box is drawn top left
    # a second face nobody detected cannot leak: with no face at all, the whole frame is pixelated
    blank = write_video(tmp_path / "noface.mp4", np.full((10, 96, 96, 3), 128, np.uint8) +
                        np.random.default_rng(0).integers(0, 60, (10, 96, 96, 3), dtype=np.uint8), 10)
    from mmadfer.predict.anonymize import anonymize_video

    out = anonymize_video(blank, tmp_path / "noface_anon.mp4", None, detector=FaceDetector("cpu"))
    x, y = read_clip(blank).frames.astype(float), read_clip(out).frames.astype(float)
    assert np.abs(np.diff(y, axis=2)).mean() < 0.3 * np.abs(np.diff(x, axis=2)).mean()
    kept = anonymize_video(src, tmp_path / "with_audio.mp4", None, detector=FaceDetector("cpu"), keep_audio=True)
    assert read_clip(kept).has_audio


# ---------------------------------------------------------------------------------------------------------------------
# real time
# ---------------------------------------------------------------------------------------------------------------------
def test_realtime_on_a_file_matches_the_batch_timeline(checkpoint, videos):
    from mmadfer.predict.realtime import live_threads, run_realtime

    rec = Recognizer.from_checkpoint(checkpoint, device="cpu", detector=None)
    batch = rec.predict_video(videos["long"], stride_s=2.0)
    threads = torch.get_num_threads()
    during = []
    live = pd.DataFrame(row for row in run_realtime(rec, videos["long"], stride_s=2.0)
                        if not during.append(torch.get_num_threads()))
    # the capture thread keeps a core: one intra-op thread fewer than the cores (at least 1), restored afterwards
    assert set(during) == {live_threads("cpu", threads)} and torch.get_num_threads() == threads
    assert live_threads("cpu", 8, cores=2) == 1 and live_threads("cpu", 1, cores=8) == 1
    assert live_threads("cpu", 2, cores=4) == 2 and live_threads("cuda", 8, cores=2) == 8
    assert len(live) == len(batch) == 5
    np.testing.assert_allclose(live[["start_s", "end_s"]], batch[["start_s", "end_s"]], atol=1e-3)
    p = [f"p_{c}" for c in LABELS]
    np.testing.assert_allclose(live[p], batch[p], atol=1e-5)  # the same frames and samples as the batch path
    assert (live.latency_ms > 0).all() and (live.skipped == 0).all()


def test_realtime_cli(checkpoint, videos, tmp_path, capsys):
    out = tmp_path / "live.csv"
    assert main(["predict", videos["long"], "-c", str(checkpoint), "--realtime", "--no-faces", "--stride", "1",
                 "--max-windows", "3", "-o", str(out)]) == 0
    captured = capsys.readouterr()
    lines = [ln for ln in captured.out.splitlines() if ln.strip().endswith("ms")]
    assert len(lines) == 3
    assert "latency median" in captured.err
    df = pd.read_csv(out)
    assert list(df.end_s) == pytest.approx([5.12, 6.12, 7.12]) and "latency_ms" in df
    assert main(["predict", str(tmp_path / "nothing.mp4"), "-c", str(checkpoint), "--realtime"]) == 1
    assert "nothing.mp4" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------------------
# the chart
# ---------------------------------------------------------------------------------------------------------------------
def test_timeline_chart_panels_and_long_tables(tmp_path):
    from mmadfer.predict.timeline import plot_timeline

    rng = np.random.default_rng(0)
    n = 3600  # an hour at a 1 s stride draws as one collection per class, not 3600 x 4 patches
    p = rng.dirichlet(np.ones(4), size=n)
    df = pd.DataFrame({"start_s": np.arange(n, dtype=float), "end_s": np.minimum(np.arange(n) + 5.12, n),
                       "label": [LABELS[i] for i in p.argmax(1)], "confidence": p.max(1),
                       **{f"p_{c}": p[:, i] for i, c in enumerate(LABELS)}, "face_coverage": 1.0,
                       "has_audio": np.arange(n) < n - 10})
    df.attrs.update(labels=list(LABELS), stride_s=1.0, video="/x/hour.mp4")
    fig = plot_timeline(df, tmp_path / "hour.png")
    assert (tmp_path / "hour.png").stat().st_size > 10_000
    strip, ax = fig.axes
    assert len(ax.collections) == len(LABELS) and ax.get_xlim() == (0.0, n)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == [*LABELS, "face coverage", "no audio"]

    two = pd.concat([df.head(20).assign(track_id=0), df.head(20).assign(track_id=1)])
    two.attrs.update(df.attrs)
    fig = plot_timeline(two, tmp_path / "two.svg")
    assert len(fig.axes) == 4 and (tmp_path / "two.svg").read_text().startswith("<?xml")


# ---------------------------------------------------------------------------------------------------------------------
# backend='auto'
# ---------------------------------------------------------------------------------------------------------------------
def _installed(*modules: str) -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in modules)


def test_auto_backend_is_int8_on_the_cpu_and_torch_elsewhere(checkpoint, tmp_path):
    pytest.importorskip("onnxruntime")
    from mmadfer.runtime.load import resolve_backend

    expected = "openvino-int8" if _installed("openvino", "nncf") else "onnx-int8"
    assert resolve_backend(checkpoint, "cpu") == expected
    assert resolve_backend(checkpoint, "cpu", precision="fp32") == "torch"  # a torch precision asks for torch
    assert resolve_backend(checkpoint, "cpu", compile=True) == "torch"
    assert resolve_backend(checkpoint, "cuda") == "torch"
    assert resolve_backend(tmp_path / "model.onnx", "cpu") == "onnx"

    from mmadfer.runtime.load import load_runner
    from mmadfer.runtime.select import AGREEMENT_BAR

    # auto measures: onnx-int8 made the fastest here, it runs if its held-out agreement meets the bar, else torch
    speed = {"torch": 1.0, "onnx-int8": 0.3, "openvino-int8": 0.6}
    chosen = load_runner("auto", checkpoint, device="cpu", measure=lambda backend, runner, inputs: speed[backend])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the warning of an explicit backend below the bar
        onnx = load_runner("onnx-int8", checkpoint, device="cpu")
    assert chosen.backend == ("onnx" if onnx.agreement["top1_agreement"] >= AGREEMENT_BAR else "torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        auto = Recognizer.from_checkpoint(checkpoint, device="cpu", detector=None, backend="onnx-int8")
    exact = Recognizer.from_checkpoint(checkpoint, device="cpu", detector=None, precision="fp32")
    assert exact.backend == "torch"
    video = torch.randint(0, 256, (5, 16, 3, 32, 32), dtype=torch.uint8)
    audio = torch.randn(5, 1, 512, 128)
    p_int8, p_fp32 = auto.predict_batch(video, audio), exact.predict_batch(video, audio)
    assert 0 < np.abs(p_int8 - p_fp32).max() < 0.05
    # int8 runs clip by clip: a clip's probabilities do not depend on the rest of its batch
    np.testing.assert_array_equal(auto.predict_batch(video[2:3], audio[2:3])[0], p_int8[2])


def test_auto_backend_falls_back_to_torch_when_conversion_fails(checkpoint, monkeypatch, tmp_path):
    pytest.importorskip("onnxruntime")
    from mmadfer.runtime import cache

    def broken(*a, **k):
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(cache, "cached_int8", broken)
    if _installed("openvino", "nncf"):
        monkeypatch.setattr(cache, "cached_openvino_int8", broken)
    with pytest.warns(UserWarning, match="exporter exploded.*auto skips it"):  # an empty cache: nothing decided yet
        rec = Recognizer.from_checkpoint(checkpoint, device="cpu", detector=None, cache_dir=tmp_path / "cache")
    assert rec.backend == "torch"
    with pytest.raises(RuntimeError, match="exporter exploded"):  # asked for explicitly: the error is the answer
        Recognizer.from_checkpoint(checkpoint, device="cpu", detector=None, backend="onnx-int8")



def test_prefetch_poll_stops_without_waiting_for_the_item_in_preparation():
    """A poll that raises ends the iteration while the worker is still preparing the next item (the web app's
    Cancel); the worker then finishes that item, closes its source and exits on its own."""
    import threading

    from mmadfer.predict.prefetch import prefetch

    release, closed = threading.Event(), threading.Event()

    def items():
        try:
            yield "first"
            release.wait(60)  # the second item is "being prepared" until the test releases it
            yield "second"
        finally:
            closed.set()

    class Cancelled(Exception):
        pass

    cancel = threading.Event()

    def poll():
        if cancel.is_set():
            raise Cancelled

    it = prefetch(items(), depth=1, poll=poll)
    assert next(it) == "first"
    cancel.set()
    with pytest.raises(Cancelled):
        next(it)
    assert not closed.is_set()  # stopped while the second item was still in preparation, not after it
    release.set()
    assert closed.wait(60)  # the worker finished that item and closed the source by itself
    assert list(prefetch(iter([1, 2, 3]), depth=1, poll=lambda: None)) == [1, 2, 3]  # a quiet poll changes nothing
