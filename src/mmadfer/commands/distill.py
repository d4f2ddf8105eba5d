"""Distil a checkpoint into a small, fast student on your own unlabelled videos, and report how closely it agrees.

Every window of every video is cut as `mmadfer predict` cuts it; the teacher scores each once and the result is
cached under --work (default: <out>.distill/), so a killed run resumes where it stopped, and torchrun shares the
teacher pass out between processes like predict. The student (a preset: vit-tiny, vit-small, mobilenet) then
learns the teacher's softened outputs on the training videos; the held-out videos (--heldout, split by video) give
the report: top-1 agreement, Cohen's kappa, per-class agreement, mean KL, agreement of the smoothed timelines, the
speed of both on this machine and, with --labels (a video,label CSV), the UAR/WAR of both.

Licence: the student is trained on the teacher's outputs; it carries the same terms as the teacher checkpoint.

  mmadfer distill --teacher DFEW_set_1_best.pth --videos footage/ --student vit-tiny --out student.safetensors
  mmadfer distill --teacher DFEW_set_1_best.pth --videos footage/ --detector mtcnn-fast --out student.safetensors
  torchrun --standalone --nproc_per_node 4 -m mmadfer.cli distill --teacher ... --videos footage/ --out s.safetensors
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import one_line
from ..runtime.backends import BACKENDS
from ._detectors import add_detector_argument, detector_name
from ._inputs import discover


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--teacher", required=True, metavar="CK",
                   help="the teacher: mmadfer .safetensors, the reference's released .pth, or an exported model")
    p.add_argument("--videos", required=True, nargs="+", metavar="VIDEO_OR_DIR",
                   help="unlabelled videos and/or folders (recursive)")
    p.add_argument("--student", default="vit-tiny", help="student preset (mmadfer.config.STUDENTS; default %(default)s)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a field of the student's ModelConfig, e.g. --set img_size=64 (repeatable)")
    p.add_argument("--out", required=True, metavar="PATH", help="the student checkpoint (.safetensors)")
    p.add_argument("--work", metavar="DIR", help="cache, training states and report (default: <out>.distill/)")
    p.add_argument("--labels", metavar="CSV", help="video,label CSV: also report held-out UAR/WAR of both")
    p.add_argument("--epochs", type=int, default=30, help="student epochs (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=16, help="student batch (default %(default)s)")
    p.add_argument("--lr", type=float, default=1e-3, help="student learning rate (default %(default)s)")
    p.add_argument("--temperature", type=float, default=2.0, help="distillation temperature (default %(default)s)")
    p.add_argument("--features", type=float, default=0.0, metavar="WEIGHT",
                   help="> 0: also match the teacher's pooled clip feature with this weight (torch teacher only)")
    p.add_argument("--augment", action="store_true", help="augment the student's frames (flip, brightness)")
    p.add_argument("--heldout", type=float, default=0.2, help="fraction of videos held out (default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", choices=BACKENDS, default="auto", help="the teacher's backend (default %(default)s)")
    add_detector_argument(p)
    p.add_argument("--device", help="cuda, cpu (default: cuda if available)")


def run(args: argparse.Namespace) -> int:
    from ..distill.run import DistillSettings, distill, student_config
    from ..distill.soft_targets import teacher_pass
    from ..errors import MmadferError
    from ..media.probe import probe_duration
    from ..predict.recognizer import Recognizer
    from .. import distributed as D

    out = Path(args.out)
    if out.suffix != ".safetensors":
        print(f"error: --out {out}: the student is written as a .safetensors checkpoint", file=sys.stderr)
        return 2
    videos, bad = discover(args.videos)
    for item, reason in bad:
        print(f"{item}: {reason}", file=sys.stderr)
    paths = sorted(str(v) for v, _ in videos)
    if not paths:
        print("error: --videos: no video found", file=sys.stderr)
        return 2
    from ..train.config import parse_value

    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"error: --set {item}: expected FIELD=VALUE", file=sys.stderr)
            return 2
        overrides[key.strip()] = parse_value(value)
    settings = DistillSettings(student=args.student, student_overrides=overrides, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                               temperature=args.temperature, feature_weight=args.features, augment=args.augment,
                               heldout=args.heldout, seed=args.seed)
    work = Path(args.work) if args.work else out.with_name(out.name + ".distill")
    info = D.setup("cpu", backend="gloo", timeout_min=7 * 24 * 60)  # ranks meet once, after the teacher pass
    try:
        backend = "torch" if args.features and args.backend == "auto" else args.backend
        teacher = Recognizer.from_checkpoint(args.teacher, device=args.device, backend=backend, multi_face=False,
                                             detector=detector_name(args))
        cfg = student_config(args.student, teacher.cfg, **overrides)
        durations = [probe_duration(p) for p in paths] if info.distributed else None
        result = teacher_pass(teacher, args.teacher, paths, cfg.preprocess, work / "cache",
                              features=args.features > 0, rank=info.rank, world_size=info.world_size,
                              durations=durations)
        for line in result["failed"]:
            print(line, file=sys.stderr)
        D.barrier()
        if not info.is_main:
            return 0
        rep = distill(teacher, args.teacher, paths, out, work, settings, labels=args.labels)
    except (MmadferError, ValueError) as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 1
    finally:
        D.cleanup()
    from ..distill.run import report_text

    print(report_text(rep), end="")
    print(f"student: {out}\nreport: {work / 'report.json'} ({work / 'report.txt'}, {work / 'heldout.csv'})")
    return 1 if result["failed"] or bad else 0
