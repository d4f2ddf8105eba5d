"""Face boxes and crops: hand-checked box geometry, tracking, multi-face splitting, and MTCNN on a real face
(scikit-image's astronaut, animated into an mp4 with sound and decoded back)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mmadfer.media.decode import read_clip
from mmadfer.media.encode import write_video
from mmadfer.media.faces import (
    FaceDetector, box_iou, crop_faces, split_tracks, track_boxes, union_square_box,
)

NONE = np.zeros((0, 4), np.float32)


def b(*xs) -> np.ndarray:
    return np.asarray(xs, np.float32).reshape(-1, 4)


# --------------------------------------------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------------------------------------------
def test_union_square_box_by_hand():
    # union (10, 10, 40, 60): 30 x 50 -> side 50 around (25, 35) -> (0, 10, 50, 60)
    assert union_square_box([b(10, 20, 30, 60), NONE, b(20, 10, 40, 50)], 100, 100).tolist() == [0, 10, 50, 60]
    # near the right edge: shifted inside, not cut
    assert union_square_box([b(90, 40, 99, 60)], 100, 100).tolist() == [80, 40, 100, 60]
    # larger than the frame's short side: shrunk to it, centred, then shifted inside
    assert union_square_box([b(5, 0, 75, 40)], 80, 40).tolist() == [20, 0, 60, 40]
    assert union_square_box([NONE, NONE], 100, 100) is None


def test_box_iou():
    iou = box_iou(b(0, 0, 10, 10), b(0, 0, 10, 10, 5, 0, 15, 10, 20, 20, 30, 30))
    np.testing.assert_allclose(iou, [[1.0, 50 / 150, 0.0]])


def test_track_smooths_jitter_and_fills_gaps():
    T = 9
    boxes = [b(10 + 2 * t, 20, 30 + 2 * t, 40) for t in range(T)]  # a 20 px face moving right 2 px per frame
    boxes[4] = b(60, 60, 80, 80)  # one wild false detection, no overlap: still the nearest face, then filtered
    boxes[0] = NONE  # missing at the start: takes the first detection
    boxes[6] = NONE  # missing in the middle: reuses the last box
    track = track_boxes(boxes, 200, 100, smoothing=5)
    assert track.shape == (T, 4)
    sides = track[:, 2] - track[:, 0]
    assert (sides == 20).all() and (track[:, 3] - track[:, 1] == 20).all()  # one side per clip, square
    cx = (track[:, 0] + track[:, 2]) / 2
    assert np.all(np.diff(cx) >= 0) and cx[-1] - cx[0] >= 10  # follows the motion, monotone despite the outlier
    assert abs(track[4, 1] - 20) <= 2  # the outlier at y=60 was filtered out
    assert track_boxes([NONE] * 3, 100, 100) is None


def test_track_follows_the_first_largest_face():
    big = [b(10, 10, 50, 50) for _ in range(4)]
    small = [b(100, 10, 120, 30) for _ in range(4)]
    frames = [np.concatenate([x, y]) for x, y in zip(small, big)]
    frames[2] = np.concatenate([small[2], b(12, 10, 52, 50), b(140, 0, 200, 60)])  # a larger stranger appears
    track = track_boxes(frames, 200, 100, smoothing=1)
    assert (track[:, 0] < 20).all()


def test_split_tracks_separates_people():
    left = [b(10 + t, 10, 40 + t, 40) for t in range(6)]
    right = [b(100 - t, 10, 130 - t, 40) for t in range(6)]
    frames = [np.concatenate([l, r]) for l, r in zip(left, right)]
    frames[3] = right[3]  # the left person is missed once
    tracks = split_tracks(frames)
    assert len(tracks) == 2
    counts = [sum(len(x) for x in tr) for tr in tracks]
    assert counts == [6, 5]  # most-seen first
    assert all(tr[t][0, 0] > 60 for tr in tracks[:1] for t in range(6))
    assert tracks[1][3].shape == (0, 4)
    # each track is a boxes-per-frame list: it crops directly
    crops = crop_faces(np.zeros((6, 60, 160, 3), np.uint8), tracks[1], mode="track")
    assert crops.coverage == pytest.approx(5 / 6) and not crops.fallback


def test_crop_gathers_the_right_pixels():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (5, 60, 80, 3), dtype=np.uint8)
    boxes = [b(10 + 5 * t, 10, 30 + 5 * t, 30) for t in range(5)]
    crops = crop_faces(frames, boxes, mode="track")
    assert crops.frames.shape == (5, 20, 20, 3) and crops.coverage == 1.0 and not crops.fallback
    for t, (x1, y1, x2, y2) in enumerate(crops.boxes):
        np.testing.assert_array_equal(crops.frames[t], frames[t, y1:y2, x1:x2])
    union = crop_faces(frames, boxes, mode="union", out_size=16)
    x1, y1, x2, y2 = union.boxes[0]
    assert (union.boxes == union.boxes[0]).all() and union.frames.shape == (5, 16, 16, 3)
    assert x2 - x1 == y2 - y1 == 40  # union 10..50 x 10..30 squared
    with pytest.raises(ValueError, match="mode"):
        crop_faces(frames, boxes, mode="biggest")
    with pytest.raises(ValueError, match="box lists"):
        crop_faces(frames, boxes[:3])


def test_no_face_falls_back_to_centre_square():
    frames = np.zeros((3, 60, 80, 3), np.uint8)
    crops = crop_faces(frames, [NONE] * 3, mode="track", out_size=32)
    assert crops.fallback and crops.coverage == 0.0
    assert crops.boxes.tolist() == [[10, 0, 70, 60]] * 3 and crops.frames.shape == (3, 32, 32, 3)


# --------------------------------------------------------------------------------------------------------------
# a real face through MTCNN
# --------------------------------------------------------------------------------------------------------------
SIZE = 256
# The astronaut's face in skimage.data.astronaut() (512 px), measured once with MTCNN: (181, 62, 268, 172).
FACE_256 = np.array([90.5, 31.0, 134.0, 86.0])


def astronaut_frames(n: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """The astronaut at 256 px, panning 3 px right and 2 px down per frame; returns frames and true face boxes."""
    skdata = pytest.importorskip("skimage.data")
    from mmadfer.media.faces import _resize_hwc

    img = _resize_hwc(skdata.astronaut()[None], SIZE)[0]
    shifts = [(2 * i, 3 * i) for i in range(n)]
    frames = np.stack([np.roll(img, s, axis=(0, 1)) for s in shifts])
    truth = np.stack([FACE_256 + [dx, dy, dx, dy] for dy, dx in shifts])
    return frames, truth


@pytest.fixture(scope="module")
def detector():
    pytest.importorskip("facenet_pytorch")
    return FaceDetector(device="cpu")


@pytest.fixture(scope="module")
def astronaut_clip(tmp_path_factory):
    frames, truth = astronaut_frames()
    t = np.arange(8000 * 2) / 8000
    voice = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2).astype(np.float32)
    path = write_video(tmp_path_factory.mktemp("face") / "astronaut.mp4", frames, 4, voice[None], 8000)
    return read_clip(path), truth


def test_mtcnn_finds_the_astronaut_in_a_decoded_video(detector, astronaut_clip):
    clip, truth = astronaut_clip
    assert clip.num_frames == 8 and clip.has_audio
    boxes, probs = detector.detect(clip.frames)
    assert len(boxes) == len(probs) == 8
    for t, (found, p) in enumerate(zip(boxes, probs)):
        assert found.shape == (1, 4) and p[0] > 0.95, t
        assert box_iou(found, truth[t])[0, 0] > 0.6, (t, found, truth[t])
    crops = crop_faces(clip.frames, boxes, mode="union", out_size=112)
    assert crops.coverage == 1.0 and not crops.fallback and crops.frames.shape == (8, 112, 112, 3)
    # The union box holds every frame's face.
    x1, y1, x2, y2 = crops.boxes[0]
    assert (truth[:, 0] >= x1 - 2).all() and (truth[:, 2] <= x2 + 2).all()
    assert (truth[:, 1] >= y1 - 2).all() and (truth[:, 3] <= y2 + 2).all()
    # The track follows the face: every frame's crop centre is near that frame's face centre.
    track = crop_faces(clip.frames, boxes, mode="track")
    centres = (track.boxes[:, :2] + track.boxes[:, 2:]) / 2
    assert np.abs(centres - (truth[:, :2] + truth[:, 2:]) / 2).max() < 8


def test_blank_frames_have_no_face(detector):
    boxes, probs = detector.detect(np.full((2, 128, 128, 3), 128, np.uint8))
    assert [x.shape for x in boxes] == [(0, 4), (0, 4)] and [p.shape for p in probs] == [(0,), (0,)]
    assert crop_faces(np.full((2, 128, 128, 3), 128, np.uint8), boxes).fallback


def test_detect_downscaled_boxes_map_back(detector):
    frames, truth = astronaut_frames(2)
    small = FaceDetector(device="cpu", max_side=128)
    boxes, _ = small.detect(frames)
    for t in range(2):
        assert box_iou(boxes[t], truth[t])[0, 0] > 0.5
    with pytest.raises(ValueError, match="uint8"):
        detector.detect(frames.astype(np.float32))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_detection_matches_cpu(detector):
    frames, truth = astronaut_frames(4)
    cpu, _ = detector.detect(frames)
    gpu, _ = FaceDetector(device="cuda", batch_size=2).detect(frames)  # two batches
    for c, g in zip(cpu, gpu):
        assert c.shape == g.shape == (1, 4) and box_iou(c, g)[0, 0] > 0.8  # float differences move a box a little
