"""Recognise expressions in videos: a timeline (CSV or JSON) per video, optionally a chart and an anonymised copy.

Give files and/or folders (searched recursively for .mp4 .mov .mkv .avi .webm). Each video gets one row per window:
start_s, end_s, label, confidence, p_<class> for every class, face_coverage, has_audio, box_x0..box_y1 (and track_id
when several faces are in view). The label is the top class, 'no_face' (and no confidence) when a face was found in
fewer than --min-face-coverage of the window's frames, 'uncertain' below --min-confidence; the p_<class> columns are
always the model's probabilities. The default window is the model's own 5.12 s (16 frames + 512 audio frames); the default stride
is one window.

Outputs go to --output: a folder (default: the current one), mirroring the input folders, or a file name when there is
one video. A video that cannot be read gets one line on stderr and the others go on; the exit status is 1 if any
failed. --skip-existing resumes an interrupted batch: an output that exists and reads back complete is kept, and
only the missing or incomplete ones are made (a video is predicted again when any of its outputs is missing). Every
output is checked before the first video is decoded: an output that is an input (under any name) is refused, an
existing file is replaced only with --overwrite (or, incomplete, with --skip-existing), and every output folder must
be writable; hidden temporaries a killed run left beside the outputs are removed. Decoding and
face detection run in --workers processes while the model scores batches (the timelines are the same as one
process's, bit for bit).

An archive over many processes, GPUs or machines: launch the same command with torchrun (or srun, see README). Each
process takes a share of the videos balanced by duration and writes their outputs; OUTPUT/index.csv lists every
video's status (done / failed / skipped), output, rank, duration and error. A rerun with --skip-existing does only
what is missing.

Privacy: everything runs locally and in memory. Nothing is uploaded, and no frame, face crop or audio is written
unless asked (--save-faces, --anonymize).

  mmadfer predict interview.mp4 --checkpoint dfew_fold1.pth --plot
  mmadfer predict videos/ --checkpoint model.safetensors --output results/ --format json --skip-existing
  mmadfer predict talk.mp4 --checkpoint model.safetensors --anonymize talk_anon.mp4
  mmadfer predict /dev/video0 --checkpoint model.safetensors --realtime --stride 1
  torchrun --standalone --nproc_per_node 8 -m mmadfer.cli predict archive/ -c model.safetensors -o out/ --skip-existing
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..config import DEFAULT_MIN_FACE_COVERAGE
from ..errors import one_line
from ..runtime.backends import BACKENDS
from ..text import terminal_text
from ._detectors import add_detector_argument, detector_name
from ._inputs import discover

TABLE_FORMATS = ("csv", "json")
SUMMARY = "summary.csv"  # over all videos of a run with several, in the output folder
_CONVERSION_TIME = {"onnx-int8": "30 s", "openvino-int8": "2 min"}
_STARTED = time.time()  # temporaries older than this process are stale: their writer is gone


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="VIDEO_OR_DIR",
                   help="video files and/or folders (recursive); with --realtime: one file, camera or stream URL")
    p.add_argument("--checkpoint", "-c", required=True,
                   help="mmadfer .safetensors, the reference's released .pth, or an exported .onnx or OpenVINO .xml")
    p.add_argument("--format", choices=TABLE_FORMATS, default="csv", help="timeline format (default %(default)s)")
    p.add_argument("--output", "-o", metavar="PATH_OR_DIR",
                   help="output folder (default: current folder), or a .csv/.json file for a single video")
    p.add_argument("--plot", action="store_true", help="also draw each timeline as a PNG chart beside it")
    p.add_argument("--window", type=float, metavar="S", help="window length in seconds (default: the model's, 5.12)")
    p.add_argument("--stride", type=float, metavar="S",
                   help="seconds between window starts (default: one window; 1 s with --realtime)")
    p.add_argument("--skip-existing", action="store_true",
                   help="resume: keep the outputs that exist and are complete (checked by reading them back), make "
                        "the missing or incomplete ones")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing output files (never an input: an output that is an input is refused)")
    p.add_argument("--save-faces", metavar="DIR", help="write the face crops the model saw (one image per window)")
    p.add_argument("--anonymize", metavar="VIDEO_OUT",
                   help="write a copy with faces pixelated and the label drawn (a folder when there are several "
                        "videos); frames where no face is found are pixelated whole")
    p.add_argument("--keep-audio", action="store_true", help="with --anonymize: keep the audio track (voices identify)")
    p.add_argument("--realtime", action="store_true",
                   help="rolling-buffer mode on one file, camera (/dev/video0) or stream URL: a prediction every "
                        "stride, with its latency")
    p.add_argument("--max-windows", type=int, metavar="N", help="with --realtime: stop after N predictions")
    p.add_argument("--pace", action="store_true", help="with --realtime on a file: replay it at its own speed")
    p.add_argument("--device", help="cuda, cuda:1, cpu (default: cuda if available)")
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="auto (default): the file's own runtime for .onnx and .xml files; on a CPU, the fastest on "
                        "this machine of torch and the installed int8 paths (openvino-int8, onnx-int8) whose top-1 "
                        "agreement with PyTorch on held-out clips is at least 99%%, measured once and cached per "
                        "checkpoint and CPU (a job too short to repay the conversion runs in torch). A PyTorch "
                        "checkpoint is converted once and kept in --cache-dir")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="where the int8 backends keep converted models (default $MMADFER_CACHE or ~/.cache/mmadfer)")
    p.add_argument("--precision", help="torch backend arithmetic: fp32, bf16 or an fp8 mode of mmadfer.accel "
                                       "(default: bf16 on a GPU and on CPUs with native bf16, else fp32)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (pays off on long GPU runs)")
    p.add_argument("--min-confidence", type=float, metavar="P",
                   help="label a window 'uncertain' when its top probability is below P (probabilities are kept)")
    p.add_argument("--min-face-coverage", type=float, metavar="F", default=DEFAULT_MIN_FACE_COVERAGE,
                   help="label a window 'no_face', with no confidence, when a face was found in fewer than this "
                        "fraction of its sampled frames (default %(default)s: at least 8 of 16; 0 turns it off; "
                        "probabilities are kept)")
    p.add_argument("--batch-size", type=int, default=8, help="windows per forward pass (default %(default)s)")
    add_detector_argument(p)
    p.add_argument("--workers", type=int, metavar="N",
                   help="processes that decode, detect faces and compute features while the model runs (default: "
                        "none for one short video, else one per spare core, up to 8)")
    p.add_argument("--report", action="store_true",
                   help="also write a one-page HTML report per video beside its timeline (summary, chart, every "
                        "window, how to read it; self-contained and offline, to forward as one file)")
    p.add_argument("--smooth", type=float, metavar="S",
                   help="add a label_smoothed column: the top class of the probabilities averaged over S seconds "
                        "around each window (no_face windows stay no_face); label, confidence and p_<class> are "
                        "unchanged. summary.csv and --report then use the smoothed labels")
    p.add_argument("--index", action="store_true",
                   help="also write OUTPUT/index.csv: every video's status, output, rank, duration and error "
                        "(always written under torchrun/srun, where the videos are shared out between processes)")


@dataclass
class Job:
    """One video and where its outputs go."""

    video: Path
    table: Path
    plot: Path | None = None
    anonymized: Path | None = None
    faces: Path | None = None
    report: Path | None = None

    def outputs(self) -> list[Path]:
        return [p for p in (self.table, self.plot, self.anonymized, self.report) if p is not None]

    def all_outputs(self) -> dict[Path, str]:
        """Every output, the ``--save-faces`` folder included, each with an empty reason (all to be written)."""
        return dict.fromkeys(self.outputs() + ([self.faces] if self.faces is not None else []), "")

    def missing(self) -> dict[Path, str]:
        """The outputs that are missing or incomplete, with why (:mod:`mmadfer.predict.complete`)."""
        from ..predict.complete import faces_problem, output_problem

        found = {p: output_problem(p) for p in self.outputs()}
        if self.faces is not None:
            found[self.faces] = faces_problem(self.faces, self.table)
        return {p: why for p, why in found.items() if why is not None}


def plan_jobs(videos: list[tuple[Path, Path]], args: argparse.Namespace) -> list[Job]:
    """Output paths for every video; names that would collide get a ``_2``, ``_3``… suffix."""
    out = Path(args.output) if args.output else Path(".")
    single_table = out.suffix.lower() in (".csv", ".json")
    anon = Path(args.anonymize) if args.anonymize else None
    single_anon = anon is not None and anon.suffix != ""
    if len(videos) > 1 and (single_table or single_anon):
        raise ValueError("with several videos, --output and --anonymize must be folders, not file names")
    taken = set() if single_table else {Path(SUMMARY).with_suffix("")}  # a video summary.mp4 gets summary_2.csv
    jobs = []
    for video, name in videos:
        stem = name.with_suffix("")
        n = 1
        while stem in taken:
            n += 1
            stem = name.with_suffix("").with_name(f"{name.stem}_{n}")
        taken.add(stem)
        table = out if single_table else out / stem.with_name(f"{stem.name}.{args.format}")
        jobs.append(Job(
            video=video, table=table,
            plot=table.with_suffix(".png") if args.plot else None,
            report=table.with_suffix(".html") if args.report else None,
            anonymized=(anon if single_anon else anon / stem.with_name(f"{stem.name}.mp4")) if anon else None,
            faces=Path(args.save_faces) / stem if args.save_faces else None,
        ))
    return jobs


def run(args: argparse.Namespace) -> int:
    from ..errors import CheckpointError
    from ..evaluation.selective import check_thresholds
    from ..predict.recognizer import Recognizer
    from ..runtime.load import conversion_target
    from ..runtime.select import ran_with
    from ._jobsize import job_windows

    if args.batch_size < 1:
        print("error: --batch-size must be at least 1", file=sys.stderr)
        return 2
    try:
        check_thresholds(args.min_confidence, args.min_face_coverage)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for flag in ("window", "stride", "smooth"):
        value = getattr(args, flag)
        if value is not None and value <= 0:
            print(f"error: --{flag} must be positive, got {value}", file=sys.stderr)
            return 2
    if not args.realtime:  # under torchrun/srun each process takes the GPU of its local rank
        from ..distributed import resolve_device, slurm_env

        slurm_env()
        args.device = str(resolve_device(args.device or "auto", int(os.environ.get("LOCAL_RANK", "0"))))
    try:
        target = None if args.backend == "auto" else conversion_target(args.backend, args.checkpoint, args.cache_dir)
        if target is not None and not target.is_file():
            print(f"converting {args.checkpoint} for the {args.backend} backend, once (about "
                  f"{_CONVERSION_TIME[args.backend]} for the reference model); kept in {target.parent}", file=sys.stderr)
        size = None if args.realtime or args.backend != "auto" else \
            job_windows([v for v, _ in discover(args.inputs)[0]], args.window, args.stride)
        rec = Recognizer.from_checkpoint(args.checkpoint, device=args.device, backend=args.backend,
                                         batch_size=args.batch_size, precision=args.precision, compile=args.compile,
                                         detector=detector_name(args), cache_dir=args.cache_dir,
                                         job_windows=size, min_confidence=args.min_confidence,
                                         min_face_coverage=args.min_face_coverage or None)
    except (CheckpointError, ValueError, ImportError) as e:
        print(f"error: cannot load the model: {one_line(e)}", file=sys.stderr)
        return 2
    print(f"mmadfer: predicting with {ran_with(rec.runner)}", file=sys.stderr)
    prov = rec.provenance
    if prov["synthetic"]:
        print(f"NOTE: {prov['note']}.", file=sys.stderr)
    else:
        print(f"mmadfer: model {prov['note']}", file=sys.stderr)
    if args.realtime:
        return _run_realtime(rec, args)
    return _run_batch(rec, args)


def _run_batch(rec, args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from ..media.probe import probe_duration
    from ..predict.report import write_video_report
    from ..predict.shard import merge_index, my_share, write_rank_index
    from ..predict.smoothing import add_smoothed_labels
    from ..predict.table import name_fields, write_table
    from ..timing import stage
    from .. import distributed as D

    if args.workers is not None and args.workers < 0:
        print("error: --workers must be 0 or more", file=sys.stderr)
        return 2
    videos, bad = discover(args.inputs)
    try:
        jobs = plan_jobs(videos, args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from ._outputs import name_too_long

    named = [(j, next(filter(None, map(name_too_long, j.all_outputs())), None)) for j in jobs]
    bad += [(str(j.video), why) for j, why in named if why]  # fails that video alone
    jobs = [j for j, why in named if not why]
    # Resume by output: with --skip-existing, only what is missing or incomplete is made.
    pending = [j.missing() if args.skip_existing else j.all_outputs() for j in jobs]
    if _unsafe_outputs(jobs, pending, args):  # every process checks the same outputs, so all stop together
        return 2
    # Under torchrun/srun: a gloo group for the final barrier only (no tensors cross ranks), waiting up to a week.
    info = D.setup("cpu", backend="gloo", timeout_min=7 * 24 * 60)
    out = Path(args.output) if args.output else Path(".")
    index = (args.index or info.distributed) and out.suffix.lower() not in (".csv", ".json")
    if info.is_main:
        for item, reason in bad:
            print(terminal_text(f"{item}: {reason}"), file=sys.stderr)
    durations = [probe_duration(j.video) for j in jobs] if len(jobs) > 1 else [0.0] * len(jobs)
    mine = my_share(durations, info.rank, info.world_size) if info.distributed else list(range(len(jobs)))
    rows: list[dict] = []

    def record(k: int, status: str, error: str = "", windows: int | str = "") -> None:
        rows.append({**name_fields(str(jobs[k].video), "video"), "status": status,
                     **name_fields(str(jobs[k].table), "output"), "rank": info.rank,
                     "duration_s": f"{durations[k]:.3f}", "windows": windows, "error": error})
        if index:
            write_rank_index(out, info.rank, rows)

    ok = skipped = 0
    failed = len(bad) if info.is_main else 0
    todo = []
    for k in mine:
        if not pending[k]:
            skipped += 1
            record(k, "done")
        else:
            todo.append(k)
            for p, why in pending[k].items():
                if why != "missing" and args.skip_existing:
                    print(terminal_text(f"{p}: incomplete ({why}); making it again"), file=sys.stderr)
    bar = tqdm(total=len(todo), desc="videos" if not info.distributed else f"rank {info.rank}", unit="video",
               disable=None if len(todo) > 1 else True)
    results = rec.predict_videos([jobs[k].video for k in todo], args.window, args.stride, workers=args.workers,
                                 save_faces=[jobs[k].faces if jobs[k].faces in pending[k] else None for k in todo],
                                 durations=[durations[k] for k in todo])
    for res in results:
        k = todo[res.index]
        job = jobs[k]
        try:
            if res.error is not None:
                raise res.error
            df = res.table
            if not len(df):
                raise ValueError("no windows: the video has no decodable frames")
            if args.smooth:
                add_smoothed_labels(df, args.smooth, min_confidence=rec.min_confidence)
            with stage("write"):
                if job.table in pending[k]:  # format from the suffix: --format, or that of an --output file name
                    write_table(df, job.table)
                if job.report in pending[k]:
                    write_video_report(df, job.report, provenance=rec.provenance,
                                       video_name=terminal_text(job.video.name))
            if job.plot in pending[k]:
                from ..predict.timeline import plot_timeline

                plot_timeline(df, job.plot)
            if job.anonymized in pending[k]:
                from ..predict.anonymize import anonymize_video

                anonymize_video(job.video, job.anonymized, df, detector=_detector(rec),
                                keep_audio=args.keep_audio, max_side=rec.max_side)
            ok += 1
            record(k, "done", windows=res.windows)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # one bad file never stops the batch: one line, then the next file
            failed += 1
            tqdm.write(one_line(e, job.video), file=sys.stderr)
            record(k, "failed", one_line(e, job.video), res.windows)
        bar.update(1)
    bar.close()
    summary = summary_path(jobs, args)
    if summary is not None and not info.distributed:
        _write_summary(summary, jobs, rec.labels)
    where = f"; outputs in {out.resolve()}" if ok else ""
    extra = f", {skipped} skipped (outputs exist)" if skipped else ""
    who = f"rank {info.rank}: " if info.distributed else ""
    print(f"{who}{ok} succeeded, {failed} failed{extra}{where}", file=sys.stderr)
    if index:
        D.barrier()
        if info.is_main:
            planned = [{**name_fields(str(j.video), "video"), **name_fields(str(j.table), "output"),
                        "outputs": [str(p) for p in j.outputs()],
                        "duration_s": f"{d:.3f}", "windows": ""} for j, d in zip(jobs, durations)]
            planned += [{**name_fields(item, "video"), "status": "failed", "output": "", "rank": "", "duration_s": "",
                         "windows": "", "error": reason} for item, reason in bad]
            path = merge_index(out, planned, info.world_size)
            print(f"index of all {len(planned)} videos: {path}", file=sys.stderr)
    if summary is not None and info.distributed and info.is_main:  # after the barrier: every rank's tables are there
        _write_summary(summary, jobs, rec.labels)
    D.cleanup()
    return 1 if failed else 0


def summary_path(jobs: list[Job], args: argparse.Namespace) -> Path | None:
    """Where ``summary.csv`` goes: the output folder of a run with several videos (None for one video)."""
    out = Path(args.output) if args.output else Path(".")
    return None if len(jobs) < 2 or out.suffix.lower() in (".csv", ".json") else out / SUMMARY


def _write_summary(path: Path, jobs: list[Job], labels) -> None:
    """``summary.csv`` over every video of the run whose timeline is in the output folder (this run's or, resumed,
    an earlier one's): :func:`mmadfer.predict.summary.summary_table`."""
    from ..predict.complete import output_problem
    from ..predict.summary import summary_table, write_summary
    from ..predict.table import read_table

    done = [(str(j.video), read_table(j.table)) for j in jobs if output_problem(j.table) is None]
    write_summary(summary_table(done, labels), path)
    print(f"mmadfer: summary of {len(done)} video(s) in {path}", file=sys.stderr)


def _unsafe_outputs(jobs: list[Job], pending: list[dict[Path, str]], args: argparse.Namespace) -> bool:
    """Check every output to be written (``pending``) before any video is processed (``commands/_outputs.py``);
    print the problems. With --skip-existing an incomplete output is replaced (never an input). Also removes what a
    killed earlier run left beside these outputs and in the face folders. ``summary.csv`` is one more output of the
    run, rewritten when it resumes (``--skip-existing``)."""
    from ._outputs import clean_stale_outputs, output_problems, unwritable_folders

    summary = summary_path(jobs, args)
    outputs = [p for j, todo in zip(jobs, pending) for p in todo if p != j.faces] \
        + ([summary] if summary and not args.skip_existing else [])
    problems = output_problems([j.video for j in jobs], outputs, overwrite=args.overwrite or args.skip_existing) \
        or unwritable_folders(outputs)
    for line in problems:
        print(terminal_text(f"error: {line}"), file=sys.stderr)
    if not problems:
        clean_stale_outputs([p for j in jobs for p in j.all_outputs()] + ([summary] if summary else []),
                            before=_STARTED)
    return bool(problems)


def _detector(rec):
    """The recogniser's face detector, or a fresh one when it runs without (faces must be found to hide them)."""
    if rec.detector is not None:
        return rec.detector
    from ..media.faces import FaceDetector

    return FaceDetector(rec.device)


def _run_realtime(rec, args: argparse.Namespace) -> int:
    import pandas as pd

    from ..errors import MediaError
    from ..predict.anonymize import caption
    from ..predict.realtime import run_realtime
    from ..predict.table import table_columns, write_table

    if len(args.inputs) != 1:
        print("error: --realtime takes exactly one source (file, camera or stream URL)", file=sys.stderr)
        return 2
    source = args.inputs[0]
    stride = args.stride or 1.0
    rows, latencies = [], []
    print(f"{'time':>8}  {'label, confidence':<17} latency   (window {args.window or rec.window_s:g} s, stride {stride:g} s; "
          "Ctrl-C stops)", flush=True)
    status = 0
    try:
        for row in run_realtime(rec, source, stride_s=stride, window_s=args.window, pace=args.pace,
                                max_windows=args.max_windows):
            rows.append(row)
            latencies.append(row["latency_ms"])
            face = f" face {row['track_id']}" if row.get("track_id", 0) > 0 else ""
            print(f"{row['end_s']:7.2f}s  {terminal_text(caption(row['label'], row['confidence'])):<17} "
                  f"{row['latency_ms']:6.0f} ms{face}", flush=True)
    except MediaError as e:
        print(one_line(e, source), file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        pass
    if latencies:
        skipped = rows[-1]["skipped"]
        print(f"{len(rows)} predictions; latency median {_pct(latencies, 50):.0f} ms, p95 {_pct(latencies, 95):.0f} ms"
              f"{f'; {skipped} windows skipped to keep up' if skipped else ''}", file=sys.stderr)
    if args.output and rows:
        out = Path(args.output)
        if out.suffix.lower() not in (".csv", ".json"):
            out = out / f"{Path(source).stem or 'stream'}.{args.format}"
        df = pd.DataFrame(rows, columns=table_columns(rec.labels, tracks=True) + ["latency_ms", "skipped"])
        df.attrs.update(video=os.fspath(source), model=rec.source, window_s=args.window or rec.window_s,
                        stride_s=stride, labels=list(rec.labels))
        write_table(df, out, out.suffix.lstrip("."))
        if args.plot:
            from ..predict.timeline import plot_timeline

            plot_timeline(df, out.with_suffix(".png"))
    return status


def _pct(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q))
