"""Evaluate a checkpoint on a dataset split: accuracy, confidence quality, intervals, abstention, subgroups, cost.

Accepts mmadfer checkpoints (.safetensors, with the temperature `mmadfer calibrate` fitted, if any) and the reference
implementation's released .pth files. Writes into --out: metrics.json, per_class.csv, confusion.csv,
confusion_normalized.csv, confusion.png, predictions.csv (a p_<class> column per class), reliability.png,
risk_coverage.csv/.png and, with --groups, subgroups_<column>.png; with --report, report.html (self-contained).

metrics.json holds UAR, WAR, macro-F1, ECE (top-label, 15 equal-width bins), MCE, NLL, Brier, AURC, 95% bootstrap
intervals (ci95: resampled clips, --bootstrap resamples seeded by --seed), the measured throughput and operating
cost. With --cost-matrix (a CSV of cost[true, predicted], with or without class-name headers) it also holds the
expected cost per clip and predictions.csv each clip's cost. Runs under torchrun with the same numbers.

examples:
  mmadfer evaluate --checkpoint DFEW_set_1_best.pth --dataset dfew --data DFEW_ROOT --fold 1 --out eval/dfew_f1
  mmadfer evaluate --checkpoint runs/mine/final.safetensors --dataset csv --data test.csv --cost-matrix cost.csv \\
      --groups groups.csv --min-confidence 0.6 --price-per-hour 1.2 --report --out eval/mine
  mmadfer evaluate --checkpoint DFEW_set_1_best.pth --data DFEW_ROOT --out eval/f1 --backend openvino-int8   # CPU
  mmadfer evaluate --compare DFEW_set_1_best.pth runs/inhouse/final.safetensors --dataset folder \
      --data data/inhouse --fold 1 --class-map class_map.csv --out eval/before_after   # paired, on one split

On a CPU, --backend openvino-int8 (or onnx-int8) scores 3-4x faster than the fp32 default, converted once and
cached as for `mmadfer predict`; its metrics can differ from fp32's where a clip's top two classes are near-tied.
"""
from __future__ import annotations

import argparse
from typing import Any
import dataclasses
import json
import shlex
import sys
from pathlib import Path


