"""`mmadfer demo` end to end, as a first-time user runs it: no downloads, CPU only, everything in one folder."""
from __future__ import annotations

import pandas as pd
import pytest

from mmadfer.cli import main
from mmadfer.media.decode import read_clip


def _check_outputs(out, seconds: float, labels, checkpoint) -> pd.DataFrame:
    from mmadfer import load_checkpoint
    from mmadfer.media.windows import window_spans

    window_s = load_checkpoint(checkpoint).cfg.preprocess.window_s  # the model's own window (its audio span)

    sample, anon = read_clip(out / "sample.mp4"), read_clip(out / "sample_anonymized.mp4")
    assert sample.duration_s == pytest.approx(seconds, abs=0.1) and sample.has_audio
    assert anon.frames.shape == sample.frames.shape and not anon.has_audio
    df = pd.read_csv(out / "sample_timeline.csv")
    assert len(df) == len(window_spans(sample.duration_s, window_s, 1.0))
    assert df.end_s.iloc[0] == pytest.approx(min(window_s, seconds), abs=0.01)
    assert set(df.label) <= set(labels)
    assert (df[[f"p_{c}" for c in labels]].sum(axis=1) - 1).abs().max() < 1e-4
    assert (df.face_coverage > 0.9).all()  # the astronaut's face is found
    assert (out / "sample_timeline.png").stat().st_size > 10_000
    return df


@pytest.mark.slow
def test_demo_end_to_end_trains_and_reuses_its_model(tmp_path, capsys):
    from mmadfer.data.synthetic import SYNTH_CLASSES

    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--seconds", "6", "--quick", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert (out / "demo_model.safetensors").is_file()
    _check_outputs(out, 6.0, SYNTH_CLASSES, out / "demo_model.safetensors")
    assert "synthetic" in printed and "released" in printed and "--checkpoint" in printed
    assert str(out.resolve()) in printed
    # the demo model says what it is, and predict says so too
    from mmadfer.provenance import read_provenance

    prov = read_provenance(out / "demo_model.safetensors", SYNTH_CLASSES)
    assert prov["demo"] and prov["synthetic"] and prov["dataset"] == "synthetic"
    assert main(["predict", str(out / "sample.mp4"), "-c", str(out / "demo_model.safetensors"), "--backend", "torch",
                 "--no-faces", "--window", "5", "-o", str(tmp_path / "t.csv")]) == 0
    assert "NOTE: demo model" in capsys.readouterr().err

    # a second run reuses the trained model instead of training again
    stamp = (out / "demo_model.safetensors").stat().st_mtime_ns
    assert main(["demo", "--out", str(out), "--seconds", "6", "--device", "cpu"]) == 0
    assert "reusing" in capsys.readouterr().out
    assert (out / "demo_model.safetensors").stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_demo_with_a_given_checkpoint(tmp_path, capsys):
    import torch

    from mmadfer import MMADFER, ModelConfig, save_checkpoint

    torch.manual_seed(0)
    labels = ("a", "b", "c")
    ck = save_checkpoint(MMADFER(ModelConfig.tiny(num_classes=3, class_names=labels)), tmp_path / "m.safetensors")
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--seconds", "5.5", "--checkpoint", str(ck), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    _check_outputs(out, 5.5, labels, ck)
    assert not (out / "demo_model.safetensors").exists()  # nothing trained
    assert "synthetic" not in printed.split("Results in")[1]  # no synthetic-model disclaimer for a real checkpoint
