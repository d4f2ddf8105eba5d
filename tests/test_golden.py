"""The whole model against outputs computed with the authors' own code (../shared/golden/official_b2_224.*)."""
from __future__ import annotations

import pytest
import torch
from reference import GOLDEN, golden_inputs, reference_state_dict, save_reference_container

import mmadfer

pytestmark = pytest.mark.slow
TOL = dict(rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def golden():
    return golden_inputs()


@pytest.fixture(scope="module")
def official_model(tmp_path_factory):
    path = save_reference_container(reference_state_dict(), tmp_path_factory.mktemp("ref") / "dfew_fold1.pth")
    return mmadfer.load_official_checkpoint(path)


def _outputs(model, images, audio):
    with torch.no_grad():
        feats = model.forward_features(images, audio)
        return feats["fused_frames"], feats["clip"], model.head(feats["clip"])


def test_reference_checkpoint_reproduces_golden_outputs(official_model, golden):
    assert not official_model.training
    assert official_model.cfg.num_classes == 7 and official_model.cfg.img_size == 224
    fused, clip, logits = _outputs(official_model, golden["images"], golden["audio"])
    torch.testing.assert_close(fused, golden["fused_frames"], **TOL)
    torch.testing.assert_close(clip, golden["temporal_out"], **TOL)
    torch.testing.assert_close(logits, golden["logits"], **TOL)
    torch.testing.assert_close(official_model(golden["images"], golden["audio"]), golden["logits"], **TOL)


def test_batch_of_one_matches_golden_rows(official_model, golden):
    _, _, logits = _outputs(official_model, golden["images"][1:], golden["audio"][1:])
    torch.testing.assert_close(logits, golden["logits"][1:], **TOL)


def test_uint8_video_path_matches_float_path(official_model, golden):
    """Loaders ship uint8 frames; the model divides by 255 itself. Same answer as feeding float [0,1] frames."""
    u8 = (golden["images"][:1] * 255).round().to(torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(official_model(u8, golden["audio"][:1]),
                                   official_model(u8.float() / 255, golden["audio"][:1]), rtol=1e-5, atol=1e-6)


def test_sensitivity_swapping_audio_changes_logits(official_model, golden):
    """The golden README's sensitivity check: audio of the two clips swapped is far above tolerance."""
    with torch.no_grad():
        swapped = official_model(golden["images"], golden["audio"].flip(0))
    rel = (swapped - golden["logits"]).abs().max() / golden["logits"].abs().max()
    assert rel > 1e-3


def test_mafw_eleven_classes(tmp_path, golden):
    """An 11-class (MAFW) container: the recipe's first 7 classifier rows equal the 7-class ones, so those logits
    must equal the golden ones exactly, and the 4 extra classes come out too."""
    path = save_reference_container(reference_state_dict(num_classes=11), tmp_path / "mafw.pth")
    model = mmadfer.load_official_checkpoint(path)
    assert model.cfg.num_classes == 11 and model.cfg.labels[0] == "anger"
    with torch.no_grad():
        logits = model(golden["images"][:1], golden["audio"][:1])
    assert logits.shape == (1, 11)
    torch.testing.assert_close(logits[:, :7], golden["logits"][:1], **TOL)


def test_160px_checkpoint_infers_size_and_runs(tmp_path, golden):
    path = save_reference_container(reference_state_dict(img_size=160), tmp_path / "dfew160.pth")
    model = mmadfer.load_official_checkpoint(path)
    assert model.cfg.img_size == 160 and model.vision.grid_size == (10, 10)
    images = torch.nn.functional.interpolate(golden["images"][0], size=160, mode="bilinear", antialias=True)
    with torch.no_grad():
        logits = model(images.unsqueeze(0), golden["audio"][:1])
    assert logits.shape == (1, 7) and torch.isfinite(logits).all()


def test_released_container_sample_is_read_on_cpu_without_code():
    """The authors' container layout, saved on CUDA with numpy 2.x: read on a CPU-only machine, tensors on CPU."""
    from mmadfer.checkpoints import safe_torch_load

    obj = safe_torch_load(GOLDEN / "official_container_sample.pth")
    assert set(obj) >= {"epoch", "state_dict", "best_acc", "optimizer", "recorder"}
    assert all(k.startswith("module.") and v.device.type == "cpu" for k, v in obj["state_dict"].items())
    assert type(obj["recorder"]).__name__ == "_RecorderMeter"  # our inert stand-in, not the pickled class
