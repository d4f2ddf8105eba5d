"""Export a trained model to ONNX (optionally also dynamic int8) and check it against PyTorch.

The graph holds the model only (video frames in [0, 1] and the normalised fbank in, logits out, dynamic batch); decoding,
face cropping and audio features stay in mmadfer. The model's config, class names and preprocessing profile travel in
the ONNX metadata, so `mmadfer predict --checkpoint model.onnx --backend onnx` needs nothing else.

  mmadfer export run/model.safetensors --onnx model.onnx            # fp32, verified against PyTorch
  mmadfer export dfew_fold1.pth --onnx dfew.onnx --int8             # also writes dfew.int8.onnx
"""
from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="mmadfer .safetensors checkpoint or the reference's released .pth")
    p.add_argument("--onnx", required=True, metavar="PATH", help="output .onnx file (fp32)")
    p.add_argument("--int8", action="store_true",
                   help="also write <stem>.int8.onnx, dynamically quantised by onnxruntime (smaller, faster on CPU)")
    p.add_argument("--portable", action="store_true",
                   help="standard ONNX operators only, for runtimes other than ONNX Runtime (by default each "
                        "attention is one fused ONNX Runtime node, which is faster)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17)")
    p.add_argument("--verify", type=int, default=16, metavar="N",
                   help="compare with PyTorch on N random clips (0 to skip; default %(default)s)")
    p.add_argument("--tolerance", type=float, default=1e-3,
                   help="max |Δlogit| allowed for the fp32 export (default %(default)s); exit 1 if exceeded")


def run(args: argparse.Namespace) -> int:
    from ..checkpoints import load_model
    from ..errors import CheckpointError
    from ..export import DEFAULT_OPSET, OnnxModel, compare, export_onnx

    try:
        model = load_model(args.checkpoint)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    paths = export_onnx(model, args.onnx, opset=args.opset or DEFAULT_OPSET, int8=args.int8,
                        portable=args.portable)
    status = 0
    for kind, path in paths.items():
        size = path.stat().st_size / 2**20
        line = f"wrote {path} ({kind}, {size:.1f} MiB)"
        if args.verify > 0:
            r = compare(model, OnnxModel(path), num_clips=args.verify, batch_size=min(args.verify, 8))
            line += (f": vs PyTorch on {r['num_clips']} random clips, max |Δlogit| {r['max_abs_logit_diff']:.2e}, "
                     f"top-1 agreement {100 * r['top1_agreement']:.1f}%")
            if kind == "fp32" and r["max_abs_logit_diff"] > args.tolerance:
                line += f"  FAILED: above the tolerance {args.tolerance:g}"
                status = 1
        print(line)
    return status
