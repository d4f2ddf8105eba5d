"""A compiled training step pads a short batch to the full batch size; the real clips' loss and gradients must not
change (clips never interact inside the model)."""
import torch
import torch.nn.functional as F

from mmadfer import MMADFER, ModelConfig
from mmadfer.train.engine import _pad_rows


def _grads(model, video, audio, label, pad_to=None):
    model.zero_grad(set_to_none=True)
    if pad_to:
        video, audio = _pad_rows(video, pad_to), _pad_rows(audio, pad_to)
    logits = model(video, audio)[: len(label)]
    loss = F.cross_entropy(logits, label)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_pad_rows_shapes():
    x = torch.arange(6.0).view(3, 2)
    y = _pad_rows(x, 5)
    assert y.shape == (5, 2)
    assert torch.equal(y[:3], x) and torch.equal(y[3:], x[:1].expand(2, 2))
    assert _pad_rows(x, 3) is x and _pad_rows(None, 4) is None


def test_padded_batch_gives_the_same_loss_and_gradients():
    torch.manual_seed(0)
    model = MMADFER(ModelConfig.tiny(), drop_path_rate=0.0).train()
    with torch.no_grad():  # open the fusion gates so the clips' streams really mix within each clip
        for f in model.fusion:
            f.img_gate.fill_(0.5)
            f.aud_gate.fill_(0.5)
    cfg = model.cfg
    video = torch.rand(3, cfg.num_frames, 3, cfg.img_size, cfg.img_size)
    audio = torch.randn(3, 1, cfg.audio_frames, cfg.audio_mel_bins)
    label = torch.tensor([0, 2, 1])
    loss, grads = _grads(model, video, audio, label)
    loss_pad, grads_pad = _grads(model, video, audio, label, pad_to=8)
    assert grads and grads.keys() == grads_pad.keys()
    torch.testing.assert_close(loss_pad, loss, rtol=1e-5, atol=1e-6)
    for name in grads:
        torch.testing.assert_close(grads_pad[name], grads[name], rtol=1e-4, atol=1e-6, msg=name)
