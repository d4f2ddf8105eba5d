"""`prepare --profile mafw-reference`: the authors' MAFW face crops (extract_faces_mfaw.py), WAVs (mp42wav.sh) and
annotation files (process_ann_mfaw.py), box arithmetic by hand and end to end on a real face."""
import json
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmadfer.cli import main
from mmadfer.data.datasets import build_dataset
from mmadfer.data.mafw_reference import reference_crop_box, write_reference_wav
from mmadfer.media.wav import read_audio
from mmadfer.media.decode import read_clip
from mmadfer.media.encode import write_video


@pytest.mark.parametrize("boxes,size,expected", [
    # one face, wider than tall: rounded half to even (50.5 -> 50), odd diff 21 widens by 10 each side (40 x 39)
    ([[10.4, 20.6, 50.5, 40.2]], (200, 100), (10, 11, 50, 50)),
    # two faces: their union (10..60 x 10..50), then squared on the shorter (vertical) side
    ([[10, 10, 30, 30], [40, 20, 60, 50]], (200, 100), (10, 5, 60, 55)),
    # negative corner: x1, y1 clamped at 0 first, then widened to x1 = -10, which the slice clamps again
    ([[-7.6, -3.2, 30, 50]], (100, 100), (0, 0, 40, 50)),
    # x2 past the right edge is not clamped by them; the slice stops at the frame
    ([[80, 10, 120.4, 30]], (100, 60), (80, 0, 100, 40)),
    # taller than wide with an odd diff 5: widened by 2 each side, 14 x 15
    ([[20, 20, 30, 35]], (100, 100), (18, 20, 32, 35)),
    # half to even on both ends: 2.5 -> 2, 3.5 -> 4
    ([[2.5, 3.5, 12.5, 13.5]], (100, 100), (2, 4, 12, 14)),
    # a box above the frame: y2 stays negative and counts from the bottom, as numpy slicing does
    ([[10, -60, 20, -30]], (100, 100), (10, 0, 20, 90)),
])
def test_reference_crop_box_by_hand(boxes, size, expected):
    w, h = size
    box, fallback = reference_crop_box(np.array(boxes, np.float32), w, h)
    assert box == expected and not fallback


