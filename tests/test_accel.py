"""Execution modes: bf16 and fp8 stay close to fp32 and still train the right parameters (fp8 is emulated on CPU)."""
from __future__ import annotations

import copy

import pytest
import torch

import mmadfer
from mmadfer.accel import PRECISIONS, autocast, optimize_model
from mmadfer.model.fp8 import FP8Linear


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = mmadfer.MMADFER(mmadfer.ModelConfig.tiny()).eval()
    with torch.no_grad():
        for f in model.fusion:
            f.img_gate.fill_(0.5)
            f.aud_gate.fill_(-0.5)
    g = torch.Generator().manual_seed(1)
    inputs = (torch.rand(2, 16, 3, 32, 32, generator=g), torch.randn(2, 1, 512, 128, generator=g))
    return model, inputs


@pytest.mark.parametrize("precision", ["bf16", "fp8", "fp8t"])
def test_low_precision_modes_stay_close_to_fp32(tiny, precision):
    model, inputs = tiny
    with torch.no_grad():
        ref = model(*inputs)
    fast = optimize_model(copy.deepcopy(model), device="cpu", precision=precision)
    with torch.no_grad(), autocast("cpu", precision):
        out = fast(*inputs).float()
    rel = float((out - ref).abs().max() / ref.abs().max())
    assert 0 < rel < 2e-2, rel  # not bit-identical (the mode really changed the arithmetic), yet close
    n_fp8 = sum(isinstance(m, FP8Linear) for m in fast.modules())
    assert n_fp8 == (0 if precision == "bf16" else 2 * model.cfg.depth * 4)


def test_fp8_mode_trains_only_the_adapters(tiny):
    model, inputs = tiny
    fast = optimize_model(copy.deepcopy(model).train(), device="cpu", precision="fp8")
    with autocast("cpu", "fp8"):
        fast(*inputs).float().logsumexp(-1).sum().backward()
    assert fast.vision.prompts.grad is not None and fast.vision.prompts.grad.abs().sum() > 0
    assert fast.fusion[0].img_down.weight.grad.abs().sum() > 0
    assert fast.vision.patch_embed.proj.weight.grad is None
    fp8 = fast.vision.blocks[0].mlp.fc1
    assert isinstance(fp8, FP8Linear) and not list(fp8.parameters())  # frozen weights live in buffers


def test_trainable_linears_are_never_quantised(tiny):
    model, _ = tiny
    fast = optimize_model(copy.deepcopy(model).set_trainable("all"), device="cpu", precision="fp8")
    assert not any(isinstance(m, FP8Linear) for m in fast.modules())


def test_unknown_precision_is_rejected():
    assert "fp8" in PRECISIONS
    with pytest.raises(ValueError, match="precision"):
        autocast("cpu", "fp4")


def test_default_precision_follows_the_hardware(monkeypatch):
    from mmadfer import accel

    for purpose in ("predict", "train", "evaluate"):
        assert accel.default_precision("cuda", purpose=purpose) == "bf16"
    for native in (True, False):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda native=native: native)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
        assert accel.native_bf16("cpu") is native
        assert accel.default_precision("cpu") == ("bf16" if native else "fp32")  # emulated bf16 is slower
        # CPU training and evaluation keep fp32: `evaluate` must reproduce a CPU run's metrics exactly
        assert accel.default_precision("cpu", purpose="train") == accel.default_precision("cpu", purpose="evaluate") \
            == "fp32"
    with pytest.raises(ValueError, match="purpose"):
        accel.default_precision("cpu", purpose="serve")


