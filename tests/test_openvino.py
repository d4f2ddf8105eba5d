"""OpenVINO static int8 (``backend='openvino-int8'``): calibration inputs, conversion, the runner, the cache, and
what ``backend='auto'`` picks. Tiny models: these check behaviour and plumbing; the reference model's speed and
agreement are in BENCHMARKS.md (``mmadfer bench --what cpu``)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mmadfer import CheckpointError, save_checkpoint
from mmadfer.export.verify import random_inputs

pytest.importorskip("openvino")
pytest.importorskip("nncf")

from mmadfer.export import calibration as ovc  # noqa: E402
from mmadfer.export import openvino as ovq  # noqa: E402
from mmadfer.runtime import cache as conversion  # noqa: E402
from mmadfer.runtime.openvino import OpenVinoModel  # noqa: E402


@pytest.fixture(scope="module")
def converted(tiny_model, tmp_path_factory):
    return ovq.openvino_int8(tiny_model, tmp_path_factory.mktemp("ov") / "tiny.xml",
                             calibration=ovc.calibration_inputs(tiny_model.cfg, 4))


def test_calibration_inputs_mix_rendered_faces_and_noise(tiny_model):
    cfg = tiny_model.cfg
    clips = ovc.calibration_inputs(cfg, 4)
    assert len(clips) == 4
    for video, audio in clips:
        assert video.shape == (1, cfg.num_frames, 3, cfg.img_size, cfg.img_size) and video.dtype == np.float32
        assert audio.shape == (1, 1, cfg.audio_frames, cfg.audio_mel_bins) and audio.dtype == np.float32
        assert 0 <= video.min() and video.max() <= 1
    face, noise = clips[0][0], clips[1][0]
    # a rendered face is smooth (neighbouring pixels alike); uniform noise is not
    assert np.abs(np.diff(face, axis=-1)).mean() < 0.5 * np.abs(np.diff(noise, axis=-1)).mean()
    again = ovc.calibration_inputs(cfg, 4)
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(clips, again))


def test_int8_model_tracks_the_pytorch_model(tiny_model, converted):
    assert converted.suffix == ".xml" and converted.with_suffix(".bin").stat().st_size > 0
    runner = OpenVinoModel(converted, threads=2)
    assert runner.cfg == tiny_model.cfg and runner.precision == "int8" and runner.backend == "openvino"
    video, audio = random_inputs(tiny_model.cfg, 6, seed=99)
    with torch.no_grad():
        ref = tiny_model(video, audio).numpy()
    out = runner(video, audio)
    assert out.shape == ref.shape and out.dtype == np.float32
    rel = np.abs(out - ref).max() / np.abs(ref).max()
    assert 0 < rel < 0.1, rel  # quantised: close to fp32 but not identical
    # uint8 frames are scaled like the PyTorch model's input; a batch runs clip by clip
    u8 = (video * 255).round().to(torch.uint8)
    np.testing.assert_allclose(runner(u8[:2], audio[:2]), runner(u8.float() / 255, audio)[:2], rtol=1e-5, atol=1e-6)


def test_runner_rejects_missing_and_foreign_files(tmp_path, converted):
    with pytest.raises(CheckpointError, match="no such file"):
        OpenVinoModel(tmp_path / "missing.xml")
    bad = tmp_path / "bad.xml"
    bad.write_text("<net>not a model</net>")
    with pytest.raises(CheckpointError, match="bad.xml"):
        OpenVinoModel(bad)


def test_conversion_is_cached_per_checkpoint(tiny_model, tmp_path, monkeypatch):
    ck = save_checkpoint(tiny_model, tmp_path / "tiny.safetensors")
    cache = tmp_path / "cache"
    calls = []
    real = ovq.openvino_int8
    small = ovc.calibration_inputs(tiny_model.cfg, 2)
    monkeypatch.setattr(conversion, "openvino_int8", lambda model, path: calls.append(1) or real(model, path,
                                                                                         calibration=small))
    first = conversion.cached_openvino_int8(ck, cache_dir=cache)
    assert first.parent == cache / "openvino" and first.name.startswith("tiny-") and first.name.endswith(".int8.xml")
    assert conversion.cached_openvino_int8(ck, cache_dir=cache) == first and len(calls) == 1  # reused
    # nothing temporary left: the model, its lock and its entry (sizes, SHA-256, agreement)
    assert sorted(p.suffix for p in first.parent.iterdir()) == [".bin", ".json", ".lock", ".xml"]
    save_checkpoint(tiny_model, ck, extra={"note": "retrained"})  # a different file: converted again
    assert conversion.cached_openvino_int8(ck, cache_dir=cache) != first and len(calls) == 2


def test_recognizer_runs_the_int8_model_and_xml_files(tiny_model, converted, tmp_path):
    from mmadfer.predict import Recognizer
    from mmadfer.runtime.load import resolve_backend

    assert resolve_backend(converted, "cpu") == "openvino-int8"
    rec = Recognizer.from_checkpoint(converted, detector=None)  # the IR runs as it is, whatever 'auto' would pick
    assert rec.backend == "openvino" and rec.precision == "int8" and rec.labels == tiny_model.cfg.labels
    assert rec.provenance["recorded"] is False  # the tiny model records nothing: neither does its IR
    video, audio = random_inputs(tiny_model.cfg, 3, seed=5)
    probs = rec.predict_batch(video, audio)
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)
    with torch.no_grad():
        ref = torch.softmax(tiny_model(video, audio), -1).numpy()
    assert np.abs(probs - ref).max() < 0.05
    with pytest.raises(ValueError, match="runs with backend='openvino-int8'"):
        Recognizer.from_checkpoint(converted, backend="torch", detector=None)
    with pytest.raises(ValueError, match="precision and compile apply to the torch backend"):
        Recognizer(OpenVinoModel(converted), precision="bf16", detector=None)
    from mmadfer.runtime.load import load_runner

    assert load_runner("openvino-int8", converted).cfg == tiny_model.cfg
    with pytest.raises(ValueError, match="no runner for backend 'torch'"):
        load_runner("torch", converted)


def test_auto_prefers_openvino_then_onnxruntime_then_torch(tiny_model, tmp_path, monkeypatch):
    import importlib.util

    from mmadfer.runtime import load as backends
    from mmadfer.predict import Recognizer

    ck = save_checkpoint(tiny_model, tmp_path / "tiny.safetensors")
    assert backends.resolve_backend(ck, "cpu") == "openvino-int8"
    assert backends.resolve_backend(ck, "cuda") == "torch"
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nncf" else real(name, *a))
    assert backends.resolve_backend(ck, "cpu") == "onnx-int8"  # no NNCF to convert with: ONNX Runtime's int8
    monkeypatch.undo()

    def broken(*a, **k):
        raise RuntimeError("calibration exploded")

    monkeypatch.setattr(conversion, "cached_openvino_int8", broken)
    with pytest.warns(UserWarning, match="openvino-int8 conversion .* failed .*calibration exploded.*auto skips it"):
        rec = Recognizer.from_checkpoint(ck, device="cpu", detector=None)
    assert rec.backend in ("onnx", "torch")  # the faster of the rest, measured (mmadfer.runtime.select)
    with pytest.raises(RuntimeError, match="calibration exploded"):  # asked for explicitly: the error is the answer
        Recognizer.from_checkpoint(ck, device="cpu", detector=None, backend="openvino-int8")


def test_export_cli_writes_a_verified_openvino_model(tiny_model, tmp_path, capsys):
    from mmadfer.cli import main

    from mmadfer.predict import Recognizer
    from mmadfer.provenance import trained_on

    ck = save_checkpoint(tiny_model, tmp_path / "tiny.safetensors",
                         trained_on=trained_on("synthetic", tiny_model.cfg.labels, demo=True))
    out = tmp_path / "out" / "tiny.xml"
    assert main(["export", str(ck), "--openvino", str(out), "--verify", "4"]) == 0
    line = capsys.readouterr().out
    assert f"wrote {out} (openvino int8" in line and "top-1 agreement" in line
    assert out.is_file() and out.with_suffix(".bin").is_file()
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny.bin", "tiny.xml"]  # nothing temporary left
    assert Recognizer.from_checkpoint(out, detector=None).provenance["demo"] is True  # the IR carries the record
    assert main(["export", str(ck)]) == 2 and "--onnx PATH and/or --openvino PATH" in capsys.readouterr().err
    assert main(["export", str(ck), "--openvino", str(out), "--int8"]) == 2


def test_export_cli_calibrates_on_your_own_footage(tiny_model, tmp_path, capsys):
    pytest.importorskip("skimage")
    from mmadfer.cli import main
    from mmadfer.data.synthetic import make_astronaut_video

    ck = save_checkpoint(tiny_model, tmp_path / "tiny.safetensors")
    footage = tmp_path / "footage"
    make_astronaut_video(footage / "talk.mp4", seconds=11.0, fps=10, size=96, seed=4)
    (footage / "broken.mp4").write_bytes(b"not a video")
    inputs = ovc.footage_inputs(tiny_model.cfg, [footage / "talk.mp4"], 3, detector=None)
    assert len(inputs) == 2  # an 11 s video holds two whole 5.12 s windows (the rest is too short to keep)
    assert inputs[0][0].shape == (1, 16, 3, 32, 32) and not np.array_equal(inputs[0][0], inputs[1][0])
    with pytest.warns(UserWarning, match="calibration skips .*broken.mp4"):  # the Python API warns
        assert len(ovc.footage_inputs(tiny_model.cfg, sorted(footage.iterdir()), 2, detector=None)) == 2
    out = tmp_path / "tiny.xml"
    rc = main(["export", str(ck), "--openvino", str(out), "--calibrate", str(footage), str(tmp_path / "nope"),
               "--calibration-clips", "2", "--no-faces", "--verify", "2"])
    assert rc == 0 and out.is_file()
    captured = capsys.readouterr()  # one bad file loses nothing else, and each gets one line on stderr
    assert "calibrating on 2 windows of 2 video(s)" in captured.out and "nope: file not found" in captured.err
    assert "skipped " in captured.err and "broken.mp4" in captured.err
    assert main(["export", str(ck), "--onnx", str(tmp_path / "x.onnx"), "--calibrate", str(footage)]) == 2
    assert main(["export", str(ck), "--openvino", str(out), "--calibrate", str(footage / "broken.mp4")]) == 2
    assert "no readable video" in capsys.readouterr().err
