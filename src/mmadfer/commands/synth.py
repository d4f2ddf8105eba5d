"""Write a small synthetic audio-visual dataset whose labels need both face and voice (for tests and demos).

Four classes: a calm or animated cartoon face (visual bit) x a low or high voice (audio bit). A video-only or
audio-only model cannot beat 50 % accuracy; a model that fuses both can reach 100 %. Output, in the DFEW layout
that `mmadfer train --dataset dfew` reads:

  OUT/clips/<id>/00001.jpg ...   OUT/clips/<id>.wav   OUT/annotations/set_<k>_{train,test}.txt   OUT/classes.txt
  OUT/raw/<id>.mp4 + OUT/raw.csv (video,label), for `--dataset csv` and `mmadfer prepare` (skip with --no-raw)

Re-running the same command keeps finished clips and writes the missing ones.

With --task inhouse it writes a synthetic "in-house" task instead (mmadfer.data.inhouse): --videos videos of
--spans segments each under OUT/videos/, their labels as a labels file of spans (OUT/labels.csv, the format
`mmadfer prepare --labels` cuts into a dataset), three classes of its own (neutral, confused, engaged) and
OUT/class_map.csv relating the four synthetic classes to them (for `mmadfer evaluate --compare --class-map`).

examples:
  mmadfer synth /tmp/synth --clips 200 --size 64
  mmadfer synth /tmp/inhouse --task inhouse --videos 12 --spans 8 --second-annotator
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
    parser.add_argument("--task", choices=("synthetic", "inhouse"), default="synthetic",
                        help="synthetic: the 4-class clip dataset (default); inhouse: labelled videos of spans")
    parser.add_argument("--videos", type=int, default=8, help="inhouse: number of videos (default 8)")
    parser.add_argument("--spans", type=int, default=6, help="inhouse: labelled segments per video (default 6)")
    parser.add_argument("--second-annotator", action="store_true",
                        help="inhouse: a second annotator labels every span too, disagreeing on about 15%%")


def run(args: argparse.Namespace) -> int:
    from ..data.synthetic import write_synthetic_dataset

    if args.task == "inhouse":
        from ..data.inhouse import write_inhouse_task

        task = write_inhouse_task(args.out, args.videos, args.spans, segment_frames=args.frames, size=args.size,
                                  seed=args.seed, second_annotator=args.second_annotator)
        print(f"synth: {len(task['videos'])} in-house videos, {task['spans']} labelled spans in {task['labels']}; "
              f"class map {task['class_map']}")
        return 0

    stats = write_synthetic_dataset(args.out, args.clips, num_frames=args.frames, size=args.size, seed=args.seed,
                                    folds=args.folds, raw=not args.no_raw, progress=True)
    print(f"synth: {args.clips} clips in {args.out} ({stats['written']} written, {stats['skipped']} already there)")
    return 0
