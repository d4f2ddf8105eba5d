"""`mmadfer bench --what predict`: end-to-end rows with the time split by stage and the CPU named beside them, for the
--size model and a student side by side."""
from __future__ import annotations

import json

import pytest

from mmadfer.cli import main
from mmadfer.data.synthetic import make_astronaut_video
from mmadfer.hardware import cpu_signature
from mmadfer.predict.benchmark import STAGES


@pytest.mark.slow
def test_bench_predict_rows_and_stage_breakdown(tmp_path, capsys):
    video = make_astronaut_video(tmp_path / "v.mp4", seconds=3.0, fps=8, size=128, seed=0)
    out = tmp_path / "b.json"
    rc = main(["bench", "--device", "cpu", "--size", "tiny", "--what", "predict", "--video", video,
               "--predict-workers", "1", "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    rows = json.loads(out.read_text())["rows"]
    seq, pipe, student_seq, student_pipe = rows  # the --size model, then the default student, side by side
    assert seq["mode"] == student_seq["mode"] == "sequential" and pipe["mode"] == "pipelined, 1 workers"
    assert seq["model"] == "tiny" and student_seq["model"] == "student vit-tiny"
    for r in rows:
        assert r["windows"] == 1 and r["x_realtime"] == pytest.approx(3.0 / r["wall_s"], rel=0.05)
        assert r["cpu"].startswith(cpu_signature()["model"]) and r["cpu_flags"] == " ".join(cpu_signature()["flags"])
        assert r["video"].startswith("128x128 h264 3.0s +audio")
    fr = seq["stage_fraction"]
    assert set(fr) == set(STAGES) | {"other"} and sum(fr.values()) == pytest.approx(1.0, abs=0.01)
    assert all(seq["stage_s"][k] > 0 for k in ("decode", "faces", "fbank", "model", "write"))
    assert seq["non_model_fraction"] == pytest.approx(1 - fr["model"], abs=0.002)
    assert "| predict run (model, mode, video) | wall | decode | faces |" in text and "CPU " in text
    assert "| student vit-tiny, sequential (" in text
