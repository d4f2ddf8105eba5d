"""Decoding: round trips through real encoders, VFR, rotation, audio formats, windows, memory, and a malformed-file
battery in which every bad input must raise MediaError (never hang, never crash)."""
from __future__ import annotations

import io
import os
import tracemalloc
import wave

import av
import numpy as np
import pytest
from PIL import Image

import mmadfer
from mmadfer.errors import MediaError
from mmadfer.media.decode import audio_frame_to_float, open_video, read_clip
from mmadfer.media.encode import write_video

FPS = 10
SR = 16000


def ramp_frames(n: int, h: int = 48, w: int = 64) -> np.ndarray:
    """Frame i is a flat grey of level 8*i (easy to identify after lossy coding) with a white top-left marker."""
    frames = np.repeat(np.repeat((np.arange(n) * 8 % 256).astype(np.uint8)[:, None, None, None], h, 1), w, 2)
    frames = np.repeat(frames, 3, axis=3)
    frames[:, :6, :6] = 255
    return frames


def frame_ids(frames: np.ndarray) -> np.ndarray:
    return np.round(frames[:, frames.shape[1] // 2, frames.shape[2] // 2, 0] / 8).astype(int)


def tones(seconds: float, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return np.stack([0.4 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 950 * t)]).astype(np.float32)


@pytest.fixture(scope="module")
def av_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("media") / "clip.mp4"
    write_video(path, ramp_frames(30), FPS, tones(3.0), SR)
    return str(path)


@pytest.mark.parametrize("ext", ["mp4", "mkv", "mov", "avi"])
def test_round_trip(tmp_path, ext):
    path = tmp_path / f"clip.{ext}"
    audio = tones(3.0)
    write_video(path, ramp_frames(30), FPS, audio, SR)
    clip = mmadfer.read_clip(path)
    assert clip.frames.dtype == np.uint8 and clip.frames.shape == (30, 48, 64, 3)
    assert (frame_ids(clip.frames) == np.arange(30)).all()
    np.testing.assert_allclose(clip.frame_times, np.arange(30) / FPS, atol=1e-3)
    assert clip.fps == pytest.approx(FPS) and clip.has_audio and clip.sample_rate == SR
    assert clip.waveform.dtype == np.float32 and clip.waveform.shape[0] == 2
    assert clip.waveform.shape[1] == pytest.approx(3 * SR, abs=0.1 * SR)
    n = min(clip.waveform.shape[1], audio.shape[1]) - 2000
    np.testing.assert_allclose(clip.waveform[:, 2000:n], audio[:, 2000:n], atol=0.02)  # AAC is lossy, not shifted
    assert clip.start_s == 0 and clip.duration_s == pytest.approx(3.0, abs=0.1)


def test_no_audio_is_valid(tmp_path):
    path = write_video(tmp_path / "silent.mp4", ramp_frames(12), FPS)
    clip = read_clip(path)
    assert not clip.has_audio and clip.sample_rate == 0 and clip.waveform.shape == (0, 0)
    assert clip.num_frames == 12


@pytest.mark.parametrize("rotation,shape,marker", [
    (90, (64, 48), (1, 0)),  # counter-clockwise: the top-left corner goes to the bottom-left
    (-90, (64, 48), (0, 1)),  # clockwise (a phone held upright): top-left goes to top-right
    (180, (48, 64), (1, 1)),
])
def test_rotation_metadata_is_applied(tmp_path, rotation, shape, marker):
    path = write_video(tmp_path / "rot.mp4", ramp_frames(5), FPS, rotation=rotation)
    with open_video(path) as reader:
        assert (reader.height, reader.width) == shape
        clip = reader.read()
    assert clip.frames.shape[1:3] == shape
    ys, xs = np.nonzero(clip.frames[0, :, :, 1] > 200)
    assert (int(ys.mean() > shape[0] / 2), int(xs.mean() > shape[1] / 2)) == marker


def test_variable_frame_rate_uses_timestamps(tmp_path):
    times = np.cumsum(np.random.default_rng(0).uniform(0.03, 0.25, 24)) - 0.03
    path = write_video(tmp_path / "vfr.mkv", ramp_frames(24), 10, frame_times=times)
    clip = read_clip(path)
    assert (frame_ids(clip.frames) == np.arange(24)).all()
    np.testing.assert_allclose(clip.frame_times, times - times[0], atol=1.5e-3)  # times count from the file start
    part = read_clip(path, times[5] - times[0], times[12] - times[0])
    assert (frame_ids(part.frames) == np.arange(5, 12)).all()


@pytest.mark.parametrize("fmt", ["u8", "s16", "s16p", "s32", "s32p", "flt", "fltp", "dbl", "dblp"])
def test_audio_sample_formats_to_float(fmt):
    ref = np.stack([np.linspace(-0.9, 0.9, 64), np.linspace(0.5, -0.5, 64)]).astype(np.float64)  # [C, n]
    planar = fmt.endswith("p")
    dtype = {"u8": np.uint8, "s16": np.int16, "s32": np.int32, "flt": np.float32, "dbl": np.float64}[fmt.rstrip("p")]
    if dtype == np.uint8:
        raw = np.round(ref * 128 + 128).astype(np.uint8)
    elif np.issubdtype(dtype, np.integer):
        raw = np.round(ref * np.iinfo(dtype).max).astype(dtype)
    else:
        raw = ref.astype(dtype)
    arr = raw if planar else raw.T.reshape(1, -1)  # packed formats interleave the channels
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(arr), format=fmt, layout="stereo")
    out = audio_frame_to_float(frame)
    assert out.dtype == np.float32 and out.shape == (2, 64)
    np.testing.assert_allclose(out, ref, atol=1e-2)


def test_multichannel_packed_pcm_keeps_all_channels_and_rate(tmp_path):
    """A 5.1, 22.05 kHz, packed 16-bit PCM track: every channel, native rate, right values."""
    path = str(tmp_path / "surround.mkv")
    n, channels, rate = 22050, 6, 22050
    ref = np.stack([np.full(n, (c + 1) / 10) for c in range(channels)]).astype(np.float32)
    with av.open(path, "w") as out:
        vs = out.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        ast = out.add_stream("pcm_s16le", rate=rate, layout="5.1")
        for i, img in enumerate(ramp_frames(10)):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = i
            out.mux(vs.encode(f))
        out.mux(vs.encode())
        af = av.AudioFrame.from_ndarray((ref.T.reshape(1, -1) * 32767).astype(np.int16), format="s16", layout="5.1")
        af.sample_rate, af.pts = rate, 0
        out.mux(ast.encode(af))
        out.mux(ast.encode())
    clip = read_clip(path)
    assert clip.sample_rate == rate and clip.waveform.shape == (channels, n)
    np.testing.assert_allclose(clip.waveform, ref, atol=1e-3)


def test_range_read_and_backward_seek(av_file):
    whole = read_clip(av_file)
    with open_video(av_file) as reader:
        late = reader.read(2.0, 2.5)
        early = reader.read(0.7, 1.3)  # backwards: must seek, not return stale data
    assert (frame_ids(late.frames) == np.arange(20, 25)).all()
    assert (frame_ids(early.frames) == np.arange(7, 13)).all()
    assert early.start_s == pytest.approx(0.7) and early.duration_s == pytest.approx(0.6)
    assert early.waveform.shape == (2, round(0.6 * SR))
    np.testing.assert_allclose(early.waveform, whole.waveform[:, round(0.7 * SR) : round(1.3 * SR)], atol=1e-6)
    beyond = read_clip(av_file, 2.8, 9.0)
    assert beyond.duration_s == pytest.approx(0.2, abs=0.05) and beyond.num_frames == 2


def test_windows_partition_the_file(av_file):
    whole = read_clip(av_file)
    with open_video(av_file) as reader:
        assert reader.has_audio and reader.num_channels == 2 and reader.sample_rate == SR
        assert (reader.width, reader.height) == (64, 48) and reader.duration_s == pytest.approx(3.0, abs=0.1)
        wins = list(reader.windows(0.8))
        overlapping = list(reader.windows(1.0, 0.5, start_s=0.5, end_s=2.0))
    assert [w.start_s for w in wins] == pytest.approx([0.0, 0.8, 1.6, 2.4])
    assert wins[-1].duration_s < 0.8  # the last window is cut at the end of the media
    np.testing.assert_array_equal(np.concatenate([w.frames for w in wins]), whole.frames)
    np.testing.assert_array_equal(np.concatenate([w.waveform for w in wins], axis=1), whole.waveform)
    assert [w.start_s for w in overlapping] == pytest.approx([0.5, 1.0, 1.5])
    assert [frame_ids(w.frames).tolist() for w in overlapping] == [
        list(range(5, 15)), list(range(10, 20)), list(range(15, 20))]


def test_audio_longer_than_video_is_not_truncation(tmp_path):
    path = write_video(tmp_path / "long_audio.mkv", ramp_frames(10), FPS, tones(4.0), SR)
    clip = read_clip(path)
    assert clip.num_frames == 10 and clip.waveform.shape[1] == pytest.approx(4 * SR, abs=0.1 * SR)


def test_max_side_downscales(av_file):
    with open_video(av_file, max_side=32) as reader:
        clip = reader.read(0, 1)
    assert clip.frames.shape == (10, 24, 32, 3)


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.slow
def test_ten_minutes_stream_in_bounded_memory(tmp_path):
    """10 min of 64x64 video at 10 fps + 8 kHz audio decode to ~93 MB; streaming 5.12 s windows must hold ~1 window."""
    minutes, fps, sr = 10, 10, 8000
    n = minutes * 60 * fps

    def frames():
        img = np.zeros((64, 64, 3), np.uint8)
        for i in range(n):
            img[:] = i % 251
            yield img

    def audio():
        for k in range(minutes * 60):
            yield (0.3 * np.sin(2 * np.pi * 300 * (np.arange(sr) + k * sr) / sr)).astype(np.float32)[None]

    path = write_video(tmp_path / "long.mp4", frames(), fps, audio(), sr)
    decoded_bytes = n * 64 * 64 * 3 + minutes * 60 * sr * 4
    base = _rss()
    tracemalloc.start()
    peak_rss = 0
    frames_seen = samples_seen = 0
    with open_video(path) as reader:
        for clip in reader.windows(5.12):
            frames_seen += clip.num_frames
            samples_seen += clip.waveform.shape[1]
            peak_rss = max(peak_rss, _rss() - base)
    _, peak_traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert frames_seen == n and samples_seen == pytest.approx(minutes * 60 * sr, abs=sr)
    budget = 24 * 2**20
    assert peak_traced < budget and peak_rss < budget, (peak_traced / 2**20, peak_rss / 2**20)
    assert budget < decoded_bytes / 3  # the budget is far below what loading the whole file would take


# --------------------------------------------------------------------------------------------------------------
# the malformed-file battery
# --------------------------------------------------------------------------------------------------------------
def _truncate(src: str, dst, keep: float = 0.5) -> str:
    data = open(src, "rb").read()
    with open(dst, "wb") as f:
        f.write(data[: int(len(data) * keep)])
    return str(dst)


def _faststart_mp4(path) -> str:
    """An MP4 with its index first (as web videos are), so that cutting it leaves a readable header."""
    with av.open(str(path), "w", options={"movflags": "+faststart"}) as out:
        vs = out.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        for i, img in enumerate(np.random.default_rng(0).integers(0, 255, (40, 48, 64, 3), dtype=np.uint8)):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = i
            out.mux(vs.encode(f))
        out.mux(vs.encode())
    return str(path)


def _bad_files(tmp_path) -> dict[str, tuple[str, str]]:
    """name -> (path, expected words in the reason)."""
    noisy = np.random.default_rng(0).integers(0, 255, (40, 48, 64, 3), dtype=np.uint8)  # incompressible
    good = {ext: write_video(tmp_path / f"good.{ext}", noisy, FPS, tones(4.0), SR) for ext in ("mp4", "mkv", "avi")}
    files: dict[str, tuple[str, str]] = {}
    (tmp_path / "zero.mp4").write_bytes(b"")
    files["zero bytes"] = (str(tmp_path / "zero.mp4"), "empty")
    (tmp_path / "random.mp4").write_bytes(np.random.default_rng(1).bytes(20000))
    files["random bytes"] = (str(tmp_path / "random.mp4"), "not a media file")
    (tmp_path / "notes.mkv").write_text("this is not a video\n" * 50)
    files["text file"] = (str(tmp_path / "notes.mkv"), "not a media file")
    files["truncated mp4"] = (_truncate(good["mp4"], tmp_path / "cut.mp4"), "truncated")
    files["truncated faststart mp4"] = (_truncate(_faststart_mp4(tmp_path / "fs.mp4"), tmp_path / "fs_cut.mp4"),
                                        "truncated")
    files["truncated mkv"] = (_truncate(good["mkv"], tmp_path / "cut.mkv"), "truncated")
    files["truncated avi"] = (_truncate(good["avi"], tmp_path / "cut.avi"), "truncated")
    with wave.open(str(tmp_path / "speech.wav"), "wb") as f:
        f.setnchannels(1), f.setsampwidth(2), f.setframerate(SR)
        f.writeframes(np.zeros(SR, "<i2").tobytes())
    files["wav, audio only"] = (str(tmp_path / "speech.wav"), "no video stream")
    with av.open(str(tmp_path / "music.m4a"), "w") as out:
        st = out.add_stream("aac", rate=SR, layout="mono")
        af = av.AudioFrame.from_ndarray(tones(1.0)[:1], format="fltp", layout="mono")
        af.sample_rate, af.pts = SR, 0
        out.mux(st.encode(af))
        out.mux(st.encode())
    files["m4a, audio only"] = (str(tmp_path / "music.m4a"), "no video stream")
    unknown = open(good["avi"], "rb").read().replace(b"FMP4", b"ZZZZ")  # a fourcc no decoder knows
    (tmp_path / "unknown_codec.avi").write_bytes(unknown)
    files["undecodable codec"] = (str(tmp_path / "unknown_codec.avi"), "undecodable video codec")
    (tmp_path / "folder.mp4").mkdir()
    files["directory"] = (str(tmp_path / "folder.mp4"), "directory")
    files["missing"] = (str(tmp_path / "missing.mp4"), "not found")
    return files


@pytest.mark.timeout(120)
def test_malformed_files_raise_media_error(tmp_path):
    for name, (path, words) in _bad_files(tmp_path).items():
        for read in (read_clip, lambda p: list(open_video(p).windows(1.0))):
            with pytest.raises(MediaError) as info:
                read(path)
            err = info.value
            assert isinstance(err, mmadfer.MediaError) and err.path == path, name
            assert words in err.reason, (name, err.reason)
            assert path in str(err) and "\n" not in str(err), name


def test_read_past_the_end_and_bad_ranges(av_file):
    with open_video(av_file) as reader:
        empty = reader.read(10.0, 12.0)
        assert empty.num_frames == 0 and empty.frames.shape == (0, 48, 64, 3) and empty.duration_s == 0
        assert empty.waveform.shape == (2, 0)
        with pytest.raises(ValueError, match="before start"):
            reader.read(2.0, 1.0)
        with pytest.raises(ValueError, match="positive"):
            list(reader.windows(0.0))


def test_write_video_validates_and_is_atomic(tmp_path):
    target = tmp_path / "out.mp4"
    with pytest.raises(ValueError, match="no frames"):
        write_video(target, [], FPS)
    with pytest.raises(ValueError, match="uint8"):
        write_video(target, np.zeros((2, 8, 8, 3), np.float32), FPS)
    with pytest.raises(ValueError, match="sample_rate"):
        write_video(target, ramp_frames(2), FPS, tones(1.0))
    frames = list(ramp_frames(4)) + [np.zeros((10, 10, 3), np.uint8)]  # fails after writing has started
    with pytest.raises(ValueError, match="frame 4"):
        write_video(target, frames, FPS)
    assert list(tmp_path.iterdir()) == []  # neither the output nor a temporary file is left behind
    odd = write_video(tmp_path / "odd.mkv", ramp_frames(3, h=33, w=47), FPS)  # odd sizes are encoded too
    assert read_clip(odd).frames.shape == (3, 33, 47, 3)


# -- colour: the authors' OpenCV decode (issue 22) ---------------------------------------------------------------------
def _encode_yuv(path, planes, tagged: bool):
    """H.264 of the given yuv420p frames, tagged BT.709 (matrix, primaries, transfer; limited range) or untagged."""
    from av.video.reformatter import ColorRange, Colorspace

    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=FPS, options={"crf": "10"})
        s.height, s.width = planes.shape[1] * 2 // 3, planes.shape[2]
        s.pix_fmt = "yuv420p"
        if tagged:
            s.codec_context.colorspace = Colorspace.ITU709
            s.codec_context.color_range = ColorRange.MPEG
            s.codec_context.color_primaries = s.codec_context.color_trc = 1  # BT.709
        for p in planes:
            frame = av.VideoFrame.from_ndarray(p, format="yuv420p")
            if tagged:
                frame.colorspace, frame.color_range = Colorspace.ITU709, ColorRange.MPEG
            out.mux(s.encode(frame))
        out.mux(s.encode())
    return path


