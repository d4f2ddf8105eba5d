#!/usr/bin/env bash
# One DFEW-fold-shaped training run, end to end through `mmadfer train` on the GPU, to time the issue-6 row
# "one DFEW fold, 25 epochs + evaluation".
#
# DFEW itself cannot travel to the lent machine, so the fold is made of synthetic clips in the DFEW layout: CLIPS
# distinct 224² JPEG-folder + WAV clips, listed repeatedly so that fold 1 has DFEW's sizes (9,356 training and 2,341
# test clips). Every listed clip is decoded, augmented and featurised by the loader as a real one would be.
# It trains EPOCHS epochs with the GPU defaults (bf16, torch.compile) at batch 32 with 16 workers, then evaluates;
# log.csv gives each epoch's wall time, so 25 epochs are projected from the steady-state epochs.
# Carry [".whl"] (PyAV for the device's Python).
#   bash benchmarks/gpu_fold.sh                      # on the GPU machine
#   CLIPS=8 TRAIN_N=32 TEST_N=8 EPOCHS=1 EXTRA="--set model.preset=tiny --device cpu --num-workers 2" \
#     bash benchmarks/gpu_fold.sh                    # a dry run anywhere
set -uo pipefail
WORK=${WORK:-/tmp/mmadfer-fold}
source "$(dirname "$0")/device_env.sh"
PY=${PYTHON:-python3}
M="$PY -m mmadfer.cli"
start=$(date +%s)
$M synth "$WORK/data" --clips "${CLIPS:-320}" --size 224 --frames 32 --no-raw > /dev/null 2>&1 || exit 1
$PY - "$WORK/data/annotations" "${TRAIN_N:-9356}" "${TEST_N:-2341}" <<'PY'
import itertools, pathlib, sys
ann, sizes = pathlib.Path(sys.argv[1]), {"train": int(sys.argv[2]), "test": int(sys.argv[3])}
for split, n in sizes.items():
    lines = [l for l in (ann / f"set_1_{split}.txt").read_text().splitlines() if l.strip()]
    (ann / f"set_1_{split}.txt").write_text("\n".join(itertools.islice(itertools.cycle(lines), n)) + "\n")
    print(f"fold 1 {split}: {n} clips drawn from {len(lines)} distinct ones")
PY
echo "data ready after $(( $(date +%s) - start )) s" | tee "$OUT/fold.log"
t0=$(date +%s)
$M train --config dfew --dataset dfew --data "$WORK/data" --fold 1 --out "$WORK/run" \
  --epochs "${EPOCHS:-2}" --batch-size 32 --num-workers "${WORKERS:-16}" --set train.log_every=50 ${EXTRA:-} 2>&1 \
  | tr '\r' '\n' | grep -v "^\s*$" | tail -40 | tee -a "$OUT/fold.log"
echo "mmadfer train wall time: $(( $(date +%s) - t0 )) s" | tee -a "$OUT/fold.log"
cp "$WORK/run/log.csv" "$OUT/fold_log.csv" 2>/dev/null
cp "$WORK/run/eval/metrics.json" "$OUT/fold_metrics.json" 2>/dev/null
