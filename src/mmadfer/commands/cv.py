"""Cross-validate: train and evaluate folds 1-5 (or --folds), then summarise UAR and WAR per fold and mean ± std.

Each fold is a run folder OUT/fold<k> (see `mmadfer train`). Re-running the same command resumes: finished folds
are read back, an interrupted fold continues from its last state. The paper's protocol reports the final epoch of
each fold and averages UAR and WAR over the five folds. Writes OUT/summary.md, OUT/summary.csv and OUT/report.html
(self-contained: every fold's metrics beyond accuracy, with mean ± sd over folds; see `mmadfer evaluate --report`).

examples:
  mmadfer cv --config dfew --data DFEW_ROOT --out runs/dfew_cv \\
      --vision-weights mae_face_pretrain.pth --audio-weights audiomae_pretrained.pth
  mmadfer cv --config synthetic --data /tmp/synth --folds 1,3 --out runs/synth_cv
"""
from __future__ import annotations

import argparse
import sys
import dataclasses
from pathlib import Path
import json
import shlex


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..train.config import add_config_arguments

    add_config_arguments(parser, fold=False)
    parser.add_argument("--folds", default="1,2,3,4,5", help="comma-separated folds (default 1,2,3,4,5)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the fold runs and the summary")


def parse_folds(text: str) -> list[int]:
    try:
        folds = [int(f) for f in text.split(",") if f.strip()]
    except ValueError:
        raise ValueError(f"--folds must be comma-separated integers, got {text!r}") from None
    if not folds or len(set(folds)) != len(folds):
        raise ValueError(f"--folds must list distinct folds, got {text!r}")
    return folds


def run(args: argparse.Namespace) -> int:
    from ..train.config import config_from_args
    from ..train.engine import fit
    from ..train.summary import mean_std, write_table
    from ._training import TrainingSession

    out = Path(args.out)
    rows = []
    with TrainingSession("cv") as session:
        folds = parse_folds(args.folds)
        base = config_from_args(args)
        info = session.setup(base.train.device)
        for k in folds:
            cfg = dataclasses.replace(base.replace([f"data.fold={k}"]), run_dir=str(out / f"fold{k}"))
            print(f"== fold {k} ({folds.index(k) + 1}/{len(folds)}) ==", file=sys.stderr, flush=True)
            m = fit(cfg, resume="auto")["metrics"]
            rows.append({"fold": k, "uar": m.get("uar"), "war": m.get("war"), "expected_cost": m.get("expected_cost"),
                         "num_clips": m.get("num_clips"), "run_dir": str(out / f"fold{k}")})
    if session.exit_code:
        return session.exit_code
    if not info.is_main:
        return 0
    (u_mean, u_std), (w_mean, w_std) = mean_std([r["uar"] for r in rows]), mean_std([r["war"] for r in rows])
    columns = [("fold", "fold"), ("uar", "UAR"), ("war", "WAR"), ("num_clips", "test clips"), ("run_dir", "run")]
    write_table(rows, columns, md_path=out / "summary.md", csv_path=out / "summary.csv",
                title=f"Cross-validation: {len(rows)} fold(s) of {base.data.dataset}",
                notes=[f"Final-epoch checkpoint of each fold on its test split; mean ± sample std (ddof=1) over "
                       f"folds {', '.join(str(r['fold']) for r in rows)}."],
                footer=[{"fold": "mean ± std", "uar": f"{u_mean:.4f} ± {u_std:.4f}",
                         "war": f"{w_mean:.4f} ± {w_std:.4f}"}],
                csv_footer=[{"fold": "mean", "uar": u_mean, "war": w_mean}, {"fold": "std", "uar": u_std, "war": w_std}])
    _write_report(out, rows, base, args)
    print(f"UAR {u_mean:.4f} ± {u_std:.4f}  WAR {w_mean:.4f} ± {w_std:.4f}  over {len(rows)} fold(s)")
    print(f"summary: {out / 'summary.md'}  report: {out / 'report.html'}")
    return 0


def _write_report(out, rows: list[dict], base, args: argparse.Namespace) -> None:
    """OUT/report.html from each fold's eval/metrics.json (written by the fold's final evaluation)."""
    from .. import __version__
    from ..checkpoints import read_checkpoint_metadata
    from ..evaluation.report import write_cv_report
    from ..io import sha256_file
    from ..train.engine import FINAL_CHECKPOINT

    folds = []
    for r in rows:
        path = Path(r["run_dir"]) / "eval" / "metrics.json"
        if not path.is_file():  # a run finished by an older mmadfer
            print(f"{r['run_dir']}: no eval/metrics.json; fold {r['fold']} is left out of report.html", file=sys.stderr)
            continue
        folds.append({**json.loads(path.read_text()), "fold": r["fold"]})
    if not folds:
        return
    first = Path(rows[0]["run_dir"]) / FINAL_CHECKPOINT  # every fold has the same preprocessing profile
    argv = getattr(args, "_argv", None) or sys.argv[1:]
    provenance = {**{f"checkpoint fold {r['fold']} sha256": sha256_file(Path(r["run_dir"]) / FINAL_CHECKPOINT)
                     for r in rows},
                  "preprocessing": json.dumps(read_checkpoint_metadata(first)["config"]["preprocess"], sort_keys=True),
                  "dataset": f"{base.data.dataset} {base.data.root}", "split": "test of each fold",
                  "mmadfer_version": __version__, "command": shlex.join(["mmadfer", *argv])}
    write_cv_report(out / "report.html", folds, provenance=provenance)