def _cv2_frames(path) -> np.ndarray:
    cv2 = pytest.importorskip("cv2")
    cap = cv2.VideoCapture(str(path))
    frames = []
    while (got := cap.read())[0]:
        frames.append(got[1][:, :, ::-1])  # BGR -> RGB, as the authors' script swaps the channels
    cap.release()
    return np.stack(frames)


def test_bt601_decode_is_opencvs_whatever_the_colour_tag(tmp_path):
    """``colorspace='bt601'`` (``prepare --profile mafw-reference``) decodes a BT.709-tagged clip as OpenCV's
    VideoCapture did up to 4.12 (the authors' extract_faces_mfaw.py): BT.601 whatever the tag. The same YUV encoded
    untagged shows what that OpenCV gave for the tagged clip (it ignored the tag; OpenCV >= 4.13, pinned here,
    honours it and decodes the untagged file with BT.601). The default decode honours the tag: it differs."""
    from mmadfer.data.prepare import prepare_mafw_clip

    rgb = np.zeros((6, 48, 64, 3), np.uint8)  # saturated colour bars that move: BT.601 and BT.709 differ most there
    for i in range(6):
        for k, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255),
                                    (255, 0, 255), (200, 120, 40), (40, 90, 200)]):
            rgb[i, :, (k * 8 + i) % 64:(k * 8 + i) % 64 + 8] = colour
    planes = np.stack([av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p").to_ndarray()
                       for f in rgb])
    tagged = _encode_yuv(tmp_path / "bt709.mp4", planes, tagged=True)
    untagged = _encode_yuv(tmp_path / "untagged.mp4", planes, tagged=False)
    with av.open(str(tagged)) as a, av.open(str(untagged)) as b:
        assert a.streams.video[0].codec_context.colorspace == 1  # the tag is in the file
        same = [np.array_equal(x.to_ndarray(), y.to_ndarray()) for x, y in zip(a.decode(video=0), b.decode(video=0))]
    assert len(same) == 6 and all(same)  # the very same YUV pixels, only the tag differs

    opencv_601 = _cv2_frames(untagged).astype(int)
    with open_video(tagged, colorspace="bt601") as r:
        reference = r.read().frames.astype(int)
    with open_video(tagged) as r:
        default = r.read().frames.astype(int)
    assert reference.shape == opencv_601.shape
    assert np.abs(reference - opencv_601).max() <= 1  # the authors' colours
    assert np.abs(default - opencv_601).max() > 20  # the tag honoured: BT.709 colours
    assert np.abs(default - _cv2_frames(tagged).astype(int)).max() <= 1  # as OpenCV >= 4.13 does with the tag
    with pytest.raises(ValueError, match="colorspace"):
        open_video(tagged, colorspace="bt709")

    # prepare --profile mafw-reference crops those frames: its no-face centre square (rows 12:36, columns 20:44 of
    # 48x64) is, byte for byte, the JPEG of the BT.601 decode, not of the default one
    assert prepare_mafw_clip(tagged, tmp_path / "root", "c1", faces=False).status == "ok"
    written = (tmp_path / "root" / "clips_faces" / "c1" / "0.jpg").read_bytes()

    def jpeg(frames):
        buf = io.BytesIO()
        Image.fromarray(frames[0, 12:36, 20:44].astype(np.uint8)).save(buf, format="JPEG", quality=95)
        return buf.getvalue()

    assert written == jpeg(reference) != jpeg(default)