def add_data_arguments(parser: argparse.ArgumentParser, backends: bool = True, required: bool = True) -> None:
    """The checkpoint, dataset and runtime options `evaluate` and `calibrate` share (``required=False``:
    `evaluate --compare` may take neither)."""
    parser.add_argument("--checkpoint", "-c", required=required,
                        help="an mmadfer .safetensors or a reference .pth checkpoint")
    parser.add_argument("--data", required=required, metavar="ROOT",
                        help="dataset root, or a CSV for --dataset csv")
    parser.add_argument("--dataset", default="dfew", choices=("dfew", "mafw", "folder", "csv"),
                        help="dataset kind (default dfew)")
    parser.add_argument("--fold", type=int, default=1, help="fold 1..5 (default 1; ignored for csv)")
    parser.add_argument("--split", default="test", help="split to score (default test)")
    parser.add_argument("--batch-size", type=int, default=16, help="clips per batch and process (default 16)")
    parser.add_argument("--num-workers", type=int, default=4, help="data loader workers (default 4)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 (default auto)")
    parser.add_argument("--precision", default="auto",
                        help="auto (bf16 on a GPU, fp32 on the CPU), fp32, bf16, fp8, fp8t")
    if backends:
        parser.add_argument("--backend", default="torch", choices=("torch", "onnx-int8", "openvino-int8"),
                            help="torch (default: exact fp32 on a CPU), or an int8 CPU runtime (much faster, "
                                 "converted once and cached in --cache-dir)")
        parser.add_argument("--cache-dir", metavar="DIR", help="where the int8 backends keep converted models "
                                                                "(default $MMADFER_CACHE or ~/.cache/mmadfer)")
    parser.add_argument("--vision-weights", metavar="PATH", help="encoder file for a checkpoint that holds only the "
                        "trained tensors (default: the path recorded in it)")
    parser.add_argument("--audio-weights", metavar="PATH", help="likewise for the audio encoder")
    parser.add_argument("--on-bad-sample", default="skip", choices=("skip", "raise"),
                        help="an undecodable clip is listed in metrics.json and left out (skip, default) or stops "
                             "the evaluation (raise)")
    parser.add_argument("--data-option", action="append", default=[], metavar="KEY=VALUE",
                        help="extra dataset option, e.g. audio_root=/data/wav (repeatable)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser, required=False)
    parser.add_argument("--compare", nargs=2, metavar=("BASE", "NEW"),
                        help="before and after, instead of --checkpoint: two checkpoints scored on the same split "
                             "(or evaluation folders / predictions.csv files of it); writes base/, new/, "
                             "comparison.json and report.html with paired intervals and McNemar's test")
    parser.add_argument("--class-map", metavar="CSV",
                        help="with --compare, when BASE has other classes than NEW: rows 'base,new' saying which "
                             "BASE class stands for which NEW class")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the reports")
    parser.add_argument("--cost-matrix", metavar="CSV", help="cost[true, predicted] of each kind of mistake")
    parser.add_argument("--groups", metavar="CSV", help="clip ids (first column) and group columns (gender, camera, "
                                                       "site, ...): metrics and gaps per group")
    parser.add_argument("--min-group-n", type=int, default=30, metavar="N",
                        help="groups with fewer clips are reported but never flagged (default 30)")
    parser.add_argument("--min-confidence", type=float, metavar="P",
                        help="also report the coverage and the accuracy on clips with confidence >= P")
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                        help="bootstrap resamples for the 95%% intervals (default 1000; 0: none)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    parser.add_argument("--price-per-hour", type=float, metavar="PRICE",
                        help="what an hour of this machine costs: adds the cost per hour of video")
    parser.add_argument("--currency", default="", help="label for --price-per-hour, e.g. EUR")
    parser.add_argument("--report", action="store_true", help="also write a self-contained report.html")


def data_options(items: list[str]) -> dict[str, Any]:
    from ..train.config import parse_value

    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--data-option {item!r} is not KEY=VALUE")
        options[key.strip()] = parse_value(value)
    return options


def load_model_and_dataset(args: argparse.Namespace, device, *, split: str | None = None):
    """The model (or int8 runner) of ``--checkpoint`` and the dataset split to score, from the shared options."""
    from ..checkpoints import load_model
    from ..data.datasets import build_dataset

    kw = {"vision": args.vision_weights, "audio": args.audio_weights} \
        if (args.vision_weights or args.audio_weights) else {}
    backend = getattr(args, "backend", "torch")
    if backend == "torch":
        model = load_model(args.checkpoint, map_location=device, **kw)
    elif kw or args.precision != "auto":
        raise ValueError(f"--vision-weights, --audio-weights and --precision apply to --backend torch, "
                         f"not {backend}")
    else:
        from ..runtime.load import load_runner

        model = load_runner(backend, args.checkpoint, cache_dir=args.cache_dir)
    dataset = build_dataset(args.dataset, args.data, fold=args.fold, split=split or args.split, train=False,
                            preprocess=model.cfg.preprocess, on_bad_sample=args.on_bad_sample,
                            **data_options(args.data_option))
    return model, dataset


def provenance(args: argparse.Namespace, model) -> dict[str, Any]:
    """Where the numbers come from: checkpoint hash, preprocessing profile, data, version and command line."""
    from .. import __version__
    from ..io import sha256_file

    argv = getattr(args, "_argv", None)
    return {"checkpoint": str(args.checkpoint), "checkpoint_sha256": sha256_file(args.checkpoint),
            "temperature": float(model.cfg.temperature),
            "preprocessing": json.dumps(dataclasses.asdict(model.cfg.preprocess), sort_keys=True),
            "dataset": f"{args.dataset} {args.data}" + ("" if args.dataset == "csv" else f" fold {args.fold}"),
            "split": args.split, "backend": getattr(args, "backend", "torch"), "mmadfer_version": __version__,
            "command": shlex.join(["mmadfer", *argv] if argv is not None else sys.argv)}


