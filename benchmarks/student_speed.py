"""One clip through a student and through the reference model, each on its default ``auto`` CPU backend, in one run.

Both models have random weights (the speed ratio does not depend on them; fusion gates opened to 0.5). Each is saved
as a checkpoint and loaded the way ``mmadfer predict`` loads it (``load_runner('auto', ...)``: the int8 conversion
is made, checked and timed by ``auto``, and the fastest that keeps predictions runs). The clips are then timed
alternately (reference, student, reference, ...) so both see the same load; the medians and their ratio are reported
with the CPU signature and the load average before and after.

    python -m benchmarks.student_speed --student vit-tiny --repeats 3 --json student_speed.json
    python -m benchmarks.student_speed --reference-backend torch   # the reference in PyTorch fp32, no conversion

The reference's ``auto`` conversion (ONNX Runtime int8, about 3.7 GiB at its peak) and auto's agreement check take
many minutes on a loaded 2-core machine; ``--reference-backend torch`` times it in PyTorch fp32 instead (slower
than its int8 path, so the ratio is then an upper bound of the ratio to the default path).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch


def _checkpoint(cfg, path: Path) -> Path:
    from mmadfer import MMADFER
    from mmadfer.checkpoints import save_checkpoint

    torch.manual_seed(0)
    model = MMADFER(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("_gate"):
                p.fill_(0.5)
    return save_checkpoint(model, path, include_frozen=True)


def main(argv: list[str] | None = None) -> dict:
    from mmadfer import ModelConfig
    from mmadfer.export.verify import random_inputs
    from mmadfer.hardware import cpu_signature
    from mmadfer.runtime.load import load_runner

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--student", default="vit-tiny")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--reference-backend", choices=("auto", "torch"), default="auto")
    p.add_argument("--work", help="folder for the checkpoints and conversion cache (default: a temporary one)")
    p.add_argument("--json", help="write the result here")
    args = p.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="student-speed-"))
    work.mkdir(parents=True, exist_ok=True)
    result: dict = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cpu": cpu_signature(),
                    "threads": torch.get_num_threads(), "loadavg_before": os.getloadavg()}
    models = {"reference": ModelConfig.reference(), f"student {args.student}": ModelConfig.student(args.student)}
    runners, inputs = {}, {}
    for name, cfg in models.items():
        ck = work / f"{name.split()[-1]}.safetensors"
        if not ck.is_file():
            _checkpoint(cfg, ck)
        t0 = time.perf_counter()
        backend = args.reference_backend if name == "reference" else "auto"
        runners[name] = load_runner(backend, ck, device="cpu", cache_dir=work / "cache",
                                    **({"precision": "fp32"} if backend == "torch" else {}))
        result[name] = {"backend": runners[name].backend, "precision": getattr(runners[name], "precision", None),
                        "load_s (incl. conversion and auto's measurement, first time)": time.perf_counter() - t0}
        video, audio = random_inputs(cfg, 1)
        inputs[name] = (video, audio)
        runners[name](video, audio)  # warm-up
        print(name, result[name], flush=True)
    times: dict[str, list[float]] = {n: [] for n in models}
    for _ in range(args.repeats):  # alternately: one reference clip, then three student clips
        for name in models:
            for _ in range(1 if name == "reference" else 3):
                t0 = time.perf_counter()
                runners[name](*inputs[name])
                times[name].append(time.perf_counter() - t0)
    for name in models:
        result[name]["s_per_clip_median"] = float(np.median(times[name]))
        result[name]["s_per_clip_all"] = times[name]
    ref, stu = (result[n]["s_per_clip_median"] for n in models)
    result["speedup"] = ref / stu
    result["loadavg_after"] = os.getloadavg()
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
