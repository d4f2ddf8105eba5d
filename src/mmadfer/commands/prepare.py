"""Turn raw videos into face-crop frame folders + WAVs (the layout the datasets and `mmadfer train` read).

Each video (files, or folders searched for .mp4 .mov .mkv .avi .webm) becomes ROOT/clips/<name>/00001.jpg ...
(MTCNN face crops, every frame, --size px) and ROOT/clips/<name>.wav (its audio at the native rate and channels).
Runs in parallel, shows progress, and can be interrupted: a re-run skips finished clips. Bad files never stop the
run; every input is listed in ROOT/prepare_report.csv (and .json), and the exit status is 1 if any failed.

With --labels (a CSV with columns video,label) it also writes ROOT/classes.txt and ROOT/annotations/: all.txt, or
set_<k>_{train,test}.txt with --folds K, so that `mmadfer train --dataset folder ROOT` can use them.

With --labels pointing at a labels file of time spans (video,video_sha256,track_id,start_s,end_s,label,annotator,
created: what the labelling writes; see mmadfer.data.labels) every span becomes one clip, ROOT/clips/<video>_t<track>_
<start ms>-<end ms>/, and the folds are split BY VIDEO (no video in both train and test), with set_<k>_val.txt (the
next fold's videos) for early stopping from 3 folds on. Spans whose video is missing or changed (SHA-256), that run
past the video's end, name a class outside --classes, or contradict each other are left out with one line each;
with two annotators on the same spans, ROOT/agreement.json holds Cohen's kappa per class and overall.

With --profile mafw-reference it reproduces the MMA-DFER authors' MAFW preprocessing instead, the crops their
released MAFW checkpoints expect: ROOT/clips_faces/<name>/0.jpg ... (every frame cropped with its own box: the union
of that frame's MTCNN boxes, squared), ROOT/clips_wav/<name>.wav (as `ffmpeg -i`: all channels, native rate, 16-bit)
and, from --annotations (their MAFW_set_<k>_<split>[_faces].txt files) or --labels, annotation files in their
format. See REPRODUCING.md.

examples:
  mmadfer prepare videos/ --out data/mine --labels labels.csv --folds 5 --workers 4
  mmadfer prepare footage/ --out data/inhouse --labels footage/labels.csv --folds 5 --classes neutral,confused,engaged
  mmadfer prepare crops/*.mp4 --out data/crops --no-faces     # videos that are face crops already
  mmadfer prepare videos/ --out data/mine --detector mtcnn-fast   # faster detection on long, large talking heads
  mmadfer prepare MAFW/data/clips --out data/mfaw --profile mafw-reference --annotations MMA-DFER/annotation/MAFW_*
"""
from __future__ import annotations

import argparse
import os
import sys

from ._detectors import add_detector_argument, detector_name


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..hardware import usable_cores

    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="video files or folders of videos")
    parser.add_argument("--out", required=True, metavar="ROOT", help="dataset folder to write (created)")
    parser.add_argument("--labels", metavar="CSV", help="CSV with columns video,label: also write annotations")
    parser.add_argument("--classes", metavar="A,B,...|FILE",
                        help="with a labels file of spans: the project's class names (comma-separated, or a "
                             "classes.txt); spans with other labels are reported and left out (default: the labels "
                             "found)")
    parser.add_argument("--folds", type=int, default=None,
                        help="with --labels: write K stratified cross-validation folds instead of all.txt")
    parser.add_argument("--workers", type=int, default=max(1, min(4, usable_cores() // 2)),
                        help="parallel processes (default: half the CPU cores, at most 4; 1 = no subprocesses)")
    parser.add_argument("--size", type=int, default=224, help="face crop size in pixels (default 224)")
    parser.add_argument("--face-crop", choices=("union", "track"), default="union",
                        help="union: one box per clip, as the reference (default); track: a smoothed box per frame")
    add_detector_argument(parser, default="mtcnn")
    parser.add_argument("--max-seconds", type=float, default=600.0,
                        help="fail videos longer than this, since a clip is decoded whole (default 600)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fold split (default 0)")
    parser.add_argument("--profile", choices=("default", "mafw-reference"), default="default",
                        help="default: mmadfer's layout; mafw-reference: the authors' MAFW crops, WAVs and annotation "
                             "files (--size and --face-crop do not apply)")
    parser.add_argument("--annotations", nargs="+", default=[], metavar="FILE",
                        help="with --profile mafw-reference: the authors' MAFW annotation files, rewritten for the "
                             "new crops into ROOT/annotations/ as their process_ann_mfaw.py did")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..data.annotations import read_classes
    from ..data.labels import is_label_store
    from ..data.prepare import prepare_spans, prepare_videos

    if args.labels and Path(args.labels).is_file() and is_label_store(args.labels) and args.profile == "default":
        classes = None
        if args.classes:
            classes = read_classes(args.classes) if Path(args.classes).is_file() else \
                tuple(c.strip() for c in args.classes.split(",") if c.strip())
        summary = prepare_spans(args.inputs, args.labels, args.out, class_names=classes, folds=args.folds,
                                workers=args.workers, size=args.size, face_crop=args.face_crop,
                                faces=not args.no_faces, max_seconds=args.max_seconds, seed=args.seed)
        for line in summary.problems:
            print(f"left out: {line}", file=sys.stderr)
        if summary.pairs:
            from ..evaluation.agreement import cohen_kappa
            from ..evaluation.files import write_json

            first, second = zip(*summary.pairs["labels"])
            a = cohen_kappa(first, second, sorted(set(first) | set(second)))
            a.update(first=summary.pairs["first"], second=summary.pairs["second"])
            write_json(Path(args.out) / "agreement.json", a)
            kappa = "undefined" if a["kappa"] is None else f"{a['kappa']:.3f}"
            print(f"agreement of {a['first']} and {a['second']} on {a['spans']} spans: Cohen's kappa {kappa} "
                  f"(per class in {os.path.join(args.out, 'agreement.json')})", file=sys.stderr)
        return _finish(args, summary) or (1 if summary.problems else 0)
    if args.classes:
        print("mmadfer prepare: --classes applies to a labels file of spans (--labels with start_s,end_s)",
              file=sys.stderr)
        return 2
    summary = prepare_videos(
        args.inputs, args.out, labels=args.labels, folds=args.folds, workers=args.workers, size=args.size,
        face_crop=args.face_crop, detector=detector_name(args), max_seconds=args.max_seconds, seed=args.seed,
        profile=args.profile, annotations=args.annotations,
    )
    return _finish(args, summary)


def _finish(args: argparse.Namespace, summary) -> int:
    for r in summary.failed:
        print(f"failed: {r.file}: {r.reason}", file=sys.stderr)
    if summary.unlabelled:
        print(f"warning: {len(summary.unlabelled)} videos have no label in {args.labels} and are left out of the "
              f"annotations (listed in prepare_report.json)", file=sys.stderr)
    if summary.label_error:
        print(f"error: {summary.label_error}", file=sys.stderr)
    if summary.annotation_files:
        print(f"annotations: {len(summary.annotation_files)} files in {os.path.join(args.out, 'annotations')}")
    print(summary.line() + f"; report: {os.path.join(args.out, 'prepare_report.csv')}")
    return 1 if summary.failed or summary.label_error else 0
