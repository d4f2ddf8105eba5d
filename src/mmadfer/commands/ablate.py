"""Ablate: train the paper's model variants on one dataset and fold and compare them in one table.

Variants (model switches): full, no_prompts (prompt_mode=none), static_prompts (prompt_mode=static), no_fusion
(fusion=false), mean_temporal (temporal=mean), video_only (modality=video), audio_only (modality=audio). Each is a
run folder OUT/<variant>; re-running resumes. Writes OUT/ablation.md and OUT/ablation.csv (UAR, WAR, trainable
parameters).

examples:
  mmadfer ablate --config dfew --data DFEW_ROOT --fold 1 --out runs/ablate \\
      --vision-weights mae_face_pretrain.pth --audio-weights audiomae_pretrained.pth
  mmadfer ablate --config synthetic --data /tmp/synth --fold 1 --out runs/synth_ablate --variants full,video_only
"""
from __future__ import annotations

import argparse
import sys
import dataclasses
from pathlib import Path

#: name -> (overrides, what changes)
VARIANTS: dict[str, tuple[tuple[str, ...], str]] = {
    "full": ((), "MMA-DFER as in the paper"),
    "no_prompts": (("model.prompt_mode=none",), "no prompt tokens"),
    "static_prompts": (("model.prompt_mode=static",), "prompts without progressive updates"),
    "no_fusion": (("model.fusion=false",), "no fusion bottleneck between the encoders"),
    "mean_temporal": (("model.temporal=mean",), "mean over frames instead of the temporal transformer"),
    "video_only": (("model.modality=video",), "faces only"),
    "audio_only": (("model.modality=audio",), "voice only"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..train.config import add_config_arguments

    add_config_arguments(parser)
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated subset of {', '.join(VARIANTS)} (default: all)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the variant runs and the table")


def run(args: argparse.Namespace) -> int:
    from ..train.config import config_from_args
    from ..train.engine import fit
    from ..train.summary import format_cell, write_table
    from ._training import TrainingSession

    out = Path(args.out)
    rows = []
    with TrainingSession("ablate") as session:
        names = [v.strip() for v in args.variants.split(",") if v.strip()]
        unknown = [v for v in names if v not in VARIANTS]
        if unknown or not names:
            raise ValueError(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
        base = config_from_args(args)
        info = session.setup(base.train.device)
        for i, name in enumerate(names):
            overrides, description = VARIANTS[name]
            cfg = dataclasses.replace(base.replace(overrides), run_dir=str(out / name))
            print(f"== {name} ({i + 1}/{len(names)}): {description} ==", file=sys.stderr, flush=True)
            m = fit(cfg, resume="auto")["metrics"]
            rows.append({"variant": name, "description": description, "uar": m.get("uar"), "war": m.get("war"),
                         "trainable": m.get("training", {}).get("trainable_parameters"),
                         "run_dir": str(out / name)})
    if session.exit_code:
        return session.exit_code
    if not info.is_main:
        return 0
    columns = [("variant", "variant"), ("description", "what changes"), ("uar", "UAR"), ("war", "WAR"),
               ("trainable", "trainable parameters"), ("run_dir", "run")]
    fold = f", fold {base.data.fold}" if base.data.dataset != "csv" else ""
    write_table(rows, columns, md_path=out / "ablation.md", csv_path=out / "ablation.csv",
                title=f"Ablation on {base.data.dataset}{fold}",
                notes=["Final-epoch checkpoint of each variant on the test split; same recipe and seed for all."])
    for r in rows:
        print(f"{r['variant']:<15} UAR {format_cell(r['uar'])}  WAR {format_cell(r['war'])}  "
              f"trainable {format_cell(r['trainable'])}")
    print(f"table: {out / 'ablation.md'}")
    return 0
