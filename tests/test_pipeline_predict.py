"""Pipelined prediction over many videos (worker processes prepare windows, the model scores batches here) gives the
same timelines as one video at a time, bit for bit; one bad file costs only itself; videos are shared out by
duration."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import open_tiny_model
from mmadfer import save_checkpoint
from mmadfer.data.synthetic import make_astronaut_video
from mmadfer.errors import MediaError
from mmadfer.hardware import ISA_FLAGS, cpu_signature
from mmadfer.media.decode import read_clip
from mmadfer.media.encode import write_video
from mmadfer.media.probe import probe_duration
from mmadfer.predict import Recognizer
from mmadfer.predict.archive import default_workers
from mmadfer.predict.balance import balance
from mmadfer.predict.table import write_table
from mmadfer.timing import StageTimer, stage

LABELS = ("calm", "joy", "anger", "grief")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_checkpoint(open_tiny_model(LABELS), tmp_path_factory.mktemp("ck") / "tiny.safetensors")


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """Small real-codec videos: long with audio, short, silent, two people side by side, and a broken file."""
    d = tmp_path_factory.mktemp("archive")
    silent = make_astronaut_video(d / "silent.mp4", seconds=3.0, fps=8, size=128, seed=3, audio=False)
    clip = read_clip(silent)
    two = np.concatenate([clip.frames, clip.frames[:, :, ::-1]], axis=2)  # two faces: two tracks
    (d / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"junk" * 200)
    return [make_astronaut_video(d / "long.mp4", seconds=8.0, fps=8, size=128, seed=1),
            make_astronaut_video(d / "short.mp4", seconds=2.0, fps=10, size=128, seed=2),
            silent, str(d / "broken.mp4"), write_video(d / "two.mp4", two, clip.fps)]


def _csv(df: pd.DataFrame, path) -> bytes:
    write_table(df, path)
    return path.read_bytes()


@pytest.mark.slow
def test_workers_give_the_sequential_timelines_bit_for_bit(checkpoint, archive, tmp_path):
    rec = Recognizer.from_checkpoint(checkpoint, device="cpu", backend="torch", batch_size=2)
    seq = {}
    for p in archive:
        try:
            seq[p] = rec.predict_video(p, stride_s=2.0)
        except MediaError as e:
            seq[p] = e
    assert isinstance(seq[archive[3]], MediaError)
    assert "track_id" in seq[archive[4]].columns and seq[archive[4]].track_id.nunique() == 2
    assert not seq[archive[2]].has_audio.any()
    for workers in (0, 2):
        results = list(rec.predict_videos(archive, stride_s=2.0, workers=workers))
        assert sorted(r.index for r in results) == list(range(len(archive)))
        for r in results:
            expected = seq[archive[r.index]]
            if isinstance(expected, MediaError):
                assert r.table is None and isinstance(r.error, MediaError) and str(r.error) == str(expected)
                continue
            assert r.error is None and r.windows == len(expected.start_s.unique())
            pd.testing.assert_frame_equal(r.table, expected, check_exact=True)
            assert r.table.attrs == expected.attrs
            assert _csv(r.table, tmp_path / f"w{workers}.csv") == _csv(expected, tmp_path / "seq.csv")


@pytest.mark.slow
def test_faces_detected_in_the_main_process_agree(checkpoint, archive):
    """The GPU layout (workers decode and sample, the main process detects faces for a whole batch of windows in one
    call), run here on the CPU: same windows, tracks and labels."""
    rec = Recognizer.from_checkpoint(checkpoint, device="cpu", backend="torch", batch_size=4)
    videos = [archive[0], archive[4]]
    base = {r.index: r.table for r in rec.predict_videos(videos, stride_s=2.0, workers=0)}
    main = {r.index: r.table for r in rec.predict_videos(videos, stride_s=2.0, workers=1, detect_on="main")}
    for i in base:
        a, b = base[i], main[i]
        assert list(a.columns) == list(b.columns) and len(a) == len(b)
        assert (a.label == b.label).all() and (a.face_coverage == b.face_coverage).all()
        if "track_id" in a:
            assert (a.track_id == b.track_id).all()
        np.testing.assert_allclose(a.filter(like="p_").to_numpy(), b.filter(like="p_").to_numpy(), atol=1e-4)
    with pytest.raises(ValueError, match="detect_on"):
        next(rec.predict_videos(videos, detect_on="gpu"))


def test_balance_by_duration_is_deterministic_and_even():
    d = [10.0, 1.0, 7.0, 3.0, 3.0, 6.0]
    parts = balance(d, 2)
    # longest first to the least loaded: 10 -> A; 7 -> B; 6 -> B (13); 3 -> A (13); 3 -> A (tie: lower part, 16);
    # 1 -> B (14)
    assert parts == [[0, 3, 4], [1, 2, 5]]
    assert sorted(sum(parts, [])) == list(range(len(d)))
    assert balance(d, 2) == parts and balance(d, 1) == [list(range(6))]
    assert balance([0.0] * 4, 2) == [[0, 2], [1, 3]]  # unknown durations still spread out
    assert balance([], 3) == [[], [], []]
    with pytest.raises(ValueError):
        balance(d, 0)


def test_default_workers_and_probe(archive):
    assert default_workers([5.0], cores=16) == 0  # one short video: workers cost more than they save
    assert default_workers([600.0], cores=16) == 1
    assert default_workers([5.0] * 10, cores=16) == 8
    assert default_workers([5.0] * 10, cores=2) == 1
    assert default_workers([5.0, 5.0], cores=16) == 2
    assert probe_duration(archive[0]) == pytest.approx(8.0, abs=0.15)
    assert probe_duration(archive[3]) == 0.0  # unreadable: unknown, its error comes when it is decoded


def test_cpu_signature_and_stage_timer():
    sig = cpu_signature()
    assert sig["model"] and sig["cores"] >= 1 and set(sig["flags"]) <= set(ISA_FLAGS)
    with open("/proc/cpuinfo") as f:
        flags = next(line for line in f if line.startswith("flags")).split(":")[1].split()
    assert sig["flags"] == [f for f in ISA_FLAGS if f in flags]
    with stage("model"):  # no timer: nothing recorded, nothing fails
        pass
    with StageTimer() as t:
        with stage("decode"):
            sum(range(1000))
        with stage("decode"):
            pass
    assert t.calls["decode"] == 2 and t.seconds["decode"] > 0 and "model" not in t.seconds
