#!/usr/bin/env bash
# The SST-2 frontier of docs/results.md and docs/students.md, then the peers (fastText, model2vec) on the same split.
# Needs the teacher saved_dict/sst2_t12k (all-MiniLM-L6-v2 fine-tuned by kdnlp on 12,000 SST-2 rows:
#   kdnlp train-teacher --config configs/sst2.yaml --set data.max_train_examples=12000 --set teacher.epochs=1
#   --output-dir saved_dict/sst2_t12k) and GLUE SST-2 in data/sst2.
set -euo pipefail
cd "$(dirname "$0")/.."
SST2=${SST2:-data/sst2}
TEACHER_RUN=${TEACHER_RUN:-saved_dict/sst2_t12k}
SETS=(--set "data.test=$SST2/dev.tsv" --set "teacher.fine_tuned=$TEACHER_RUN/teacher")
# 20,000 train rows the teacher never saw; dev is carved from them
python benchmarks/frontier_subset.py --teacher-run "$TEACHER_RUN" --train "$SST2/train.tsv" --rows 20000 \
    --out saved_dict/sst2_frontier_data/train.tsv
# train with 2 threads; then measure with one thread everywhere (torch, the tokenizers pool), as fastText runs
kdnlp frontier --config configs/sst2_frontier.yaml "${SETS[@]}" --threads 2 --train-only
RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1 kdnlp frontier --config configs/sst2_frontier.yaml "${SETS[@]}" --threads 1
benchmarks/peers.sh configs/sst2_frontier.yaml "${SETS[@]}"