@pytest.mark.slow
def test_regional_compile_shares_graphs_and_keeps_outputs_and_gradients():
    """Each repeated layer compiles on its own; layers of one kind share a graph, and the numbers do not change."""
    from torch._dynamo.utils import counters

    torch.manual_seed(0)
    eager = mmadfer.MMADFER(mmadfer.ModelConfig.tiny(depth=4)).train()
    with torch.no_grad():
        for f in eager.fusion:
            f.img_gate.fill_(0.5)
            f.aud_gate.fill_(-0.5)
    eager.set_trainable("reference")
    compiled = copy.deepcopy(eager)
    torch._dynamo.reset()
    counters.clear()
    assert optimize_model(compiled, device="cpu", compile="regional") is compiled  # in place: same module
    assert list(compiled.state_dict()) == list(eager.state_dict())  # checkpoints are unaffected
    g = torch.Generator().manual_seed(2)
    video, audio = torch.rand(2, 16, 3, 32, 32, generator=g), torch.randn(2, 1, 512, 128, generator=g)
    outs = {}
    for name, model in (("eager", eager), ("compiled", compiled)):
        model.zero_grad()
        logits = model(video, audio)
        logits.square().sum().backward()
        outs[name] = logits.detach(), {n: p.grad.clone() for n, p in model.named_trainable_parameters()}
    torch.testing.assert_close(outs["compiled"][0], outs["eager"][0], rtol=1e-4, atol=1e-5)
    for n, grad in outs["eager"][1].items():
        torch.testing.assert_close(outs["compiled"][1][n], grad, rtol=1e-3, atol=1e-5, msg=n)
    # 4 + 4 encoder blocks, 4 fusion layers and the temporal head: 13 regions, compiled as 4 graphs
    assert counters["stats"]["unique_graphs"] <= 4, dict(counters["stats"])
    with pytest.raises(ValueError, match="compile must be False or one of"):
        optimize_model(eager, device="cpu", compile="everything")


@pytest.mark.slow
def test_regional_compile_covers_every_block_when_drop_path_rates_differ():
    """Training with stochastic depth gives each block its own drop-path rate (a constant to dynamo): every block
    must still be compiled, not only the first eight before dynamo's recompilation limit sends the rest to eager."""
    from torch._dynamo.utils import counters

    depth = 10
    torch.manual_seed(0)
    model = mmadfer.MMADFER(mmadfer.ModelConfig.tiny(depth=depth, drop_path_rate=0.1)).train()
    torch._dynamo.reset()
    counters.clear()
    optimize_model(model, device="cpu", compile="regional")
    video, audio = torch.rand(1, 16, 3, 32, 32), torch.randn(1, 1, 512, 128)
    model(video, audio).sum().backward()
    # one graph per block and encoder (rates differ), plus the fusion layers' and the temporal head's
    assert counters["stats"]["unique_graphs"] >= 2 * depth, dict(counters["stats"])


def test_static_fp8_scales_are_calibrated_once_and_stay_close(tiny):
    """fp8s: tensor-wise fp8 whose activation scales come from a calibration pass (only the cast remains)."""
    model, inputs = tiny
    with torch.no_grad():
        ref = model(*inputs)
    g = torch.Generator().manual_seed(7)
    calib = [(torch.rand(1, 16, 3, 32, 32, generator=g), torch.randn(1, 1, 512, 128, generator=g)) for _ in range(3)]
    with pytest.raises(ValueError, match="calibration"):
        optimize_model(copy.deepcopy(model), device="cpu", precision="fp8s")
    fast = optimize_model(copy.deepcopy(model), device="cpu", precision="fp8s", calibration=calib)
    layers = [m for m in fast.modules() if isinstance(m, FP8Linear)]
    assert len(layers) == 2 * model.cfg.depth * 4 and not any(m.rowwise or m.calibrating for m in layers)
    # each scale maps the largest calibration input of its layer to the top of the e4m3 range
    seen = {}
    hooks = [m.register_forward_pre_hook(lambda m, a: seen.__setitem__(m, max(seen.get(m, 0.0),
                                                                              float(a[0].abs().max())))) for m in layers]
    for m in layers:
        m.calibrating = True
    with torch.no_grad(), autocast("cpu", "fp8s"):
        for v, a in calib:
            fast(v, a)
    for h in hooks:
        h.remove()
    for m in layers:
        m.calibrating = False
        assert float(m.static_scale) == pytest.approx(seen[m] / torch.finfo(torch.float8_e4m3fn).max, rel=1e-6)
    with torch.no_grad(), autocast("cpu", "fp8s"):
        out = fast(*inputs).float()
    rel = float((out - ref).abs().max() / ref.abs().max())
    assert 0 < rel < 3e-2, rel
    with pytest.raises(ValueError, match="tensor-wise"):
        from mmadfer.model.fp8 import calibrate_static_fp8

        calibrate_static_fp8(optimize_model(copy.deepcopy(model), device="cpu", precision="fp8"), calib)
