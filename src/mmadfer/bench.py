"""Throughput, memory and numerical cost of every execution mode: what ``mmadfer bench`` runs.

Each speed row states its numerical cost beside it: the maximum relative logit error against fp32 on the golden
weights and inputs, and the top-1 agreement with fp32 over many random clips. Results print as a markdown table and
are written as JSON. These are measurements, not tests: nothing here asserts a speed.

Typical invocations (see BENCHMARKS.md for recorded numbers)::

    mmadfer bench --device cuda --what infer,train,accuracy,loader --json bench_gpu.json
    mmadfer bench --device cpu --what cpu --json bench_cpu.json          # torch fp32/bf16, ONNX Runtime fp32/int8
    mmadfer bench --size tiny --steps 1 --warmup 0                        # a smoke run (what the test does)
    mmadfer bench --device cpu --what predict --size reference            # end to end on a 720p h264 video
"""
from __future__ import annotations

import contextlib
import copy
import json
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from .accel import autocast, default_device, optimize_model
from .checkpoints import config_from_official_state_dict, convert_official_state_dict, strict_load
from .config import ModelConfig, PreprocessConfig
from .data.datasets import build_dataset, collate_clips
from .data.synthetic import rendered_inputs, write_synthetic_dataset
from .hardware import cpu_signature, usable_cores
from .io import atomic_write
from .model.mmadfer import MMADFER
from .runtime.load import load_runner
from .testing import golden_inputs, reference_state_dict

__all__ = ["BenchSettings", "run_benchmarks", "count_gflop", "format_markdown"]

REFERENCE = {  # the authors' implementation with random weights, as recorded in BENCHMARKS.md
    "train fp32 b8 (H200)": 28.5, "train bf16 b32 (H200)": 154.0, "infer fp32 b8 (H200)": 65.0,
    "infer bf16 b64 (H200)": 411.0, "cpu fp32 s/clip (2-core EPYC)": 3.43,
}


@dataclass
class BenchSettings:
    device: str = default_device()
    size: str = "reference"  # reference | tiny
    img_size: int = 224
    what: tuple[str, ...] = ("infer", "train", "accuracy")
    infer_modes: tuple[str, ...] = ("fp32@8", "bf16@64", "bf16+compile@64", "fp8+compile@64", "fp8+compile@128")
    train_modes: tuple[str, ...] = ("fp32@8", "bf16@32", "bf16+compile@32", "fp8+compile@32")
    accuracy_modes: tuple[str, ...] = ("bf16", "fp8")
    cpu_modes: tuple[str, ...] = ("torch-fp32", "torch-bf16", "onnx-fp32", "onnx-int8", "openvino-int8")
    steps: int = 20
    warmup: int = 3
    agreement_clips: int = 256
    golden: str | None = None
    data: str | None = None  # a DFEW-layout root for the loader benchmark (made with `mmadfer synth` if absent)
    workers: int = usable_cores()
    loader_batch: int = 32
    loader_batches: int = 40
    video: str | None = None  # predict: an existing video instead of the generated 720p one
    video_seconds: float = 20.0  # predict: length of the generated video
    predict_workers: int | None = None  # predict: workers of the pipelined run (default: spare cores, up to 8)
    predict_copies: int = 1  # predict: copies of the video in the pipelined run
    predict_precision: str = "fp32"


def _model_cfg(s: BenchSettings) -> ModelConfig:
    return ModelConfig.tiny(num_classes=7) if s.size == "tiny" else ModelConfig.reference(7, s.img_size)


#: ``+FLAG`` of a mode name -> ``torch.compile`` mode (``None``: the default mode).
COMPILE_FLAGS = {"compile": None, "cudagraphs": "reduce-overhead", "autotune": "max-autotune-no-cudagraphs",
                 "max": "max-autotune"}