def run(args: argparse.Namespace) -> int:
    if args.compare:
        from ._compare import run_compare

        return run_compare(args)
    if not args.checkpoint or not args.data:
        print("mmadfer evaluate: --checkpoint and --data are required (or --compare BASE NEW)", file=sys.stderr)
        return 2
    from ..evaluation.cost import operating_cost
    from ..evaluation.report import write_report
    from ..evaluation.subgroups import read_groups
    from ..evaluation.accuracy import load_cost_matrix
    from ..evaluation.files import write_json
    from ..media.windows import window_spans
    from ..evaluation.scoring import evaluate_model
    from ._training import TrainingSession

    with TrainingSession("evaluate") as session:
        info = session.setup(args.device)
        if args.min_confidence is not None and not 0.0 <= args.min_confidence <= 1.0:
            raise ValueError(f"--min-confidence must be between 0 and 1, got {args.min_confidence}")
        if args.bootstrap < 0 or args.min_group_n < 1:
            raise ValueError("--bootstrap must be >= 0 and --min-group-n >= 1")
        groups = read_groups(args.groups) if args.groups else None
        model, dataset = load_model_and_dataset(args, info.device)
        cost = load_cost_matrix(args.cost_matrix, dataset.class_names) if args.cost_matrix else None
        metrics = evaluate_model(model, dataset, batch_size=args.batch_size, device=info.device, out_dir=args.out,
                                 cost_matrix=cost, num_workers=args.num_workers, precision=args.precision,
                                 n_resamples=args.bootstrap, seed=args.seed, min_confidence=args.min_confidence,
                                 groups=groups, min_group_n=args.min_group_n)
        if info.is_main:
            window = model.cfg.preprocess.window_s
            tp = metrics["throughput"]
            metrics["operating_cost"] = operating_cost(
                tp["clips"], tp["seconds"], windows_per_hour=len(window_spans(3600.0, window, window)),
                window_s=window, stride_s=window, device=tp["device"], backend=tp["backend"],
                batch_size=tp["batch_size"], price_per_hour=args.price_per_hour, currency=args.currency)
            metrics["provenance"] = provenance(args, model)
            out = Path(args.out)
            if args.report:
                metrics["files"]["report"] = str(out / "report.html")
                write_report(out / "report.html", metrics, provenance=metrics["provenance"])
            write_json(out / "metrics.json", metrics)
    if session.exit_code:
        return session.exit_code
    if info.is_main:
        ci = metrics.get("ci95", {})

        def fmt(k: str) -> str:
            lo, hi = ci.get(k) or (None, None)
            return f"{metrics[k]:.4f}" + ("" if lo is None else f" [{lo:.4f}, {hi:.4f}]")

        line = f"UAR {fmt('uar')}  WAR {fmt('war')}  macro-F1 {fmt('macro_f1')}  ECE {fmt('ece')}"
        line += f"  ({metrics['num_clips']} clips"
        line += f", {len(metrics['skipped'])} skipped)" if metrics["skipped"] else ")"
        if "expected_cost" in metrics:
            line += f"  expected cost per clip {metrics['expected_cost']:.4f}"
        print(line)
        if "selective" in metrics:
            s = metrics["selective"]
            acc = "n/a" if s["covered_accuracy"] is None else f"{s['covered_accuracy']:.4f}"
            print(f"confidence >= {s['min_confidence']:g}: coverage {s['coverage']:.4f}, accuracy {acc}")
        for column, rep in metrics.get("subgroups", {}).get("columns", {}).items():
            gap = rep["gaps"].get("uar", {})
            if gap.get("gap") is not None:
                print(f"UAR gap by {column}: {gap['best']} - {gap['worst']} = {gap['gap']:.4f} "
                      f"[{gap['ci95'][0]:.4f}, {gap['ci95'][1]:.4f}]{'  FLAGGED' if gap['flagged'] else ''}")
        print(f"reports: {args.out}")
    return 0
