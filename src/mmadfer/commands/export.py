"""Export a trained model to ONNX (optionally also dynamic int8) or OpenVINO static int8, checked against PyTorch.

The graph holds the model only (video frames in [0, 1] and the normalised fbank in, logits out, dynamic batch); decoding,
face cropping and audio features stay in mmadfer. The model's config, class names and preprocessing profile travel in
the ONNX metadata, so `mmadfer predict --checkpoint model.onnx --backend onnx` needs nothing else.

  mmadfer export run/model.safetensors --onnx model.onnx            # fp32, verified against PyTorch
  mmadfer export dfew_fold1.pth --onnx dfew.onnx --int8             # also writes dfew.int8.onnx
  mmadfer export dfew_fold1.pth --openvino dfew.xml                  # OpenVINO static int8 (+ dfew.bin): fastest on CPU
  mmadfer export dfew_fold1.pth --openvino dfew.xml --calibrate our_videos/   # calibrated on your own footage

`mmadfer predict` converts a checkpoint by itself on a CPU (and caches it); exporting by hand is for shipping the
converted model, or for running it without PyTorch checkpoints around.
"""
from __future__ import annotations

import argparse
import sys

from ._inputs import discover


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="mmadfer .safetensors checkpoint or the reference's released .pth")
    p.add_argument("--onnx", metavar="PATH", help="output .onnx file (fp32)")
    p.add_argument("--openvino", metavar="PATH",
                   help="output OpenVINO .xml (+ .bin beside it), static int8 calibrated by NNCF on rendered talking "
                        "faces and noise (the openvino extra)")
    p.add_argument("--calibrate", nargs="+", metavar="VIDEO_OR_DIR",
                   help="with --openvino: calibrate on windows of these videos (folders searched recursively) "
                        "instead of rendered clips; faces are cropped as mmadfer predict crops them")
    p.add_argument("--calibration-clips", type=int, default=32, metavar="N",
                   help="with --calibrate: how many windows to calibrate on (default %(default)s)")
    p.add_argument("--no-faces", action="store_true",
                   help="with --calibrate: the videos are face crops already (skip face detection)")
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
    from ..export.calibration import footage_inputs
    from ..export.onnx import DEFAULT_OPSET, export_onnx
    from ..export.openvino import openvino_int8
    from ..export.verify import compare
    from ..runtime.load import load_runner

    if not (args.onnx or args.openvino):
        print("error: give --onnx PATH and/or --openvino PATH", file=sys.stderr)
        return 2
    if args.int8 and not args.onnx:
        print("error: --int8 writes <stem>.int8.onnx beside --onnx PATH", file=sys.stderr)
        return 2
    if args.calibrate and not args.openvino:
        print("error: --calibrate calibrates the --openvino model", file=sys.stderr)
        return 2
    try:
        model = load_model(args.checkpoint)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    written = {}  # (kind, path) -> the backend that runs it
    if args.onnx:
        paths = export_onnx(model, args.onnx, opset=args.opset or DEFAULT_OPSET, int8=args.int8,
                            portable=args.portable)
        written.update({(kind, path): "onnx" for kind, path in paths.items()})
    if args.openvino:
        try:
            calibration = None
            if args.calibrate:
                videos, bad = discover(args.calibrate)
                for item, reason in bad:
                    print(f"{item}: {reason}", file=sys.stderr)
                calibration = footage_inputs(model.cfg, [v for v, _ in videos], args.calibration_clips,
                                             detector=None if args.no_faces else "auto",
                                             on_error=lambda path, e: print(f"skipped {e}", file=sys.stderr))
                print(f"calibrating on {len(calibration)} windows of {len(videos)} video(s)")
            written[("openvino int8", openvino_int8(model, args.openvino, calibration=calibration))] = "openvino-int8"
        except (ImportError, ValueError) as e:  # a missing extra (the message says how to install it), no footage
            print(f"error: {e}", file=sys.stderr)
            return 2
    status = 0
    for (kind, path), backend in written.items():
        files = [path, path.with_suffix(".bin")] if path.suffix == ".xml" else [path]  # OpenVINO: weights in .bin
        size = sum(p.stat().st_size for p in files) / 2**20
        line = f"wrote {path} ({kind}, {size:.1f} MiB)"
        if args.verify > 0:
            r = compare(model, load_runner(backend, path), num_clips=args.verify, batch_size=min(args.verify, 8))
            line += (f": vs PyTorch on {r['num_clips']} random clips, max |Δlogit| {r['max_abs_logit_diff']:.2e}, "
                     f"top-1 agreement {100 * r['top1_agreement']:.1f}%")
            if kind == "fp32" and r["max_abs_logit_diff"] > args.tolerance:
                line += f"  FAILED: above the tolerance {args.tolerance:g}"
                status = 1
        print(line)
    return status