def _parse_mode(mode: str) -> tuple[str, bool | str, str | None, int | None]:
    """``'bf16+compile@64'`` -> ('bf16', True, None, 64); ``'bf16+cudagraphs@8'`` -> ('bf16', True,
    'reduce-overhead', 8); ``'bf16+regional@32'`` -> ('bf16', 'regional', None, 32); ``'fp32@8'`` -> ('fp32',
    False, None, 8)."""
    name, _, bs = mode.partition("@")
    precision, _, flag = name.partition("+")
    if flag and flag not in COMPILE_FLAGS and flag != "regional":
        raise ValueError(f"mode {mode!r}: unknown flag {flag!r}; use one of {sorted([*COMPILE_FLAGS, 'regional'])}")
    compile = "regional" if flag == "regional" else bool(flag)
    return precision, compile, COMPILE_FLAGS.get(flag), int(bs) if bs else None


def _inputs(cfg: ModelConfig, batch: int, device: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    video = torch.randint(0, 256, (batch, cfg.num_frames, 3, cfg.img_size, cfg.img_size), dtype=torch.uint8, generator=g)
    audio = torch.randn(batch, 1, cfg.audio_frames, cfg.audio_mel_bins, generator=g)
    return video.to(device), audio.to(device)


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _timed(fn: Callable[[], Any], device: str, steps: int, warmup: int) -> float:
    """Median seconds per call over ``steps`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(max(steps, 1)):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


@contextlib.contextmanager
def _peak_memory(device: str, out: dict):
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    yield
    if cuda:
        out["peak_mem_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 2)


def count_gflop(cfg: ModelConfig, *, backward: bool = False) -> float:
    """GFLOP for one clip (forward, or forward + backward to the trainable parameters), counted on the meta device."""
    with torch.device("meta"):
        model = MMADFER(cfg)
        video = torch.empty(1, cfg.num_frames, 3, cfg.img_size, cfg.img_size)
        audio = torch.empty(1, 1, cfg.audio_frames, cfg.audio_mel_bins)
    counter = FlopCounterMode(display=False)
    with counter:
        out = model(video, audio)
        if backward:
            out.sum().backward()
    return counter.get_total_flops() / 1e9


def _calibration(cfg: ModelConfig, precision: str, device: str) -> list | None:
    """Rendered talking-face batches for static fp8 scales (``'fp8s'``), None for every other precision."""
    if precision != "fp8s":
        return None
    return [(v.to(device), a.to(device)) for v, a in rendered_inputs(cfg, 8, seed=4242)]


def bench_infer(s: BenchSettings, mode: str, base: MMADFER) -> dict:
    precision, compiled, compile_mode, batch = _parse_mode(mode)
    model = optimize_model(copy.deepcopy(base).eval(), device=s.device, precision=precision, compile=compiled,
                           compile_mode=compile_mode, calibration=_calibration(base.cfg, precision, s.device))
    video, audio = _inputs(base.cfg, batch or 8, s.device)
    row: dict[str, Any] = {"kind": "infer", "mode": mode, "batch": batch}

    def step():
        with torch.inference_mode(), autocast(s.device, precision):
            model(video, audio)

    with _peak_memory(s.device, row):
        t0 = time.perf_counter()
        step()  # includes compilation when compiled
        _sync(s.device)
        row["first_call_s"] = round(time.perf_counter() - t0, 2)
        sec = _timed(step, s.device, s.steps, s.warmup)
    row["clips_per_s"] = round(video.shape[0] / sec, 2)
    row["s_per_clip"] = round(sec / video.shape[0], 4)
    return row


def bench_train(s: BenchSettings, mode: str, base: MMADFER) -> dict:
    precision, compiled, compile_mode, batch = _parse_mode(mode)
    net = copy.deepcopy(base).train()
    params = [p for p in net.parameters() if p.requires_grad]
    model = optimize_model(net, device=s.device, precision=precision, compile=compiled, compile_mode=compile_mode)
    cuda = torch.device(s.device).type == "cuda"
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=1e-2, fused=cuda or None, foreach=None if cuda else True)
    video, audio = _inputs(base.cfg, batch or 8, s.device)
    labels = torch.arange(video.shape[0], device=s.device) % base.cfg.num_classes
    row: dict[str, Any] = {"kind": "train", "mode": mode, "batch": batch}

    def step():
        with autocast(s.device, precision):
            loss = F.cross_entropy(model(video, audio).float(), labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    with _peak_memory(s.device, row):
        t0 = time.perf_counter()
        step()
        _sync(s.device)
        row["first_call_s"] = round(time.perf_counter() - t0, 2)
        sec = _timed(step, s.device, s.steps, s.warmup)
    row["clips_per_s"] = round(video.shape[0] / sec, 2)
    return row


def _golden_model(golden: Path) -> tuple[MMADFER, dict[str, torch.Tensor]]:
    sd = convert_official_state_dict(reference_state_dict(golden=golden, check_sums=False))
    model = MMADFER(config_from_official_state_dict(sd))
    strict_load(model, sd, golden)
    return model.eval(), golden_inputs(golden)


def bench_accuracy(s: BenchSettings, precision: str, golden: Path | None, base: MMADFER) -> dict:
    """Numerical cost of ``precision`` against fp32: golden logits error and random-input top-1 agreement."""
    row: dict[str, Any] = {"kind": "accuracy", "mode": precision}
    if golden is not None and s.size == "reference":
        ref_model, g = _golden_model(golden)
        base = ref_model
        fast = optimize_model(copy.deepcopy(ref_model), device=s.device, precision=precision,
                              calibration=_calibration(ref_model.cfg, precision, s.device))
        with torch.inference_mode(), autocast(s.device, precision):
            out = fast(g["images"].to(s.device), g["audio"].to(s.device)).float().cpu()
        row["golden_max_rel_logit_err"] = float((out - g["logits"]).abs().max() / g["logits"].abs().max())
    ref = optimize_model(copy.deepcopy(base), device=s.device, precision="fp32")
    fast = optimize_model(copy.deepcopy(base), device=s.device, precision=precision,
                          calibration=_calibration(base.cfg, precision, s.device))
    agree = total = 0
    worst = 0.0
    batch = 16 if torch.device(s.device).type == "cuda" else 2
    for seed in range(0, s.agreement_clips, batch):
        video, audio = _inputs(base.cfg, batch, s.device, seed=1000 + seed)
        video = video.float().div(255)
        with torch.inference_mode():
            a = ref(video, audio).float()
            with autocast(s.device, precision):
                b = fast(video, audio).float()
        agree += int((a.argmax(-1) == b.argmax(-1)).sum())
        total += batch
        worst = max(worst, float((a - b).abs().max() / a.abs().max()))
    row.update(top1_agreement=round(agree / total, 4), clips=total, random_max_rel_logit_err=worst)
    return row


def _cpu_runners(model: MMADFER, modes: Sequence[str]) -> dict[str, Callable]:
    """One ``run(video, audio) -> logits`` per CPU path: torch fp32/bf16, ONNX Runtime fp32/int8 and OpenVINO int8,
    each built by :func:`mmadfer.runtime.load.load_runner` (conversions in memory or a temporary folder)."""
    backends = {"onnx-fp32": "onnx"}
    runners: dict[str, Callable] = {}
    for mode in modes:
        if mode.startswith("torch-"):
            runner = load_runner("torch", model, device="cpu", precision=mode.split("-")[1])
        else:
            runner = load_runner(backends.get(mode, mode), model, device="cpu")
        runners[mode] = lambda v, a, runner=runner: torch.as_tensor(runner(v, a)).float()
    return runners


def _agreement(outs: Sequence[torch.Tensor], refs: Sequence[torch.Tensor]) -> float:
    """Fraction of clips whose top-1 class matches the reference's."""
    return round(sum(int(o.argmax() == r.argmax()) for o, r in zip(outs, refs)) / len(refs), 4)


def _rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out - ref).abs().max() / ref.abs().max())


