#!/usr/bin/env bash
# The next GPU measurements for issue 6, prepared to run in one call (~6 min on an H200; carry [".whl", ".golden"]):
# larger compiled batches and CUDA graphs (torch.compile mode "reduce-overhead") for inference and training, the
# levers not yet measured. Results: $OUT/bench_gpu.json and the log, as for gpu.sh.
#   bash benchmarks/gpu_next.sh
set -uo pipefail
export WHAT=${WHAT:-infer,train}
export INFER_MODES=${INFER_MODES:-bf16+compile@128,bf16+compile@256,bf16+cudagraphs@128,fp8t+compile@256}
export TRAIN_MODES=${TRAIN_MODES:-bf16+compile@32,bf16+compile@64,bf16+cudagraphs@32}
export STEPS=${STEPS:-10}
exec bash "$(dirname "$0")/gpu.sh"
