#!/usr/bin/env bash
# Chinese NER end to end on builtin:peoples-daily-ner with a from-scratch teacher (no pretrained Chinese weights
# offline) and a BiLSTM tagger; train subsampled to 10,000 sentences for a 2-core CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
kdnlp distill --config configs/peoples_daily_ner.yaml --output-dir saved_dict/peoples_daily_scratch \
  --set teacher.pretrained=null --set teacher.lr=5e-4 --set teacher.epochs=2 --set teacher.batch_size=64 \
  --set student.type=bilstm --set student.lr=2e-3 --set student.epochs=3 --set student.batch_size=64 \
  --set data.max_train_examples=10000
python benchmarks/summarize.py saved_dict/peoples_daily_scratch