def test_reference_crop_box_without_a_face_is_the_centre_square():
    assert reference_crop_box(np.zeros((0, 4)), 150, 100) == ((50, 25, 100, 75), True)
    assert reference_crop_box([], 67, 101) == ((17, 34, 49, 66), True)  # side 2 * (min(50, 33) // 2) = 32
    frame = np.arange(101 * 67 * 3, dtype=np.int64).reshape(101, 67, 3)
    (x1, y1, x2, y2), _ = reference_crop_box([], 67, 101)
    ss = min(101 // 2, 67 // 2)  # their expression, literally
    theirs = frame[101 // 2 - ss // 2:101 // 2 + ss // 2, 67 // 2 - ss // 2:67 // 2 + ss // 2]
    assert np.array_equal(frame[y1:y2, x1:x2], theirs)


def test_reference_wav_is_ffmpegs_16_bit_pcm_of_every_channel(tmp_path):
    rate = 44100
    t = np.arange(rate) / rate
    stereo = np.stack([0.5 * np.sin(2 * np.pi * 330 * t), 0.25 * np.sin(2 * np.pi * 550 * t) + 0.05]).astype(np.float32)
    video = write_video(tmp_path / "v.mp4", np.zeros((10, 32, 32, 3), np.uint8), 10, stereo, rate)
    assert write_reference_wav(video, tmp_path / "v.wav")
    with wave.open(str(tmp_path / "v.wav")) as f:
        assert (f.getnchannels(), f.getframerate(), f.getsampwidth()) == (2, rate, 2)
        pcm = np.frombuffer(f.readframes(f.getnframes()), "<i2").reshape(-1, 2).T
    decoded, decoded_rate = read_audio(video)  # float [2, N] from the same decoder
    assert decoded_rate == rate and pcm.shape == decoded.shape
    assert np.abs(pcm - np.clip(np.rint(decoded * 32768), -32768, 32767)).max() <= 1
    silent = write_video(tmp_path / "mute.mp4", np.zeros((5, 32, 32, 3), np.uint8), 10)
    assert not write_reference_wav(silent, tmp_path / "mute.wav") and not (tmp_path / "mute.wav").exists()


@pytest.mark.slow
def test_prepare_mafw_reference_on_a_real_face_and_a_faceless_video(tmp_path):
    pytest.importorskip("facenet_pytorch")
    from mmadfer.data.synthetic import make_astronaut_video
    from mmadfer.media.faces import FaceDetector

    raw = tmp_path / "clips"
    raw.mkdir()
    face = make_astronaut_video(raw / "00025.mp4", seconds=0.48, size=160)  # 12 frames, 44.1 kHz stereo
    ramp = np.broadcast_to(np.linspace(0, 255, 90, dtype=np.uint8)[None, None, :, None], (6, 70, 90, 3))
    write_video(raw / "00026.mp4", np.ascontiguousarray(ramp), 25)  # no face, no audio
    authors = tmp_path / "MAFW_set_1_test.txt"  # their annotation format, with their machine's paths
    authors.write_text("/data/EECS-IoannisLab/datasets/MAFW/data/faces/00025 12 3\n"
                       "/data/EECS-IoannisLab/datasets/MAFW/data/faces/00026 6 0\n"
                       "/data/EECS-IoannisLab/datasets/MAFW/data/faces/09999 40 1\n")
    out = tmp_path / "mfaw"
    assert main(["prepare", str(raw), "--out", str(out), "--profile", "mafw-reference", "--workers", "1",
                 "--annotations", str(authors)]) == 0

    clip = read_clip(face)
    found, _ = FaceDetector(device="cpu").detect(clip.frames)
    names = sorted(p.name for p in (out / "clips_faces" / "00025").iterdir())
    assert names == sorted(f"{i}.jpg" for i in range(clip.num_frames)) and clip.num_frames == 12
    meta = json.loads((out / "meta" / "00025.json").read_text())
    assert meta["n_frames"] == 12 and not meta["fallback"] and not any(meta["no_face"])
    for i, boxes in enumerate(found):
        assert len(boxes) > 0
        ours, fallback = reference_crop_box(boxes, clip.frames.shape[2], clip.frames.shape[1])
        assert not fallback and np.abs(np.subtract(ours, meta["boxes"][i])).max() <= 2, i
        x1, y1, x2, y2 = meta["boxes"][i]
        with Image.open(out / "clips_faces" / "00025" / f"{i}.jpg") as im:
            assert im.size == (x2 - x1, y2 - y1)
            crop = np.asarray(im.convert("RGB"), np.float32)
        assert np.abs(crop - clip.frames[i, y1:y2, x1:x2]).mean() < 4  # the frame's own pixels, JPEG-coded
    with wave.open(str(out / "clips_wav" / "00025.wav")) as f:
        assert (f.getnchannels(), f.getframerate()) == (2, 44100)

    # no face anywhere: every frame is the centred square of side 2 * (min(70 // 2, 90 // 2) // 2) = 34
    faceless = sorted((out / "clips_faces" / "00026").iterdir(), key=lambda p: int(p.stem))
    assert [p.name for p in faceless] == [f"{i}.jpg" for i in range(6)]
    assert all(Image.open(p).size == (34, 34) for p in faceless)
    assert json.loads((out / "meta" / "00026.json").read_text())["fallback"] is True
    assert not (out / "clips_wav" / "00026.wav").exists()  # ffmpeg writes no WAV for a video without audio

    # process_ann_mfaw.py: their paths re-pointed at our crops, count = files - 1, missing clips left out
    lines = (out / "annotations" / "MAFW_set_1_test_faces.txt").read_text().splitlines()
    assert lines == [f"{(out / 'clips_faces' / '00025').resolve()} 11 3",
                     f"{(out / 'clips_faces' / '00026').resolve()} 5 0"]
    ds = build_dataset("mafw", out, fold=1, split="test")
    assert ds.labels == [3, 0] and ds.audio_report()["audio_missing"] == 1
    item = ds[0]
    assert item["video"].shape == (16, 3, 224, 224) and item["video"].dtype == torch.uint8


def test_mafw_reference_with_a_label_table_writes_their_fold_files_and_resumes(tmp_path):
    from mmadfer.data.synthetic import render_clip

    raw = tmp_path / "raw"
    raw.mkdir()
    for i in range(4):
        c = render_clip(i, num_frames=6, size=40, seed=i)
        write_video(raw / f"{i:05d}.mp4", c.frames, c.fps, c.waveform, c.sample_rate)
    (tmp_path / "labels.csv").write_text("video,label\n00000.mp4,anger\n00001.mp4,sadness\n00002.mp4,anger\n"
                                         "00003.mp4,6\n")
    out = tmp_path / "mfaw"
    argv = ["prepare", str(raw), "--out", str(out), "--profile", "mafw-reference", "--no-faces", "--workers", "1",
            "--labels", str(tmp_path / "labels.csv"), "--folds", "2"]
    assert main(argv) == 0
    assert sorted(p.name for p in (out / "clips_faces" / "00001").iterdir()) == sorted(f"{i}.jpg" for i in range(6))
    assert all(Image.open(p).size == (20, 20) for p in (out / "clips_faces" / "00001").iterdir())  # 2*(20//2)
    assert sorted(p.name for p in (out / "clips_wav").iterdir()) == [f"{i:05d}.wav" for i in range(4)]
    tests = []
    for k in (1, 2):
        lines = (out / "annotations" / f"MAFW_set_{k}_test_faces.txt").read_text().splitlines()
        assert all(line.split()[1] == "5" and Path(line.split()[0]).is_absolute() for line in lines)
        tests += lines
    labels = {Path(line.split()[0]).name: int(line.split()[2]) for line in tests}
    assert labels == {"00000": 0, "00001": 5, "00002": 0, "00003": 6}  # MAFW's class order; integers as indices
    ds = build_dataset("mafw", out, fold=1, split="train")
    assert ds.frame_order == "lexicographic" and ds.audio_report()["audio_missing"] == 0
    stamp = (out / "clips_faces" / "00002" / "0.jpg").stat().st_mtime_ns
    assert main(argv) == 0  # a re-run skips finished clips
    assert (out / "clips_faces" / "00002" / "0.jpg").stat().st_mtime_ns == stamp
    report = (out / "prepare_report.csv").read_text()
    assert report.count(",skipped,") == 4
