#!/usr/bin/env bash
# Bring your own teacher on SST-2 (issue 15): a MiniLM fine-tuned by plain transformers is
#  1. measured by a 10-line transformers script (benchmarks/hf_accuracy.py) on the test set (GLUE dev),
#  2. distilled into a BiLSTM with teacher.fine_tuned (no teacher training; kdnlp's teacher report must match 1.),
#  3. turned into a teacher.outputs JSONL by `kdnlp label` and distilled again from that file alone
#     (same seed and student: the accuracy must match 2.), and once more with a word vocabulary (no tokenizer at all).
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch, transformers, platform; print('torch', torch.__version__, '| transformers', transformers.__version__, '|', platform.machine(), '|', torch.get_num_threads(), 'threads')"
T=saved_dict/sst2_hf_teacher
[ -f $T/config.json ] || python benchmarks/hf_finetune_sst2.py data/sst2/train.tsv $T 8000
python benchmarks/hf_accuracy.py $T data/sst2/dev.tsv
kdnlp distill --config configs/sst2_byo.yaml --resume      # --resume: a finished model is not trained again
[ -f saved_dict/sst2_byo/train_outputs.jsonl ] || kdnlp label --input data/sst2/train.tsv --teacher $T --output saved_dict/sst2_byo/train_outputs.jsonl --max-length 64
kdnlp distill --config configs/sst2_outputs.yaml --resume
kdnlp train-student --config configs/sst2_outputs.yaml --resume --set student.tokenizer= --set student.name=bilstm_words
python - <<'PY'
import json
out = "saved_dict/sst2_byo"
t = json.load(open(f"{out}/teacher/report.json"))
print(f"teacher (fine_tuned, kdnlp report): accuracy {t['accuracy']:.4f}")
for name in ("bilstm", "bilstm_outputs", "bilstm_words"):
    r = json.load(open(f"{out}/{name}/report.json"))
    print(f"{name}: test accuracy {r['accuracy']:.4f}, macro-F1 {r['macro_f1']:.4f}")
PY
