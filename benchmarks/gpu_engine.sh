#!/usr/bin/env bash
# Second GPU call: the training engine end to end on CUDA (synthetic DFEW-layout set at 224 px, the reference-size
# model, bf16, 16 loader workers; its log shows clips/s and the share of step time spent waiting on the loader),
# then the loader benchmark and the tensor-wise fp8 mode. Carry [".whl", ".golden"] as for gpu.sh.
set -uo pipefail
source "$(dirname "$0")/device_env.sh"
M="python3 -m mmadfer.cli"
$M synth /tmp/synth224 --clips 320 --size 224 --frames 32 --no-raw > /dev/null 2>&1
$M train --config dfew --dataset folder --data /tmp/synth224 --fold 1 --out /tmp/run224 \
  --set train.epochs=3 --set train.batch_size=32 --set data.num_workers=16 --set train.log_every=4 2>&1 \
  | tr '\r' '\n' | grep -v "^\s*$" | tail -25 | tee "$OUT/train_engine.log"
cp /tmp/run224/log.csv "$OUT/train_log.csv" 2>/dev/null; cp /tmp/run224/eval/metrics.json "$OUT/train_metrics.json" 2>/dev/null
WHAT=loader,accuracy,infer ACCURACY_MODES=fp8t INFER_MODES=fp8t+compile@128 STEPS=10 bash benchmarks/gpu.sh
