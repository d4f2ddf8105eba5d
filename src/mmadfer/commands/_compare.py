"""`mmadfer evaluate --compare BASE NEW`: two models on the same held-out split, compared clip by clip.

BASE and NEW are each a checkpoint (scored here on --data, like `evaluate`), an evaluation folder holding
predictions.csv, or a predictions.csv. A checkpoint whose classes are the dataset's gets the whole evaluation in
OUT/base/ or OUT/new/ (metrics.json, charts); one with other classes (a released DFEW model against the team's own
classes) gets its predictions.csv with its own p_<class> columns, which --class-map maps. The paired statistics
come from mmadfer.evaluation.compare; OUT/comparison.json and OUT/report.html hold them. When the dataset folder
has agreement.json (two annotators, from `prepare --labels`), their Cohen's kappa goes into the report too.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any


def _predictions_file(spec: str) -> Path | None:
    p = Path(spec)
    if p.is_dir() and (p / "predictions.csv").is_file():
        return p / "predictions.csv"
    if p.is_file() and p.suffix.lower() == ".csv":
        return p
    return None


def _score(spec: str, side: str, args: argparse.Namespace, device) -> tuple[Any, dict[str, Any] | None]:
    """The predictions table of BASE or NEW and its throughput (None when read from a file)."""
    import pandas as pd

    from ..checkpoints import load_model
    from ..data.datasets import build_dataset
    from ..evaluation.scoring import evaluate_model, predict_table
    from .evaluate import data_options

    found = _predictions_file(spec)
    if found is not None:
        return pd.read_csv(found, keep_default_na=False), None
    if not Path(spec).is_file():
        raise FileNotFoundError(f"--compare {side}: {spec} is neither a checkpoint nor an evaluation folder with "
                                "predictions.csv")
    if not args.data:
        raise ValueError(f"--compare {side}: {spec} is a checkpoint; --data (and --dataset) name the split to score")
    model = load_model(spec, map_location=device)
    dataset = build_dataset(args.dataset, args.data, fold=args.fold, split=args.split, train=False,
                            preprocess=model.cfg.preprocess, on_bad_sample=args.on_bad_sample,
                            **data_options(args.data_option))
    out = Path(args.out) / side
    same = [n.lower() for n in model.cfg.labels] == [n.lower() for n in dataset.class_names]
    kw = dict(batch_size=args.batch_size, device=device, num_workers=args.num_workers, precision=args.precision)
    if same:
        metrics = evaluate_model(model, dataset, out_dir=out, n_resamples=args.bootstrap, seed=args.seed, **kw)
        return pd.read_csv(out / "predictions.csv", keep_default_na=False), metrics["throughput"]
    from ..io import atomic_write

    table, throughput = predict_table(model, dataset, **kw)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / "predictions.csv", "w", encoding="utf-8", newline="") as f:
        table.to_csv(f, index=False, float_format="%.6g")
    return pd.read_csv(out / "predictions.csv", keep_default_na=False), throughput


def run_compare(args: argparse.Namespace) -> int:
    from .. import __version__
    from ..evaluation.compare import compare_predictions, read_class_map, table_classes
    from ..evaluation.report import write_compare_report
    from ..evaluation.files import write_json
    from ..distributed import resolve_device

    base_spec, new_spec = args.compare
    try:
        device = resolve_device(args.device)
        base, base_tp = _score(base_spec, "base", args, device)
        new, new_tp = _score(new_spec, "new", args, device)
        mapping = None
        if args.class_map:
            mapping = read_class_map(args.class_map, table_classes(base), table_classes(new))
        result = compare_predictions(base, new, class_map=mapping, n_resamples=args.bootstrap, seed=args.seed)
    except (ValueError, FileNotFoundError, OSError) as e:
        print(f"mmadfer evaluate --compare: {e}", file=sys.stderr)
        return 2
    if result["comparable"]:
        for side, tp in (("base", base_tp), ("new", new_tp)):
            if tp is not None:
                result[side]["throughput"] = tp
    agreement = None
    if args.data and (Path(args.data) / "agreement.json").is_file():
        agreement = json.loads((Path(args.data) / "agreement.json").read_text())
    out = Path(args.out)
    argv = getattr(args, "_argv", None)
    provenance = {"base": base_spec, "new": new_spec, "class_map": args.class_map or "",
                  "dataset": f"{args.dataset} {args.data} fold {args.fold} split {args.split}" if args.data else "",
                  "mmadfer_version": __version__,
                  "command": shlex.join(["mmadfer", *argv] if argv is not None else sys.argv)}
    result["provenance"] = provenance
    if agreement:
        result["agreement"] = agreement
    write_json(out / "comparison.json", result)
    write_compare_report(out / "report.html", result, provenance=provenance, agreement=agreement)
    if not result["comparable"]:
        print(result["reason"])
    else:
        d, mc = result["difference"], result["mcnemar"]

        def fmt(k: str) -> str:
            lo, hi = d[k]["ci95"]
            ci = "" if lo is None else f" [{lo:+.4f}, {hi:+.4f}]"
            return f"{result['base'][k]:.4f} -> {result['new'][k]:.4f} ({d[k]['value']:+.4f}{ci})"

        print(f"UAR {fmt('uar')}  WAR {fmt('war')}  on {result['clips']} clips; McNemar ({mc['method']}): "
              f"{mc['new_only']} only new right, {mc['base_only']} only base right, p = {mc['p_value']:.4g}")
    print(f"report: {out / 'report.html'}")
    return 0
