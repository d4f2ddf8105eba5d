#!/usr/bin/env bash
# The next GPU measurements for issue 6, prepared to run in one call (~7 min on an H200; carry [".whl", ".golden"]):
# larger compiled batches, CUDA graphs (torch.compile mode "reduce-overhead") and regional compilation (each
# repeated layer compiled on its own: compare first_call_s, the compile time, and the steady clips/s with
# +compile), for inference and training. Results: $OUT/bench_gpu.json and the log, as for gpu.sh.
#   bash benchmarks/gpu_next.sh
# If regional compilation keeps the step speed, time the fold with it (~6.5 min, carry [".whl"]):
#   EXTRA="--set train.compile=regional" bash benchmarks/gpu_fold.sh
set -uo pipefail
export WHAT=${WHAT:-infer,train}
export INFER_MODES=${INFER_MODES:-bf16+compile@128,bf16+regional@128,bf16+compile@256,bf16+cudagraphs@128}
export TRAIN_MODES=${TRAIN_MODES:-bf16+compile@32,bf16+regional@32,bf16+compile@64,bf16+cudagraphs@32}
export STEPS=${STEPS:-10}
exec bash "$(dirname "$0")/gpu.sh"
