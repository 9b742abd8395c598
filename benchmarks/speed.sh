#!/usr/bin/env bash
# Regenerates the README's speed tables (kdnlp bench / kdnlp export) from scratch on this machine, CPU.
#   1. TNEWS-5 titles, untrained models with bert-base-chinese's shape (configs/tnews5_speed.yaml): BERT-base-sized
#      teacher (12 layers) vs 6-layer BERT vs BiLSTM; PyTorch fp32, ONNX Runtime fp32/int8, TorchScript fp32/int8;
#      and the teacher's logit-cache pass, sorted dynamic vs fixed padding, at max_length 128 and 32.
#   2. SST-2, the trained models of benchmarks/sst2.sh (MiniLM teacher, 3-layer BERT, BiLSTM): the same, with test
#      accuracy next to speed; pass SST2_DIR to bench a copy of them (export writes into <dir>/<model>/export/).
# Environment: DATA (default data/: tnews5/, sst2/), VOCAB (bert-base-chinese vocab.txt, default
# bert_pretrain/vocab.txt), THREADS (default 2), SST2_DIR (default saved_dict/sst2; skipped if missing).
# Results: saved_dict/tnews5_speed/{bench,bench_len32}.{json,md} and $SST2_DIR/bench.{json,md,png}.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-data}; VOCAB=${VOCAB:-bert_pretrain/vocab.txt}; THREADS=${THREADS:-2}; SST2_DIR=${SST2_DIR:-saved_dict/sst2}
python -c "import torch, transformers, platform, onnxruntime; print('torch', torch.__version__, '| transformers', transformers.__version__, '| onnxruntime', onnxruntime.__version__, '|', platform.machine(), platform.processor())"
nproc; uptime

TNEWS=(--config configs/tnews5_speed.yaml --set "data.train=$DATA/tnews5/train.json" --set "data.test=$DATA/tnews5/test.json"
       --set "data.labels=$DATA/tnews5/classes.txt" --set "teacher.vocab=$VOCAB")
python -m kdnlp bench "${TNEWS[@]}" --init-untrained                                          # teacher + BiLSTM
python -m kdnlp bench "${TNEWS[@]}" --init-untrained --set student.type=bert --set student.name=bert6
for m in teacher bert6 bilstm; do                  # parity on 512 test rows (accuracy is meaningless here)
  python -m kdnlp export "${TNEWS[@]}" --model $m --format onnx --examples 512
  python -m kdnlp export "${TNEWS[@]}" --model $m --format onnx --quantize int8 --examples 512
  python -m kdnlp export "${TNEWS[@]}" --model $m --format torchscript --examples 512
  if [ $m != bilstm ]; then python -m kdnlp export "${TNEWS[@]}" --model $m --format torchscript --quantize int8 --examples 512; fi
done
uptime
python -m kdnlp bench "${TNEWS[@]}" --models teacher,bert6,bilstm --threads "$THREADS" --cache-pass 2000
uptime
# the same cache-pass comparison at configs/tnews.yaml's max_length 32 (the BiLSTM row only, for the file)
python -m kdnlp bench "${TNEWS[@]}" --set data.max_length=32 --models bilstm --threads "$THREADS" --cache-pass 2000 --results bench_len32

if [ -f "$SST2_DIR/teacher/config.json" ]; then
  SST2=(--config configs/sst2.yaml --output-dir "$SST2_DIR" --set "data.train=$DATA/sst2/train.tsv" --set "data.test=$DATA/sst2/dev.tsv")
  for m in teacher student bilstm; do              # parity and accuracy on the full test set (872 sentences)
    python -m kdnlp export "${SST2[@]}" --model $m --format onnx
    python -m kdnlp export "${SST2[@]}" --model $m --format onnx --quantize int8
    python -m kdnlp export "${SST2[@]}" --model $m --format torchscript
    if [ $m != bilstm ]; then python -m kdnlp export "${SST2[@]}" --model $m --format torchscript --quantize int8; fi
  done
  uptime
  python -m kdnlp bench "${SST2[@]}" --models teacher,student,bilstm --threads "$THREADS" --cache-pass 2000
  uptime
else
  echo "SST-2: $SST2_DIR/teacher not found (run benchmarks/sst2.sh first); skipped"
fi
