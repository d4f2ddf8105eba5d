"""Measure throughput, memory and numerical cost of each execution mode (GPU or CPU).

Prints a markdown table and writes JSON. Speed rows carry their numerical cost against fp32: the relative logit
error on the golden weights and inputs (with --golden) and the top-1 agreement over random clips.
Examples:
  mmadfer bench --device cuda --what infer,train,accuracy,loader --golden ../shared/golden --json gpu.json
  mmadfer bench --device cpu --what cpu --json cpu.json
"""
from __future__ import annotations

import argparse

from ._detectors import add_detector_argument, detector_name


def _csv(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..bench import BenchSettings

    d = BenchSettings()
    p.add_argument("--device", default=d.device, help=f"cuda or cpu (default {d.device})")
    p.add_argument("--size", choices=("reference", "tiny"), default=d.size, help="model size (default reference)")
    p.add_argument("--img-size", type=int, default=d.img_size)
    p.add_argument("--what", type=_csv, default=d.what,
                   help="comma list of: infer, train, accuracy, cpu, loader, predict (end to end on a 720p video: "
                        "video seconds per wall second, time per stage; faces detected by --detector), faces "
                        "(--detector against the reference MTCNN on a 720p moving face: box IoU, lost windows, "
                        "time) (default infer,train,accuracy)")
    p.add_argument("--infer-modes", type=_csv, default=d.infer_modes,
                   help="PRECISION[+FLAG]@BATCH, comma list; FLAG: compile, cudagraphs (reduce-overhead), "
                        "autotune (max-autotune-no-cudagraphs), max (max-autotune) or regional (each repeated "
                        "layer compiled on its own)")
    p.add_argument("--train-modes", type=_csv, default=d.train_modes, help="as --infer-modes")
    p.add_argument("--accuracy-modes", type=_csv, default=d.accuracy_modes)
    p.add_argument("--cpu-modes", type=_csv, default=d.cpu_modes)
    p.add_argument("--steps", type=int, default=d.steps, help="timed iterations per mode (median reported)")
    p.add_argument("--warmup", type=int, default=d.warmup)
    p.add_argument("--agreement-clips", type=int, default=d.agreement_clips)
    p.add_argument("--golden", default=None, help="folder with official_b2_224.{json,npz} for the golden logit error")
    p.add_argument("--data", default=None, help="DFEW-layout root for the loader benchmark (synthesised if absent)")
    p.add_argument("--workers", type=int, default=d.workers)
    p.add_argument("--loader-batches", type=int, default=d.loader_batches)
    p.add_argument("--video", default=None,
                   help="predict: time this video instead of the generated 1280x720 H.264 face video with audio")
    p.add_argument("--video-seconds", type=float, default=d.video_seconds, help="predict: generated video length")
    p.add_argument("--predict-workers", type=int, default=None,
                   help="predict: workers of the pipelined run (default: spare cores, up to 8)")
    p.add_argument("--predict-copies", type=int, default=d.predict_copies,
                   help="predict: copies of the video in the pipelined run (an archive: one worker per video)")
    p.add_argument("--predict-precision", default=d.predict_precision, help="predict: model precision")
    p.add_argument("--detect-max-side", type=int, default=None,
                   help="predict: detect faces on frames downscaled to this long side (default: full resolution)")
    add_detector_argument(p, default="mtcnn")
    p.add_argument("--faces-stride", type=float, default=1.0,
                   help="faces: window stride in seconds of the detector comparison (default 1)")
    p.add_argument("--json", default=None, help="write the results here")


def run(args: argparse.Namespace) -> int:
    from ..bench import BenchSettings, format_markdown, run_benchmarks, write_json

    s = BenchSettings(device=args.device, size=args.size, img_size=args.img_size, what=args.what,
                      infer_modes=args.infer_modes, train_modes=args.train_modes, accuracy_modes=args.accuracy_modes,
                      cpu_modes=args.cpu_modes, steps=args.steps, warmup=args.warmup,
                      agreement_clips=args.agreement_clips, golden=args.golden, data=args.data, workers=args.workers,
                      loader_batches=args.loader_batches, video=args.video, video_seconds=args.video_seconds,
                      predict_workers=args.predict_workers, predict_copies=args.predict_copies,
                      predict_precision=args.predict_precision)
    result = run_benchmarks(s)
    if "predict" in s.what:
        from ..predict.benchmark import bench_predict

        try:
            result["rows"] += bench_predict(s.size, s.device, seconds=s.video_seconds, workers=s.predict_workers,
                                            video=s.video, precision=s.predict_precision, copies=s.predict_copies,
                                            detect_max_side=args.detect_max_side, detector=detector_name(args))
        except Exception as e:  # reported like any failing mode
            result["rows"].append({"kind": "predict", "mode": "", "error": f"{type(e).__name__}: {e}"})
    if "faces" in s.what:
        from ..predict.face_benchmark import bench_faces

        try:
            result["rows"].append(bench_faces(detector_name(args), seconds=s.video_seconds, stride_s=args.faces_stride,
                                              video=s.video))
        except Exception as e:  # reported like any failing mode
            result["rows"].append({"kind": "faces", "mode": "", "error": f"{type(e).__name__}: {e}"})
    print(format_markdown(result))
    if args.json:
        write_json(result, args.json)
    return 1 if any("error" in r for r in result["rows"]) else 0
