#!/usr/bin/env bash
# The GPU benchmark, prepared to run in one call on the lent H100/H200 (see BENCHMARKS.md).
# That machine has its own python3 with torch, timm and torchvision; PyAV travels as a wheel in .whl/ and the golden
# files in .golden/ (both git-ignored copies), e.g. with the device tool: carry [".whl", ".golden"],
# command "bash benchmarks/gpu.sh". Results: $OUT/bench_gpu.json and the log.
set -uo pipefail
source "$(dirname "$0")/device_env.sh"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__, 'cpus', __import__('os').cpu_count())"
python3 -m mmadfer.cli bench --device cuda --what "${WHAT:-accuracy,infer,train,loader}" \
  --infer-modes "${INFER_MODES:-fp32@8,bf16@64,bf16+compile@128,fp8+compile@128}" \
  --train-modes "${TRAIN_MODES:-fp32@8,bf16@32,bf16+compile@32,fp8+compile@32}" \
  --accuracy-modes "${ACCURACY_MODES:-bf16,fp8}" \
  --steps "${STEPS:-15}" --warmup 3 --golden .golden --workers "$(nproc)" --json "$OUT/bench_gpu.json" 2>&1 \
  | tee "$OUT/bench_gpu.log"
