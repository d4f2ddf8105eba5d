#!/usr/bin/env bash
# Issue 16's GPU measurements, prepared to run in ONE device call of at most 10 minutes on an H100/H200
# (carry [".whl", ".golden"]; results in $OUT: bench_model.json/.log, bench_predict.json/.log, summary.md):
#
#  1. the model's remaining targets (inference >= 1000 clips/s, training step >= 300 clips/s), ~6 min:
#     regional compilation (each repeated layer compiled once: compare first_call_s and the steady clips/s),
#     CUDA graphs (torch.compile mode "reduce-overhead"), larger compiled batches, and fp8 for the frozen encoders:
#     fp8t (one dynamic scale per tensor) and fp8s (static activation scales calibrated once on rendered faces, so
#     only the cast remains), each with its top-1 agreement against fp32 and golden logit error;
#  2. end-to-end `mmadfer bench --what predict` on the GPU, ~3 min: a generated 1280x720 H.264 face video with
#     audio, the reference model in bf16, faces detected batched on the GPU in the main process and
#     $PREDICT_WORKERS processes decoding and computing features; sequential (stage breakdown) and pipelined over
#     $PREDICT_COPIES copies of the video (video seconds per wall second);
#  3. a summary table of both.
# Each phase has its own time limit, so one slow phase cannot lose the others. Override any list below by env var.
#   bash benchmarks/gpu_next.sh
# If regional compilation keeps the step speed, time the fold with it (~6.5 min, carry [".whl"]):
#   EXTRA="--set train.compile=regional" bash benchmarks/gpu_fold.sh
set -uo pipefail
source "$(dirname "$0")/device_env.sh"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__, 'cpus', __import__('os').cpu_count())"
INFER_MODES=${INFER_MODES:-bf16+compile@128,bf16+regional@128,bf16+cudagraphs@128,bf16+compile@256,fp8t+compile@256,fp8s+compile@256}
TRAIN_MODES=${TRAIN_MODES:-bf16+regional@32,bf16+compile@64,bf16+cudagraphs@32}
ACCURACY_MODES=${ACCURACY_MODES:-fp8t,fp8s}
PREDICT_WORKERS=${PREDICT_WORKERS:-$(( $(nproc) - 1 ))}
PREDICT_COPIES=${PREDICT_COPIES:-$(( 2 * PREDICT_WORKERS ))}

# 1. the model (the video for phase 2 is encoded meanwhile on spare cores)
python3 -c "from mmadfer.predict.benchmark import bench_video; print(bench_video('$OUT/bench720p.mp4', 20.0))" \
  > "$OUT/video.log" 2>&1 &
video_pid=$!
timeout "${MODEL_LIMIT_S:-360}" python3 -m mmadfer.cli bench --device cuda --what "accuracy,infer,train" \
  --infer-modes "$INFER_MODES" --train-modes "$TRAIN_MODES" --accuracy-modes "$ACCURACY_MODES" \
  --agreement-clips 256 --steps "${STEPS:-10}" --warmup 3 --golden .golden --json "$OUT/bench_model.json" 2>&1 \
  | tee "$OUT/bench_model.log"
wait "$video_pid"; cat "$OUT/video.log"

# 2. end to end
timeout "${PREDICT_LIMIT_S:-200}" python3 -m mmadfer.cli bench --device cuda --size reference --what predict \
  --video "$OUT/bench720p.mp4" --predict-precision bf16 --predict-workers "$PREDICT_WORKERS" \
  --predict-copies "$PREDICT_COPIES" --json "$OUT/bench_predict.json" 2>&1 | tee "$OUT/bench_predict.log"

# 3. summary
python3 - "$OUT" <<'PY' | tee "$OUT/summary.md"
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
targets = {"infer": ("clips_per_s", 1000), "train": ("clips_per_s", 300)}
print("| phase | mode | measured | target |\n|---|---|---|---|")
for name in ("bench_model.json", "bench_predict.json"):
    p = out / name
    if not p.is_file():
        print(f"| {name} | (no result: timed out or failed, see the log) | | |")
        continue
    for r in json.loads(p.read_text())["rows"]:
        if "error" in r:
            print(f"| {r['kind']} | {r['mode']} | error: {r['error'][:80]} | |")
        elif r["kind"] in targets:
            key, goal = targets[r["kind"]]
            print(f"| {r['kind']} | {r['mode']} | {r[key]} clips/s (first call {r.get('first_call_s')} s) | >= {goal} |")
        elif r["kind"] == "accuracy":
            print(f"| accuracy | {r['mode']} | top-1 agreement {r['top1_agreement']} | >= 0.995 |")
        elif r["kind"] == "predict":
            frac = r.get("stage_fraction", {})
            extra = ", ".join(f"{k} {v:.0%}" for k, v in frac.items())
            print(f"| predict | {r['mode']}, {r['videos']} videos | {r['x_realtime']}x real time"
                  f"{' (' + extra + ')' if extra else ''} | >= 300x |")
PY
