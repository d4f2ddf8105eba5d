"""Train a model: the paper's recipe by default, on DFEW, MAFW, a folder dataset or a CSV of your own clips.

The config is a YAML file or a packaged preset (dfew, mafw, synthetic) plus --set overrides; the resolved config is
written into the run folder with a per-epoch log.csv, TensorBoard scalars, curves.png, resumable states (every
epoch, atomic, checksummed), the final evaluation (eval/) and final.safetensors. Runs under torchrun unchanged.

examples:
  mmadfer train --config dfew --data DFEW_ROOT --fold 1 \\
      --vision-weights mae_face_pretrain.pth --audio-weights audiomae_pretrained.pth --out runs/dfew_f1
  mmadfer train --out runs/dfew_f1 --resume                 # continue a killed run exactly where it stopped
  mmadfer train --config synthetic --data /tmp/synth --out runs/synth --set model.modality=video
  mmadfer train --config dfew --dataset csv --data my_train.csv --test-csv my_test.csv --set model.trainable=all
  mmadfer train --init DFEW_set_1_best.pth --dataset folder --data data/inhouse --fold 1 --out runs/inhouse_f1
      # fine-tune a whole checkpoint on your own classes: classifier rebuilt (rows reused by class name),
      # encoders frozen, class-balanced epochs, early stopping on set_1_val.txt; --trainable head|temporal|adapters
  torchrun --standalone --nproc_per_node 8 -m mmadfer.cli train --config dfew --data DFEW_ROOT --fold 1 ...
"""
from __future__ import annotations

import argparse
import sys
import dataclasses
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..train.config import add_config_arguments

    add_config_arguments(parser)
    parser.add_argument("--out", metavar="RUN_DIR", help="run folder (default: runs/<dataset>-fold<k>-<time>)")
    parser.add_argument("--resume", nargs="?", const="auto", default=None, metavar="STATE",
                        help="continue the run in --out from its newest state (or from the given state file); a "
                             "finished run is reported, not retrained")


def run(args: argparse.Namespace) -> int:
    from ..train.config import config_from_args
    from ..train.engine import fit
    from ._training import TrainingSession

    base = None
    if args.resume and not args.config:
        run_dir = Path(args.out) if args.out else (Path(args.resume).resolve().parent.parent
                                                  if args.resume != "auto" else None)
        if run_dir is None:
            print("mmadfer train: --resume needs --out RUN_DIR (or a state file path)", file=sys.stderr)
            return 2
        if not (run_dir / "config.yaml").is_file():
            print(f"mmadfer train: {run_dir / 'config.yaml'} not found: nothing to resume (pass --config to start)",
                  file=sys.stderr)
            return 2
        base = run_dir / "config.yaml"
    with TrainingSession("train") as session:
        cfg = config_from_args(args, base=base)
        if args.out:
            cfg = dataclasses.replace(cfg, run_dir=str(args.out))
        info = session.setup(cfg.train.device)
        result = fit(cfg, resume=args.resume)
    if session.exit_code:
        return session.exit_code
    if not info.is_main:
        return 0
    m = result["metrics"]
    if "uar" in m:
        print(f"UAR {m['uar']:.4f}  WAR {m['war']:.4f}  ({m['num_clips']} test clips)")
    print(f"checkpoint: {result['checkpoint']}\nrun folder: {result['run_dir']}")
    return 0
