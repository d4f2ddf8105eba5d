#!/usr/bin/env bash
# The learning curve of BENCHMARKS.md ("How many labels"): a synthetic "in-house" task with its own classes, labelled
# as spans of longer videos, fine-tuned from a checkpoint trained on a different synthetic task, against training
# from the pretraining weights (for the tiny synthetic model there are none: random encoders, all trainable).
#   bash benchmarks/learning_curve_synthetic.sh            # WORK=/tmp/mmadfer-lc; ~40 min on 2 busy cores
set -euo pipefail
W=${WORK:-/tmp/mmadfer-lc}
M="${PYTHON:-python3} -m mmadfer.cli"
# 1. the "released checkpoint": the 4-class synthetic task of `mmadfer synth` (calm/animated face x low/high voice)
$M train --config synthetic --out "$W/base" --epochs "${BASE_EPOCHS:-20}" --set data.synth_clips="${BASE_CLIPS:-64}" \
  --resume
# 2. the in-house footage: 26 videos of 12 labelled segments, classes neutral/confused/engaged, two annotators
$M synth "$W/inhouse" --task inhouse --videos "${VIDEOS:-26}" --spans 12 --size 64 --second-annotator
# 3. labels -> dataset, split by video into 5 folds (train 3, validation 1, test 1)
$M prepare "$W/inhouse/videos" --labels "$W/inhouse/labels.csv" --out "$W/data" --folds 5 --no-faces --size 32 \
  --workers 1 || true   # exit 1: the spans the two annotators disagree on are reported and left out
# 4. the curve: 5, 10, 20, 50 clips per class, REPEATS draws each, from the checkpoint and from the pretraining weights
$M learning-curve --config synthetic --dataset folder --data "$W/data" --fold 1 --init "$W/base/final.safetensors" \
  --sizes "${SIZES:-5,10,20,50}" --repeats "${REPEATS:-1}" --epochs "${EPOCHS:-6}" --out "$W/curve"
# 5. before and after on the held-out fold, the base mapped onto the in-house classes
$M evaluate --compare "$W/base/final.safetensors" "$W/curve/checkpoint/n50_r0/run/final.safetensors" \
  --dataset folder --data "$W/data" --fold 1 --class-map "$W/inhouse/class_map.csv" --num-workers 0 \
  --out "$W/compare"
