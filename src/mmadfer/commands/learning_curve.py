"""How many labels: held-out UAR at 5, 10, 20, 50 labelled clips per class, from a checkpoint and from pretraining.

For each size and repeat it draws that many training clips per class from the fold's training split, trains once
from the checkpoint (--init: as `train --init`, encoders frozen, classifier rebuilt) and once from the pretraining
weights (--vision-weights/--audio-weights, as `train`), and scores each run on the same held-out test split (UAR
with its 95% bootstrap interval). Both starts use class-balanced epochs and early stopping on the validation split
when the dataset has one (`prepare --labels` writes it from 3 folds on). Writes OUT/learning_curve.csv and
OUT/learning_curve.png; every run lives under OUT/<start>/n<size>_r<repeat>/ and a re-run resumes.

examples:
  mmadfer learning-curve --config dfew --dataset folder --data data/inhouse --fold 1 --init DFEW_set_1_best.pth \\
      --vision-weights mae_face_pretrain.pth --audio-weights audiomae_pretrained.pth --out runs/curve
  mmadfer learning-curve --config synthetic --dataset folder --data /tmp/inhouse_ds --init runs/synth/final.safetensors \\
      --sizes 5,10,20 --repeats 3 --out runs/curve_synth
"""
from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..train.config import add_config_arguments

    add_config_arguments(parser)
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the runs, the CSV and the chart")
    parser.add_argument("--sizes", default="5,10,20,50", help="labelled clips per class (default 5,10,20,50)")
    parser.add_argument("--repeats", type=int, default=3, help="draws per size (default 3)")
    parser.add_argument("--no-pretraining", action="store_true", help="only the runs from the checkpoint")


def run(args: argparse.Namespace) -> int:
    from ..train.config import INIT_DEFAULTS, config_from_args
    from ..train.learning_curve import learning_curve
    from ._training import TrainingSession

    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        print(f"mmadfer learning-curve: --sizes must be comma-separated integers, got {args.sizes!r}",
              file=sys.stderr)
        return 2
    init, args.init = args.init, None  # the checkpoint's runs get it; the pretraining runs must not
    with TrainingSession("learning-curve") as session:
        cfg = config_from_args(args).replace([d for d in INIT_DEFAULTS if not d.startswith("model.")])
        session.setup(cfg.train.device)
        rows = learning_curve(cfg, args.out, init=init, sizes=sizes, repeats=args.repeats,
                              pretraining=not args.no_pretraining,
                              init_overrides=[f"model.trainable={args.trainable or 'reference'}"])
    if session.exit_code:
        return session.exit_code
    for start in dict.fromkeys(r["start"] for r in rows):
        parts = []
        for n in sorted({r["per_class"] for r in rows}):
            uars = [r["uar"] for r in rows if r["start"] == start and r["per_class"] == n]
            parts.append(f"{n}: {sum(uars) / len(uars):.3f}")
        print(f"from the {start}: held-out UAR by clips per class  " + "  ".join(parts))
    print(f"curve: {args.out}/learning_curve.png, rows: {args.out}/learning_curve.csv")
    return 0