def bench_cpu_paths(s: BenchSettings, base: MMADFER, golden: Path | None = None) -> list[dict]:
    """One clip at a time on the CPU: torch fp32 and bf16, ONNX Runtime fp32 and dynamic int8, OpenVINO static int8.

    Each path is timed and compared with torch fp32 (top-1 agreement, max relative logit error) on random clips, on
    rendered talking faces (half as many; :func:`mmadfer.data.synthetic.rendered_inputs`, seeds that int8
    calibration does not use) and, with ``golden``, on the golden weights and inputs.
    """
    video, audio = _inputs(base.cfg, 1, "cpu")
    video = video.float().div(255)
    clips = [_inputs(base.cfg, 1, "cpu", seed=2000 + i) for i in range(max(2, s.agreement_clips))]
    clips = [(v.float().div(255), a) for v, a in clips]
    faces = rendered_inputs(base.cfg, max(1, len(clips) // 2), seed=777)
    with torch.inference_mode():
        ref_logits = [base(v, a) for v, a in clips]
        ref_faces = [base(v, a) for v, a in faces]
    golden_err: dict[str, float] = {}
    if golden is not None and s.size == "reference":
        model, g = _golden_model(golden)
        for mode, run in _cpu_runners(model, s.cpu_modes).items():
            golden_err[mode] = _rel_err(run(g["images"], g["audio"]), g["logits"])
        del model
    rows = []
    for mode, run in _cpu_runners(base, s.cpu_modes).items():
        sec = _timed(lambda: run(video, audio), "cpu", s.steps, s.warmup)
        outs = [run(v, a) for v, a in clips]
        face_outs = [run(v, a) for v, a in faces]
        row = {"kind": "cpu", "mode": mode, "batch": 1, "s_per_clip": round(sec, 3),
               "top1_agreement": _agreement(outs, ref_logits), "clips": len(clips),
               "random_max_rel_logit_err": max(_rel_err(o, r) for o, r in zip(outs, ref_logits)),
               "top1_agreement_faces": _agreement(face_outs, ref_faces), "face_clips": len(faces),
               "faces_max_rel_logit_err": max(_rel_err(o, r) for o, r in zip(face_outs, ref_faces)),
               "threads": torch.get_num_threads()}
        if mode in golden_err:
            row["golden_max_rel_logit_err"] = golden_err[mode]
        rows.append(row)
    return rows


def bench_loader(s: BenchSettings) -> dict:
    """The DFEW-layout loader with train augmentation (JPEG frame folders + WAV), as the trainer builds it."""
    root = Path(s.data or Path(tempfile.gettempdir()) / "mmadfer-bench-dfew224")
    if not (root / "annotations").is_dir():
        write_synthetic_dataset(root, 96, num_frames=40, size=s.img_size, raw=False)
    ds = build_dataset("dfew", root, fold=1, split="train", train=True,
                       preprocess=PreprocessConfig(img_size=s.img_size))
    # One long epoch drawn with replacement: a small synthetic set must not measure epoch restarts instead of loading.
    total = (s.loader_batches + 1) * s.loader_batch
    sampler = torch.utils.data.RandomSampler(ds, replacement=True, num_samples=total)
    loader = DataLoader(ds, batch_size=s.loader_batch, sampler=sampler, num_workers=s.workers,
                        collate_fn=collate_clips, pin_memory=torch.cuda.is_available(), drop_last=True,
                        prefetch_factor=4 if s.workers else None)
    it = iter(loader)
    next(it)  # worker start-up is not throughput
    n = 0
    t0 = time.perf_counter()
    for batch in it:
        n += batch["video"].shape[0]
    sec = time.perf_counter() - t0
    return {"kind": "loader", "mode": f"{s.workers} workers", "batch": s.loader_batch,
            "clips_per_s": round(n / sec, 1), "clips": n, "dataset_clips": len(ds)}


def run_benchmarks(s: BenchSettings, log: Callable[[str], None] = print) -> dict:
    torch.manual_seed(0)
    cfg = _model_cfg(s)
    base = MMADFER(cfg).eval()  # eval: drop-path off, so every mode computes the same function
    if cfg.fusion:  # open the gates so fusion costs what it will after training
        with torch.no_grad():
            for f in base.fusion:
                f.img_gate.fill_(0.5)
                f.aud_gate.fill_(0.5)
    cpu = cpu_signature()
    env = {"date": time.strftime("%Y-%m-%d"), "torch": torch.__version__, "python": platform.python_version(),
           "device": torch.cuda.get_device_name() if torch.device(s.device).type == "cuda" else cpu["model"],
           "cpu": f"{cpu['model']} (cpuid {cpu['cpuid']})", "cpu_flags": " ".join(cpu["flags"]), "cores": cpu["cores"],
           "cpu_threads": torch.get_num_threads(), "model": s.size, "img_size": cfg.img_size}
    gflop = count_gflop(cfg)
    gflop_train = count_gflop(cfg, backward=True)
    result: dict[str, Any] = {"env": env, "gflop_per_clip": round(gflop, 1),
                              "gflop_per_train_clip": round(gflop_train, 1), "reference": REFERENCE, "rows": []}
    log(f"# mmadfer bench: {env}\n# {gflop:.1f} GFLOP/clip forward, {gflop_train:.1f} forward+backward")
    golden = Path(s.golden) if s.golden else None
    if torch.device(s.device).type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False

    def record(row: dict):
        if "clips_per_s" in row and row["kind"] in ("infer", "train"):
            per = gflop if row["kind"] == "infer" else gflop_train
            row["tflop_per_s"] = round(row["clips_per_s"] * per / 1e3, 1)
        result["rows"].append(row)
        log(json.dumps(row))

    def attempt(fn, *args, kind: str, mode: str):
        try:
            out = fn(*args)
            for row in out if isinstance(out, list) else [out]:
                record(row)
        except Exception as e:  # one failing mode (e.g. fp8 on an old GPU) must not lose the others
            record({"kind": kind, "mode": mode, "error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"})
        finally:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            torch._dynamo.reset()

    for what in s.what:
        if what == "infer":
            for m in s.infer_modes:
                attempt(bench_infer, s, m, base, kind="infer", mode=m)
        elif what == "train":
            for m in s.train_modes:
                attempt(bench_train, s, m, base, kind="train", mode=m)
        elif what == "accuracy":
            for m in s.accuracy_modes:
                attempt(bench_accuracy, s, m, golden, base, kind="accuracy", mode=m)
        elif what == "cpu":
            attempt(bench_cpu_paths, s, base, golden, kind="cpu", mode=",".join(s.cpu_modes))
        elif what == "loader":
            attempt(bench_loader, s, kind="loader", mode="")
        elif what in ("predict", "faces"):
            continue  # run by the command (mmadfer.predict.benchmark, .face_benchmark: peers of this module)
        else:
            raise ValueError(f"unknown benchmark {what!r}; choose from infer, train, accuracy, cpu, loader, predict, "
                             "faces")
    return result


def format_markdown(result: dict) -> str:
    cols = ["kind", "mode", "batch", "videos", "windows", "wall_s", "x_realtime", "non_model_fraction",
            "clips_per_s", "s_per_clip", "tflop_per_s", "peak_mem_gb", "first_call_s",
            "top1_agreement", "top1_agreement_faces", "golden_max_rel_logit_err", "random_max_rel_logit_err",
            "faces_max_rel_logit_err", "face_iou_median", "face_iou_p10", "crop_iou_median", "windows_lost",
            "longest_lost_run", "speedup", "error"]
    rows = result["rows"]
    cols = [c for c in cols if any(c in r for r in rows)]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c, "")
            cells.append(f"{v:.2e}" if isinstance(v, float) and "err" in c else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    env = result["env"]
    cpu = f" · CPU {env['cpu']} ({env['cores']} cores; {env['cpu_flags'] or 'no AVX2'})" if "cpu" in env else ""
    table = "\n".join(lines)
    stages = [r for r in rows if "stage_fraction" in r]
    if stages:
        names = list(stages[0]["stage_fraction"])
        table += ("\n\n| predict run | " + " | ".join(names) + " |\n|" + "---|" * (len(names) + 1) + "\n"
                  + "\n".join(f"| {r['mode']} ({r['video']}) | " + " | ".join(
                      f"{r['stage_fraction'][n]:.1%}" for n in names) + " |" for r in stages))
    return (f"{env['date']} · {env['device']}{cpu} · torch {env['torch']} · {env['model']} model at "
            f"{env['img_size']} px · {result['gflop_per_clip']} GFLOP/clip\n\n" + table)


def write_json(result: dict, path: str | os.PathLike) -> None:
    with atomic_write(path) as f:
        json.dump(result, f, indent=2)
