"""End-to-end speed of ``Recognizer.predict_video`` and of real-time mode on a long real-looking video.

Measures, for each precision and batch size: windows per second through the whole path (decode, MTCNN, fbank, model),
the same path without the model (the preparation ceiling), the model alone on prepared batches, the agreement of
each precision's timeline with fp32's (top-1 and max |Δp|), and real-time latency (file at full speed and paced).

    python -m benchmarks.predict_speed --device cuda --seconds 120 --golden .golden --json out.json
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _model(golden: str | None, device: str):
    from mmadfer import MMADFER, ModelConfig

    if golden and Path(golden, "official_b2_224.json").is_file():
        from mmadfer.checkpoints import config_from_official_state_dict, convert_official_state_dict, strict_load
        from mmadfer.testing import reference_state_dict

        sd = convert_official_state_dict(reference_state_dict(golden=Path(golden), check_sums=False))
        model = MMADFER(config_from_official_state_dict(sd))
        strict_load(model, sd, golden)
        return model.eval(), "reference (golden weights)"
    torch.manual_seed(0)
    return MMADFER(ModelConfig.reference() if device != "cpu" else ModelConfig.tiny()).eval(), "random weights"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seconds", type=float, default=120.0)
    p.add_argument("--fps", type=float, default=25.0)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--stride", type=float, default=1.0)
    p.add_argument("--batch-sizes", default="8,32")
    p.add_argument("--precisions", default="fp32,bf16")
    p.add_argument("--golden", default=None)
    p.add_argument("--pace-seconds", type=float, default=12.0, help="real-time replay length (0: skip)")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)

    from mmadfer.data.synthetic import make_astronaut_video
    from mmadfer.media.decode import open_video
    from mmadfer.predict import Recognizer
    from mmadfer.predict.realtime import run_realtime

    out: dict = {"device": torch.cuda.get_device_name() if a.device.startswith("cuda") else "cpu",
                 "threads": torch.get_num_threads(), "rows": []}
    log = lambda s: print(s, flush=True)  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        video = make_astronaut_video(Path(tmp) / "long.mp4", seconds=a.seconds, fps=a.fps, size=a.size)
        log(f"made {a.seconds:g} s video at {a.fps:g} fps, {a.size}px in {time.perf_counter() - t:.1f} s")
        model, what = _model(a.golden, a.device)
        out["model"] = what
        log(f"model: {what}, {model.num_parameters() / 1e6:.1f} M parameters, on {out['device']}")

        # preparation alone (decode + faces + fbank), in the same background thread predict_video uses
        rec = Recognizer(model, device=a.device, batch_size=8)
        with open_video(video, max_side=rec.max_side) as reader:
            t = time.perf_counter()
            prepared = [tr[0] for _, tr in rec._prepared_windows(reader, rec.window_s, a.stride, 0.0, None)]
            prep_s = time.perf_counter() - t
        n = len(prepared)
        out["prepare_windows_per_s"] = round(n / prep_s, 2)
        log(f"prepare only: {n} windows in {prep_s:.1f} s = {n / prep_s:.1f} windows/s")

        tables = {}
        for precision in a.precisions.split(","):
            for bs in map(int, a.batch_sizes.split(",")):
                rec = Recognizer(model, device=a.device, batch_size=bs, precision=precision)
                batch = prepared[:bs]
                rec.predict_prepared(batch)  # warm-up
                if a.device.startswith("cuda"):
                    torch.cuda.synchronize()
                t = time.perf_counter()
                reps = max(1, 64 // bs)
                for _ in range(reps):
                    rec.predict_prepared(batch)
                model_s = (time.perf_counter() - t) / (reps * bs)
                t = time.perf_counter()
                df = rec.predict_video(video, stride_s=a.stride)
                wall = time.perf_counter() - t
                tables[(precision, bs)] = df
                row = {"precision": precision, "batch": bs, "windows": len(df),
                       "end_to_end_windows_per_s": round(len(df) / wall, 2),
                       "model_only_clips_per_s": round(1 / model_s, 1)}
                out["rows"].append(row)
                log(json.dumps(row))
        ref = next(iter(tables.values()))
        pcols = [c for c in ref.columns if c.startswith("p_")]
        for (precision, bs), df in tables.items():
            agree = float((df.label == ref.label).mean())
            dp = float(np.abs(df[pcols].to_numpy() - ref[pcols].to_numpy()).max())
            out.setdefault("agreement_vs_first", []).append(
                {"precision": precision, "batch": bs, "top1_agreement": agree, "max_abs_dprob": dp})
            log(f"{precision}@{bs} vs {a.precisions.split(',')[0]}: top-1 agreement {agree:.4f}, max |dp| {dp:.2e}")

        rec = Recognizer(model, device=a.device, batch_size=1)
        for pace, limit in ((False, 30), (True, max(0, int(a.pace_seconds - 5.12)))):
            if not limit:
                continue
            t = time.perf_counter()
            rows = list(run_realtime(rec, video, stride_s=a.stride, pace=pace, max_windows=limit))
            lat = np.array([r["latency_ms"] for r in rows])
            res = {"pace": pace, "windows": len(rows), "latency_ms_median": round(float(np.median(lat)), 1),
                   "latency_ms_p95": round(float(np.percentile(lat, 95)), 1), "skipped": rows[-1]["skipped"],
                   "wall_s": round(time.perf_counter() - t, 1)}
            out.setdefault("realtime", []).append(res)
            log(f"realtime: {json.dumps(res)}")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
