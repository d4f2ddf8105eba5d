"""backend='auto' by measurement (mmadfer.runtime.select): the fastest path that keeps predictions, never slower
than PyTorch, cached per checkpoint and CPU; conversions bounded in memory and only when they pay off."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from mmadfer import MMADFER, ModelConfig, save_checkpoint
from mmadfer.hardware import cpu_signature
from mmadfer.runtime import select
from mmadfer.runtime.cache import measure_agreement
from mmadfer.runtime.runner import as_runner


class FakeInt8:
    """A converted model's runner as the cache returns it: runs the PyTorch model, carries a measured agreement."""

    def __init__(self, model, backend, top1):
        self.model, self.backend, self.cfg, self.precision = model, backend, model.cfg, "int8"
        self.agreement = {"top1_agreement": top1, "num_clips": 64, "max_abs_logit_diff": 0.1}

    def __call__(self, video, audio):
        with torch.no_grad():
            return self.model(torch.as_tensor(video), torch.as_tensor(audio)).numpy()


class Disagreeing(FakeInt8):
    def __call__(self, video, audio):
        return np.roll(super().__call__(video, audio), 1, axis=1)  # every top-1 class moves


@pytest.fixture
def setup(tiny_model, tmp_path):
    ck = save_checkpoint(tiny_model, tmp_path / "tiny.safetensors")
    loaded = []

    def make(top1=None, timings=None):
        top1 = {"onnx-int8": 1.0, "openvino-int8": 1.0, **(top1 or {})}
        timings = {"torch": 1.2, "onnx-int8": 0.41, "openvino-int8": 1.5, **(timings or {})}
        measured = []

        def load(backend):
            loaded.append(backend)
            if backend == "torch":
                return as_runner(tiny_model, device="cpu", precision="fp32")
            return FakeInt8(tiny_model, backend, top1[backend])

        def measure(backend, runner, inputs):
            measured.append(backend)
            return timings[backend]

        return load, measure, measured

    return ck, tmp_path / "cache", make, loaded


def test_decide_keeps_the_fastest_that_agrees_and_never_a_slower_one():
    assert select.decide({"torch": 1.2, "onnx-int8": 0.41, "openvino-int8": 1.5}, {"onnx-int8": 1, "openvino-int8": 1}) \
        == "onnx-int8"
    assert select.decide({"torch": 1.2, "openvino-int8": 0.9}, {"openvino-int8": 1.0}) == "openvino-int8"
    assert select.decide({"torch": 0.5, "onnx-int8": 0.6, "openvino-int8": 0.7},
                         {"onnx-int8": 1, "openvino-int8": 1}) == "torch"  # AVX2-only: int8 slower
    assert select.decide({"torch": 1.0, "onnx-int8": 0.2}, {"onnx-int8": 0.98}) == "torch"  # fast but disagrees
    assert select.decide({"torch": 1.0, "onnx-int8": 1.0}, {"onnx-int8": 1.0}) == "torch"  # a tie keeps PyTorch


def test_choose_measures_prints_and_caches_per_checkpoint_and_cpu(setup, monkeypatch):
    ck, cache, make, loaded = setup
    load, measure, measured = make()
    lines = []
    choice = select.choose(ck, load, ["openvino-int8", "onnx-int8"], cache_dir=cache, measure=measure,
                           memory=2**40, log=lines.append)
    assert choice.backend == "onnx-int8" and choice.runner.backend == "onnx-int8"
    assert sorted(measured) == ["onnx-int8", "openvino-int8", "torch"]
    assert lines == ["backend auto -> onnx-int8 (onnx-int8 0.41 s, torch 1.20 s, openvino-int8 1.50 s per clip; "
                     "openvino-int8 agreement 100.0% on 64 held-out clips; onnx-int8 agreement 100.0% on 64 "
                     "held-out clips)"]
    saved = json.loads(select.decision_path(ck, cache).read_text())
    assert saved["backend"] == "onnx-int8" and saved["cpu"] == cpu_signature()

    load, measure, measured = make(timings={"torch": 0.1})  # the same CPU: the cached decision, nothing measured
    lines.clear()
    assert select.choose(ck, load, ["openvino-int8", "onnx-int8"], cache_dir=cache, measure=measure,
                         log=lines.append).backend == "onnx-int8"
    assert measured == [] and "decided earlier on this CPU" in lines[0]

    other = {**cpu_signature(), "model": "Some AVX-512 CPU", "flags": ["avx512_vnni"]}
    monkeypatch.setattr(select, "cpu_signature", lambda: other)  # another CPU decides again, by measuring
    assert select.choose(ck, load, ["openvino-int8", "onnx-int8"], cache_dir=cache, measure=measure,
                         memory=2**40, log=lines.append).backend == "torch"
    assert sorted(measured) == ["onnx-int8", "openvino-int8", "torch"]
    assert len(list((cache / "auto").iterdir())) == 2

    save_checkpoint(MMADFER(ModelConfig.tiny(num_classes=4)), ck)  # another checkpoint: decided again
    measured.clear()
    select.choose(ck, load, ["openvino-int8", "onnx-int8"], cache_dir=cache, measure=measure, memory=2**40,
                  log=lines.append)
    assert "torch" in measured


