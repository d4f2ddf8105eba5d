"""Write a small synthetic audio-visual dataset whose labels need both face and voice (for tests and demos).

Four classes: a calm or animated cartoon face (visual bit) x a low or high voice (audio bit). A video-only or
audio-only model cannot beat 50 % accuracy; a model that fuses both can reach 100 %. Output, in the DFEW layout
that `mmadfer train --dataset dfew` reads:

  OUT/clips/<id>/00001.jpg ...   OUT/clips/<id>.wav   OUT/annotations/set_<k>_{train,test}.txt   OUT/classes.txt
  OUT/raw/<id>.mp4 + OUT/raw.csv (video,label), for `--dataset csv` and `mmadfer prepare` (skip with --no-raw)

Re-running the same command keeps finished clips and writes the missing ones.

example:
  mmadfer synth /tmp/synth --clips 200 --size 64
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="output folder (created)")
    parser.add_argument("--clips", type=int, default=100, help="number of clips (balanced over 4 classes; default 100)")
    parser.add_argument("--frames", type=int, default=24, help="frames per clip at 25 fps (default 24)")
    parser.add_argument("--size", type=int, default=112, help="frame width and height in pixels (default 112)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds to write (default 5; 1 = all.txt)")
    parser.add_argument("--no-raw", action="store_true", help="do not write the raw mp4 files and raw.csv")


def run(args: argparse.Namespace) -> int:
    from ..data.synthetic import write_synthetic_dataset

    stats = write_synthetic_dataset(args.out, args.clips, num_frames=args.frames, size=args.size, seed=args.seed,
                                    folds=args.folds, raw=not args.no_raw, progress=True)
    print(f"synth: {args.clips} clips in {args.out} ({stats['written']} written, {stats['skipped']} already there)")
    return 0
