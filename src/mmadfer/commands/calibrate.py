"""Fit temperature scaling: make a checkpoint's confidences honest without changing any of its predictions.

Scores the clips of --split (a validation split: not the clips you train on, nor the test you report), splits them
deterministically into two class-stratified halves (within each class, in dataset order, clips alternate fit,
held-out, ...), fits one temperature T > 0 minimising the NLL of softmax(logits / T) on the fit half, and reports
ECE and NLL before and after on the held-out half. --out gets a .safetensors checkpoint with T in its model config
(a released .pth becomes a .safetensors); predict, evaluate, export and every runtime (ONNX, OpenVINO) apply it.
Dividing logits by a positive T never changes the arg-max, so every top-1 label stays the same.
The fit is on the torch model (fp32 on a CPU); the saved T then applies to any backend.

examples:
  mmadfer calibrate -c DFEW_set_1_best.pth --data DFEW_ROOT --fold 1 --split train --out dfew_f1_calibrated.safetensors
  mmadfer calibrate -c runs/mine/final.safetensors --dataset csv --data val.csv --out mine_calibrated.safetensors
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .evaluate import add_data_arguments

    add_data_arguments(parser, backends=False)
    parser.add_argument("--out", required=True, metavar="FILE.safetensors", help="the calibrated checkpoint")
    parser.add_argument("--report", metavar="JSON", help="also write the before/after numbers as JSON")


def run(args: argparse.Namespace) -> int:

    from ..checkpoints import save_checkpoint
    from ..evaluation.calibration import ece, fit_temperature, nll, probabilities, split_halves
    from ..io import sha256_file
    from ..evaluation.files import write_json
    from ..evaluation.scoring import predict_dataset
    from ._training import TrainingSession
    from .evaluate import load_model_and_dataset

    out = Path(args.out)
    with TrainingSession("calibrate") as session:
        info = session.setup(args.device)
        if out.suffix != ".safetensors":
            raise ValueError(f"--out {out}: the calibrated checkpoint must be a .safetensors file")
        model, dataset = load_model_and_dataset(args, info.device)
        pred = predict_dataset(model, dataset, batch_size=args.batch_size, device=info.device,
                               num_workers=args.num_workers, precision=args.precision)
        logits, y = pred["logits"].double().numpy(), pred["label"].numpy()
        if len(y) < 4:
            raise ValueError(f"{args.data} split {args.split!r}: {len(y)} clip(s) scored; need at least 4 to fit on "
                             f"half and check on the other half")
        fit, held = split_halves(y)
        t0 = float(model.cfg.temperature)
        t = fit_temperature(logits[fit], y[fit])
        before, after = probabilities(logits[held], t0), probabilities(logits[held], t)
        changed = int((before.argmax(1) != after.argmax(1)).sum())
        if changed:  # cannot happen for T > 0; a guard against a broken softmax, not a tolerance
            raise RuntimeError(f"temperature scaling changed {changed} top-1 label(s)")
        result = {"temperature_before": t0, "temperature": t, "fit_clips": int(len(fit)),
                  "heldout_clips": int(len(held)), "skipped": len(pred["skipped"]),
                  "heldout": {"ece_before": ece(before, y[held]), "ece_after": ece(after, y[held]),
                              "nll_before": nll(before, y[held]), "nll_after": nll(after, y[held])},
                  "source": str(args.checkpoint), "source_sha256": sha256_file(args.checkpoint),
                  "dataset": args.dataset, "data": str(args.data), "fold": args.fold, "split": args.split}
        if info.is_main:
            model.cfg = model.cfg.replace(temperature=t)
            extra = dict(getattr(model, "source", {}) or {}).get("extra") or {}
            save_checkpoint(model, out, extra={**extra, "calibration": result})
            if args.report:
                write_json(args.report, result)
    if session.exit_code:
        return session.exit_code
    if info.is_main:
        h = result["heldout"]
        print(f"temperature {t:.4f} (was {t0:g}), fitted on {len(fit)} clips; held-out {len(held)} clips: "
              f"ECE {h['ece_before']:.4f} -> {h['ece_after']:.4f}, NLL {h['nll_before']:.4f} -> {h['nll_after']:.4f}; "
              f"top-1 labels unchanged")
        print(f"checkpoint: {out}")
    return 0
