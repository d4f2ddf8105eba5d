"""Evaluate a checkpoint on a dataset split: UAR, WAR, per-class recall and precision, confusion matrix, predictions.

Accepts mmadfer checkpoints (.safetensors) and the reference implementation's released .pth files. Writes into
--out: metrics.json, per_class.csv, confusion.csv, confusion_normalized.csv, confusion.png and predictions.csv.
With --cost-matrix (a CSV of cost[true, predicted], with or without class-name headers) metrics.json also holds
the expected cost per clip and predictions.csv each clip's cost. Runs under torchrun with the same numbers.

examples:
  mmadfer evaluate --checkpoint DFEW_set_1_best.pth --dataset dfew --data DFEW_ROOT --fold 1 --out eval/dfew_f1
  mmadfer evaluate --checkpoint runs/mine/final.safetensors --dataset csv --data test.csv --cost-matrix cost.csv \\
      --out eval/mine
  mmadfer evaluate --checkpoint DFEW_set_1_best.pth --data DFEW_ROOT --out eval/f1 --backend openvino-int8   # CPU

On a CPU, --backend openvino-int8 (or onnx-int8) scores 3-4x faster than the fp32 default, converted once and
cached as for `mmadfer predict`; its metrics can differ from fp32's where a clip's top two classes are near-tied.
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="an mmadfer .safetensors or a reference .pth checkpoint")
    parser.add_argument("--data", required=True, metavar="ROOT", help="dataset root, or a CSV for --dataset csv")
    parser.add_argument("--dataset", default="dfew", choices=("dfew", "mafw", "folder", "csv"),
                        help="dataset kind (default dfew)")
    parser.add_argument("--fold", type=int, default=1, help="fold 1..5 (default 1; ignored for csv)")
    parser.add_argument("--split", default="test", help="split to score (default test)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the reports")
    parser.add_argument("--cost-matrix", metavar="CSV", help="cost[true, predicted] of each kind of mistake")
    parser.add_argument("--batch-size", type=int, default=16, help="clips per batch and process (default 16)")
    parser.add_argument("--num-workers", type=int, default=4, help="data loader workers (default 4)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 (default auto)")
    parser.add_argument("--precision", default="auto",
                        help="auto (bf16 on a GPU, fp32 on the CPU), fp32, bf16, fp8, fp8t")
    parser.add_argument("--backend", default="torch", choices=("torch", "onnx-int8", "openvino-int8"),
                        help="torch (default: exact fp32 on a CPU), or an int8 CPU runtime (much faster, converted "
                             "once and cached in --cache-dir)")
    parser.add_argument("--cache-dir", metavar="DIR",
                        help="where the int8 backends keep converted models (default $MMADFER_CACHE or ~/.cache/mmadfer)")
    parser.add_argument("--vision-weights", metavar="PATH", help="encoder file for a checkpoint that holds only the "
                        "trained tensors (default: the path recorded in it)")
    parser.add_argument("--audio-weights", metavar="PATH", help="likewise for the audio encoder")
    parser.add_argument("--on-bad-sample", default="skip", choices=("skip", "raise"),
                        help="an undecodable clip is listed in metrics.json and left out (skip, default) or stops "
                             "the evaluation (raise)")
    parser.add_argument("--data-option", action="append", default=[], metavar="KEY=VALUE",
                        help="extra dataset option, e.g. audio_root=/data/wav (repeatable)")


def run(args: argparse.Namespace) -> int:
    from ..checkpoints import load_model
    from ..data.datasets import build_dataset
    from ..metrics import load_cost_matrix
    from ..train.config import parse_value
    from ..train.engine import evaluate_model
    from ._training import TrainingSession

    with TrainingSession("evaluate") as session:
        info = session.setup(args.device)
        kw = {"vision": args.vision_weights, "audio": args.audio_weights} \
            if (args.vision_weights or args.audio_weights) else {}
        if args.backend == "torch":
            model = load_model(args.checkpoint, map_location=info.device, **kw)
        elif kw or args.precision != "auto":
            raise ValueError(f"--vision-weights, --audio-weights and --precision apply to --backend torch, "
                             f"not {args.backend}")
        else:
            from ..runtime.load import load_runner

            model = load_runner(args.backend, args.checkpoint, cache_dir=args.cache_dir)
        options = {}
        for item in args.data_option:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ValueError(f"--data-option {item!r} is not KEY=VALUE")
            options[key.strip()] = parse_value(value)
        dataset = build_dataset(args.dataset, args.data, fold=args.fold, split=args.split, train=False,
                                preprocess=model.cfg.preprocess, on_bad_sample=args.on_bad_sample, **options)
        cost = load_cost_matrix(args.cost_matrix, dataset.class_names) if args.cost_matrix else None
        metrics = evaluate_model(model, dataset, batch_size=args.batch_size, device=info.device, out_dir=args.out,
                                 cost_matrix=cost, num_workers=args.num_workers, precision=args.precision)
    if session.exit_code:
        return session.exit_code
    if info.is_main:
        line = f"UAR {metrics['uar']:.4f}  WAR {metrics['war']:.4f}  ({metrics['num_clips']} clips"
        line += f", {len(metrics['skipped'])} skipped)" if metrics["skipped"] else ")"
        if "expected_cost" in metrics:
            line += f"  expected cost per clip {metrics['expected_cost']:.4f}"
        print(line)
        print(f"reports: {args.out}")
    return 0
