"""FP8 matmuls for the frozen encoder linears (Hopper and newer), with bf16 gradients to the input.

MMA-DFER spends ~93% of its compute in the two frozen ViT-B encoders, whose weights never change. Their ``qkv``,
``proj``, ``fc1`` and ``fc2`` weights are quantised once to float8 e4m3 with one scale per output channel; activations
are quantised on the fly with one scale per token (row-wise scaling, ``torch._scaled_mm``). The backward pass, which
training needs only with respect to the *input* (the prompts and fusion layers upstream train; these weights do not),
runs in bf16 against a bf16 copy of the weight, so gradients carry no fp8 error.

This is an opt-in speed mode: ``mmadfer bench`` reports its logit error and top-1 agreement against fp32.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["FP8Linear", "convert_encoders_to_fp8", "calibrate_static_fp8", "fp8_supported"]

E4M3_MAX = float(torch.finfo(torch.float8_e4m3fn).max)


def fp8_supported(device: torch.device | str | None = None) -> bool:
    """True on CUDA devices of compute capability 8.9 or newer (Ada, Hopper, Blackwell)."""
    if not torch.cuda.is_available():
        return False
    return torch.cuda.get_device_capability(device) >= (8, 9)


def _quantize(x: torch.Tensor, rowwise: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """e4m3 quantisation ``x ≈ q * scale``: one scale per row (``[rows, 1]``) or one for the tensor (``[]``)."""
    amax = x.abs().amax(dim=-1, keepdim=True) if rowwise else x.abs().amax()
    scale = amax.float().clamp_min(1e-12) / E4M3_MAX
    return (x.float() / scale).to(torch.float8_e4m3fn), scale


def _quantize_static(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """e4m3 cast with a fixed tensor-wise ``scale``, saturating at the e4m3 range."""
    return (x.float() / scale).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)


class _FP8LinearFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w8, w_scale, w_hp, bias, rowwise, static_scale=None):
        # x: [M, K]; w8: [N, K] e4m3; w_scale: [1, N] (row-wise) or [] (tensor-wise); w_hp: [N, K] bf16; bias: [N]
        if static_scale is None:
            x8, x_scale = _quantize(x, rowwise)  # [M, K] e4m3, [M, 1] or []
        else:  # calibrated once: only the cast remains (values past the calibrated range saturate)
            x8, x_scale = _quantize_static(x, static_scale), static_scale
        ctx.save_for_backward(w_hp)
        y = torch._scaled_mm(x8, w8.t(), scale_a=x_scale, scale_b=w_scale, out_dtype=torch.bfloat16)  # [M, N]
        return y if bias is None else y + bias  # bias outside: not every build takes it with row-wise scales

    @staticmethod
    def backward(ctx, grad_out):
        (w_hp,) = ctx.saved_tensors
        return grad_out.to(w_hp.dtype) @ w_hp, None, None, None, None, None, None  # dL/dx: [M, K]


class FP8Linear(nn.Module):
    """A frozen ``nn.Linear`` computed with fp8 operands and bf16 output. Build it with :meth:`from_linear`.

    ``rowwise=True`` scales per token and per output channel (most accurate); ``False`` uses one scale per tensor
    (cuBLASLt's classic fp8 path: no per-row reduction, usually faster).
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, rowwise: bool = True):
        super().__init__()
        self.in_features, self.out_features = weight.shape[1], weight.shape[0]
        self.rowwise = rowwise
        w8, w_scale = _quantize(weight.detach(), rowwise)  # per output channel, or per tensor
        self.register_buffer("w8", w8, persistent=False)
        self.register_buffer("w_scale", w_scale.t().contiguous() if rowwise else w_scale, persistent=False)
        self.register_buffer("w_hp", weight.detach().to(torch.bfloat16), persistent=False)
        self.register_buffer("bias", None if bias is None else bias.detach().to(torch.bfloat16), persistent=False)
        self.register_buffer("static_scale", None, persistent=False)  # set by calibrate_static_fp8
        self.calibrating, self.input_amax = False, 0.0

    @classmethod
    def from_linear(cls, linear: nn.Linear, rowwise: bool = True) -> "FP8Linear":
        if linear.in_features % 16 or linear.out_features % 16:
            raise ValueError(f"fp8 matmuls need both dims divisible by 16, got {linear.in_features}→{linear.out_features}")
        return cls(linear.weight, linear.bias, rowwise)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [..., in_features] -> [..., out_features] (bf16)
        x2 = x.reshape(-1, self.in_features)  # [M, K]
        if self.calibrating:  # record the input range; compute in bf16 (runs on any device)
            self.input_amax = max(self.input_amax, float(x2.detach().abs().amax()))
            y = torch.nn.functional.linear(x2.to(self.w_hp.dtype), self.w_hp, self.bias)
        else:
            y = _FP8LinearFn.apply(x2, self.w8, self.w_scale, self.w_hp, self.bias, self.rowwise, self.static_scale)
        return y.view(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        scaling = "row-wise" if self.rowwise else "tensor-wise"
        if self.static_scale is not None:
            scaling += ", static activation scale"
        return f"in_features={self.in_features}, out_features={self.out_features}, fp8=e4m3 {scaling}"


def convert_encoders_to_fp8(model: nn.Module, rowwise: bool = True) -> nn.Module:
    """Swap every *frozen* ``nn.Linear`` inside the encoders' transformer blocks for :class:`FP8Linear`, in place.

    Trainable layers (prompts, fusion, temporal head) stay in their original precision. This is a runtime transform:
    save checkpoints from the unconverted model.
    """
    for enc in (getattr(model, "vision", None), getattr(model, "audio", None)):
        if enc is None or not hasattr(enc, "blocks"):  # a per-frame timm encoder has no ViT blocks: left as it is
            continue
        for block in enc.blocks:
            for parent, name in ((block.attn, "qkv"), (block.attn, "proj"), (block.mlp, "fc1"), (block.mlp, "fc2")):
                layer = getattr(parent, name)
                if isinstance(layer, nn.Linear) and not layer.weight.requires_grad:
                    setattr(parent, name, FP8Linear.from_linear(layer, rowwise))
    return model


@torch.no_grad()
def calibrate_static_fp8(model: nn.Module, batches, *, margin: float = 1.0) -> nn.Module:
    """Give every tensor-wise :class:`FP8Linear` in ``model`` a static activation scale, in place.

    The frozen weights were quantised once already; with a static scale the activations skip their per-call
    ``amax`` reduction too, so only the cast remains. ``batches`` are ``(video, audio)`` inputs run through
    ``model`` (call under the autocast the model will run with); each layer's scale is the largest input magnitude
    seen, times ``margin``, over the e4m3 range. Larger inputs later saturate instead of overflowing.
    """
    layers = [m for m in model.modules() if isinstance(m, FP8Linear)]
    if not layers:
        raise ValueError("no FP8Linear layers: convert the model with convert_encoders_to_fp8(rowwise=False) first")
    if any(m.rowwise for m in layers):
        raise ValueError("static activation scales need tensor-wise fp8: convert_encoders_to_fp8(rowwise=False)")
    for m in layers:
        m.calibrating, m.input_amax, m.static_scale = True, 0.0, None
    try:
        seen = 0
        for video, audio in batches:
            model(video, audio)
            seen += 1
        if not seen:
            raise ValueError("calibrate_static_fp8 needs at least one batch")
    finally:
        for m in layers:
            m.calibrating = False
    for m in layers:
        m.static_scale = torch.tensor(max(m.input_amax, 1e-12) * margin / E4M3_MAX, device=m.w8.device)
    return model