def test_auto_falls_back_to_torch_below_the_agreement_bar(setup, tiny_model):
    ck, cache, make, _ = setup
    from mmadfer.export.calibration import heldout_inputs

    found = measure_agreement(tiny_model, Disagreeing(tiny_model, "onnx-int8", 0.0))["agreement"]
    assert found["top1_agreement"] == 0.0 and found["num_clips"] == len(
        [c for v, _ in heldout_inputs(tiny_model.cfg) for c in v])
    load, measure, _ = make(top1={"onnx-int8": found["top1_agreement"], "openvino-int8": 0.985})
    lines = []
    choice = select.choose(ck, load, ["openvino-int8", "onnx-int8"], cache_dir=cache, measure=measure,
                           memory=2**40, log=lines.append)
    assert choice.backend == "torch" and choice.runner.backend == "torch"
    assert "onnx-int8 would be faster but agrees with PyTorch on fewer than 99% of held-out clips" in lines[0]
    assert "onnx-int8 agreement 0.0%" in lines[0]


def test_short_job_runs_torch_now_and_decides_nothing(setup):
    ck, cache, make, loaded = setup
    load, measure, measured = make()
    lines = []
    params = sum(p.numel() for p in load("torch").net.parameters())
    loaded.clear()
    torch_s = select.estimate_torch_s(params)
    seconds = sum(select.estimate_conversion(b, params, torch_s)[0] for b in ("openvino-int8", "onnx-int8"))
    n = int(seconds / (torch_s * (1 - select.INT8_TIME_GUESS))) + 1  # the shortest job that repays converting
    assert select.pays_off(n, torch_s, seconds) and not select.pays_off(n - 2, torch_s, seconds)
    choice = select.choose(ck, load, ["openvino-int8", "onnx-int8"], cache_dir=cache, job_windows=n - 2,
                           measure=measure, memory=2**40, log=lines.append)
    assert choice.backend == "torch" and loaded == ["torch"] and measured == []  # nothing converted nor run
    assert lines[0].startswith(f"backend auto -> torch for now: {n - 2} clips take about")
    assert not select.decision_path(ck, cache).exists()
    assert select.choose(ck, load, ["openvino-int8", "onnx-int8"], cache_dir=cache, job_windows=n,
                         measure=measure, memory=2**40, log=lines.append).backend == "onnx-int8"  # a long job


def test_conversion_over_the_memory_bound_is_skipped_with_a_reason(setup):
    ck, cache, make, loaded = setup
    load, measure, _ = make()
    lines = []
    _, peak = select.estimate_conversion("onnx-int8", 10**6, 1.0)
    choice = select.choose(ck, load, ["openvino-int8", "onnx-int8"], cache_dir=cache, measure=measure,
                           memory=1 << 20, log=lines.append)
    assert choice.backend == "torch" and loaded == ["torch"]
    assert [line.split(":")[0] for line in lines] == ["backend auto skips openvino-int8",
                                                     "backend auto skips onnx-int8", "backend auto -> torch"]
    assert "over the 0.0 GiB bound" in lines[0]
    assert select.memory_bound() <= select.MEMORY_BOUND
    # the reference model (179 M parameters) converts for ONNX Runtime within 4 GiB, not for OpenVINO (NNCF)
    assert select.estimate_conversion("onnx-int8", 178_531_871, 5.0)[1] <= select.MEMORY_BOUND
    assert select.estimate_conversion("openvino-int8", 178_531_871, 5.0)[1] > select.MEMORY_BOUND


def test_explicit_int8_backend_warns_with_its_measured_agreement_and_corrupt_cache_is_reconverted(tiny_model,
                                                                                                 tmp_path):
    pytest.importorskip("onnxruntime")
    from mmadfer.runtime import cache as conversion
    from mmadfer.runtime.load import load_runner

    ck = save_checkpoint(tiny_model, tmp_path / "tiny.safetensors")
    cache = tmp_path / "cache"
    with warnings.catch_warnings():  # a random tiny model's logits are close: its int8 may well disagree
        warnings.simplefilter("ignore")
        runner = load_runner("onnx-int8", ck, cache_dir=cache)
    measured = runner.agreement
    assert measured["num_clips"] == 64 and 0 < measured["top1_agreement"] <= 1
    assert "onnx int8 (top-1 agreement with PyTorch" in select.ran_with(runner)
    path = conversion.cached_int8_path(ck, cache_dir=cache)
    entry = json.loads(conversion.entry_path(path).read_text())
    entry["agreement"]["top1_agreement"] = 0.875  # as if this model's int8 had lost one window in eight
    conversion.entry_path(path).write_text(json.dumps(entry))
    with pytest.warns(UserWarning, match=r"onnx-int8 agrees with PyTorch on the top class for only 87.5% of 64"):
        assert load_runner("onnx-int8", ck, cache_dir=cache).agreement["top1_agreement"] == 0.875
    path.write_bytes(path.read_bytes()[:1000])  # a corrupt cached model: verified, removed and converted again
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = load_runner("onnx-int8", ck, cache_dir=cache)
    assert again.agreement == measured and path.stat().st_size > 1000


def test_job_size_from_the_videos_durations(tmp_path):
    from mmadfer.commands._jobsize import job_windows
    from mmadfer.data.synthetic import make_astronaut_video

    video = make_astronaut_video(tmp_path / "a.mp4", seconds=12.0, fps=5, size=32, audio=False)
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    assert job_windows([video]) == 3  # 12 s in windows of 5.12 s
    assert job_windows([video, tmp_path / "bad.mp4"], stride_s=1.0) == 12 + 1  # an unreadable file counts one
