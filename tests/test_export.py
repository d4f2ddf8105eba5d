"""ONNX export: parity with PyTorch (fp32), int8 agreement, metadata round trip, the CLI and the ONNX Recognizer."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from mmadfer import CheckpointError, save_checkpoint  # noqa: E402
from mmadfer.cli import main  # noqa: E402
from mmadfer.export import compare, export_onnx, onnx_bytes, random_inputs  # noqa: E402
from mmadfer.provenance import trained_on  # noqa: E402
from mmadfer.runtime.onnx import OnnxModel  # noqa: E402

from conftest import TINY_LABELS as LABELS  # noqa: E402


@pytest.fixture(scope="module")
def exported(tiny_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    return export_onnx(tiny_model, path, int8=True)


def test_fp32_parity_with_dynamic_batch(tiny_model, exported):
    runner = OnnxModel(exported["fp32"])
    for batch in (1, 5):  # the batch axis is dynamic: sizes other than the traced one (2) must work
        video, audio = random_inputs(tiny_model.cfg, batch, seed=batch)
        with torch.no_grad():
            ref = tiny_model(video, audio).numpy()
        out = runner(video, audio)
        assert out.shape == (batch, 4)
        assert np.abs(out - ref).max() <= 1e-3
    # uint8 frames are divided by 255 by the runner, as the PyTorch model does
    video_u8 = (torch.rand(2, 16, 3, 32, 32) * 255).to(torch.uint8)
    audio = torch.randn(2, 1, 512, 128)
    with torch.no_grad():
        ref = tiny_model(video_u8, audio).numpy()
    assert np.abs(runner(video_u8.numpy(), audio.numpy()) - ref).max() <= 1e-3


def test_metadata_round_trip(tiny_model, exported):
    for path in exported.values():
        cfg = OnnxModel.read_config(path)
        assert cfg == tiny_model.cfg
        assert cfg.labels == LABELS
    assert OnnxModel(exported["int8"]).precision == "int8"
    assert OnnxModel(exported["fp32"]).precision == "fp32"


def test_int8_file_to_file_equals_the_in_memory_conversion(tiny_model, tmp_path):
    """int8_onnx (export to a file, drop the model, quantise file to file: the conversion cache's low-memory path)
    gives the model the in-memory path gives: the same int8 weights, graph, metadata and outputs."""
    import copy

    import onnx

    from mmadfer.export.onnx import int8_onnx, quantize_int8, read_onnx_config

    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "m.onnx").write_bytes(onnx_bytes(tiny_model))  # the fp32 graph via bytes in memory
    old = quantize_int8(tmp_path / "old" / "m.onnx", tmp_path / "old" / "m.int8.onnx")
    loads = []
    new = int8_onnx(lambda: loads.append(1) or copy.deepcopy(tiny_model), tmp_path / "new" / "m.int8.onnx")
    assert loads == [1] and [p.name for p in (tmp_path / "new").iterdir()] == ["m.int8.onnx"]  # no temporaries left
    a, b = onnx.load(old), onnx.load(new)
    assert [(n.op_type, list(n.input)) for n in a.graph.node] == [(n.op_type, list(n.input)) for n in b.graph.node]
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in a.graph.initializer}
    assert {t.name for t in b.graph.initializer} == set(weights)
    assert any(w.dtype == np.int8 for w in weights.values())
    for t in b.graph.initializer:
        assert np.array_equal(onnx.numpy_helper.to_array(t), weights[t.name]), t.name
    assert read_onnx_config(new).to_dict() == read_onnx_config(old).to_dict() == tiny_model.cfg.to_dict()
    assert {p.key: p.value for p in b.metadata_props}["mmadfer_precision"] == "int8"
    video, audio = random_inputs(tiny_model.cfg, 3, seed=11)
    assert np.array_equal(OnnxModel(old)(video, audio), OnnxModel(new)(video, audio))


def test_int8_agreement_is_measured(tiny_model, exported):
    fp32 = compare(tiny_model, OnnxModel(exported["fp32"]), num_clips=24, batch_size=8)
    int8 = compare(tiny_model, OnnxModel(exported["int8"]), num_clips=24, batch_size=8)
    assert fp32["max_abs_logit_diff"] <= 1e-3 and fp32["top1_agreement"] == 1.0
    assert exported["int8"].stat().st_size < exported["fp32"].stat().st_size
    assert 0 < int8["max_abs_logit_diff"] < 1.0  # quantisation changes the logits, but only a little
    assert int8["top1_agreement"] >= 0.5
    assert int8["num_clips"] == 24


def test_export_cli_and_onnx_recognizer(tiny_model, tmp_path, capsys):
    from mmadfer.predict.recognizer import Recognizer

    demo = trained_on("synthetic", LABELS, demo=True)
    ck = save_checkpoint(tiny_model, tmp_path / "tiny.safetensors", trained_on=demo)
    out = tmp_path / "m.onnx"
    assert main(["export", str(ck), "--onnx", str(out), "--int8", "--verify", "8"]) == 0
    printed = capsys.readouterr().out
    assert out.is_file() and (tmp_path / "m.int8.onnx").is_file()
    assert "fp32" in printed and "int8" in printed and "top-1 agreement" in printed

    video, audio = random_inputs(tiny_model.cfg, 3, seed=7)
    torch_rec = Recognizer.from_checkpoint(ck, device="cpu", detector=None, precision="fp32")
    p_torch = torch_rec.predict_batch(video, audio)
    for source in (out, ck):  # an exported file, or a checkpoint exported in memory
        onnx_rec = Recognizer.from_checkpoint(source, device="cpu", backend="onnx", detector=None)
        assert onnx_rec.labels == LABELS and onnx_rec.precision == "fp32"
        p_onnx = onnx_rec.predict_batch(video, audio)
        np.testing.assert_allclose(p_onnx.sum(1), 1.0, atol=1e-5)
        assert np.abs(p_onnx - p_torch).max() < 1e-4
    for source in (tmp_path / "m.int8.onnx", ck):  # int8: the exported file, or quantised in memory (no cache)
        int8_rec = Recognizer.from_checkpoint(source, device="cpu", backend="onnx-int8", detector=None,
                                              cache_dir=False)
        assert int8_rec.backend == "onnx" and int8_rec.precision == "int8"
        p_int8 = int8_rec.predict_batch(video, audio)
        assert 0 < np.abs(p_int8 - p_torch).max() < 0.05  # quantised: close, not equal
    for source in (out, tmp_path / "m.int8.onnx"):  # an exported demo model still says it is one
        assert Recognizer.from_checkpoint(source, detector=None).provenance["demo"] is True, source
    bare = tmp_path / "bare.onnx"  # a file that records nothing says so, and why
    export_onnx(tiny_model, bare)
    assert "an exported model file does not carry it" in Recognizer.from_checkpoint(bare, detector=None).provenance["note"]
    with pytest.raises(ValueError, match="backend must be one of"):
        Recognizer.from_checkpoint(ck, backend="tensorrt")


def test_in_memory_export_and_bad_files(tiny_model, tmp_path):
    runner = OnnxModel(onnx_bytes(tiny_model))
    assert runner.path is None and runner.cfg.labels == LABELS
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    assert main(["export", str(bad), "--onnx", str(tmp_path / "x.onnx")]) == 2
    assert not (tmp_path / "x.onnx").exists()
    # an ONNX file without mmadfer metadata is refused with the file named
    import onnx
    plain = tmp_path / "plain.onnx"
    proto = onnx.load_from_string(onnx_bytes(tiny_model))
    del proto.metadata_props[:]
    onnx.save(proto, plain)
    with pytest.raises(CheckpointError, match="plain.onnx"):
        OnnxModel(plain)


def _op_counts(path) -> dict[str, int]:
    import collections

    import onnx

    return collections.Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def test_attention_exports_as_fused_onnxruntime_nodes(tiny_model, exported, tmp_path):
    depth = tiny_model.cfg.depth
    fp32, int8 = _op_counts(exported["fp32"]), _op_counts(exported["int8"])
    assert fp32["Attention"] == 2 * depth  # one node per block of each encoder
    assert int8["QAttention"] == 2 * depth and int8["Attention"] == 0  # their QKV projections are int8
    assert int8["ConvInteger"] == 0 and int8["Conv"] == 2  # patch embeddings stay fp32 (faster on the CPU)
    # the swap is only for the export: the model's own modules are back, and it computes what it did
    from timm.models.vision_transformer import Attention

    assert all(type(b.attn) is Attention for b in tiny_model.vision.blocks)
    # portable: standard operators only, same numbers
    portable = export_onnx(tiny_model, tmp_path / "portable.onnx", portable=True)["fp32"]
    ops = _op_counts(portable)
    assert ops["Attention"] == 0 and ops["Softmax"] >= 2 * depth
    video, audio = random_inputs(tiny_model.cfg, 3, seed=7)
    a, b = OnnxModel(portable)(video, audio), OnnxModel(exported["fp32"])(video, audio)
    assert np.abs(a - b).max() <= 1e-4


def test_fused_attention_restores_the_model_after_an_error(tiny_model):
    from mmadfer.export.attention import fused_attention

    before = [b.attn for b in tiny_model.audio.blocks]
    with pytest.raises(RuntimeError, match="boom"):
        with fused_attention(tiny_model) as swapped:
            assert swapped == 2 * tiny_model.cfg.depth
            assert all(type(b.attn).__name__ == "_ExportAttention" for b in tiny_model.audio.blocks)
            raise RuntimeError("boom")
    assert [b.attn for b in tiny_model.audio.blocks] == before


def test_int8_conversion_is_cached_per_checkpoint(tiny_model, tmp_path, monkeypatch):
    from mmadfer.predict.recognizer import Recognizer
    from mmadfer.runtime import cache as export

    ck = save_checkpoint(tiny_model, tmp_path / "tiny.safetensors")
    cache = tmp_path / "cache"
    calls = []
    real = export.int8_onnx
    monkeypatch.setattr(export, "int8_onnx", lambda load, path: calls.append(1) or real(load, path))
    first = export.cached_int8(ck, cache_dir=cache)
    assert first.parent == cache / "onnx" and first.name.startswith("tiny-") and first.name.endswith(".int8.onnx")
    assert export.cached_int8(ck, cache_dir=cache) == first and len(calls) == 1  # reused, not converted again
    with warnings.catch_warnings():  # this random tiny model's int8 may disagree with it: a warning, not an error
        warnings.simplefilter("ignore")
        rec = Recognizer.from_checkpoint(ck, device="cpu", backend="onnx-int8", detector=None, cache_dir=cache)
    assert rec.precision == "int8" and len(calls) == 1
    monkeypatch.setenv("MMADFER_CACHE", str(tmp_path / "env_cache"))
    assert export.default_cache_dir() == tmp_path / "env_cache"
    save_checkpoint(tiny_model, ck, extra={"note": "retrained"})  # a different file: converted again
    second = export.cached_int8(ck, cache_dir=cache)
    models = sorted(p.name for p in (cache / "onnx").iterdir() if p.suffix == ".onnx")  # with a lock and an entry
    assert second != first and len(calls) == 2 and models == sorted([first.name, second.name])
    with pytest.raises(CheckpointError, match="no such file"):
        export.cached_int8(tmp_path / "missing.safetensors", cache_dir=cache)

