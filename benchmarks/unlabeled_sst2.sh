#!/usr/bin/env bash
# Issue 23, accuracy: SST-2 with 2,000 labelled sentences, plus PILE (default 50,000) unlabelled ones (the rest of
# train, labels removed) labelled by the MiniLM teacher, vs the same students on the 2,000 alone (distilled, and
# trained alone), and (BiLSTM) vs the 2,000 + Tang et al. augmentation of equal size (PILE/2000 copies each).
# Test = GLUE dev (872). STUDENTS="bilstm static" (default), SEEDS="1 2 3" for several seeds.
# Needs the teacher: TEACHER=<dir> (default saved_dict/sst2_t12k/teacher, a MiniLM fine-tuned on 12k train rows).
set -euo pipefail
cd "$(dirname "$0")/.."
CFG=configs/sst2_unlabeled.yaml
OUT=${OUT:-saved_dict/sst2_unlabeled}
TEACHER=${TEACHER:-saved_dict/sst2_t12k/teacher}
SEEDS=${SEEDS:-1}
STUDENTS=${STUDENTS:-bilstm static}
PILE=${PILE:-50000}
SST2=${SST2:-data/sst2}
mkdir -p $OUT/data
python - "$SST2/train.tsv" $OUT/data $PILE <<'PY'
import random, sys
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
header, rows, n = lines[0], lines[1:], int(sys.argv[3])
random.Random(0).shuffle(rows)
open(f"{sys.argv[2]}/train2k.tsv", "w", encoding="utf-8").write("\n".join([header] + rows[:2000]) + "\n")
open(f"{sys.argv[2]}/pile.txt", "w", encoding="utf-8").write("\n".join(r.rsplit("\t", 1)[0] for r in rows[2000:2000 + n]) + "\n")
PY
S="--output-dir $OUT --set teacher.fine_tuned=$TEACHER --set data.test=$SST2/dev.tsv --set data.train=$OUT/data/train2k.tsv --set data.unlabeled=$OUT/data/pile.txt"
NONE="--set data.unlabeled=null --epochs 20"
kdnlp train-teacher --config $CFG $S                                   # imports the teacher, reports it on test
kdnlp cache-logits --config $CFG $S                                    # the 2k rows, then the pile in shards
for seed in $SEEDS; do
  for st in $STUDENTS; do
    X=""
    [ $st = static ] && X="--set student.type=static --set student.embeddings=random --set student.freeze_embeddings=false --set student.embedding_dim=64 --set student.mlp_size=0 --set student.tokenize=teacher"
    kdnlp train-student --config $CFG $S $X --seed $seed --set student.name=${st}_pile_s$seed
    kdnlp train-student --config $CFG $S $X --seed $seed $NONE --set student.name=${st}_kd2k_s$seed
    kdnlp train-student --config $CFG $S $X --seed $seed $NONE --alpha 1 --T 0 --set student.name=${st}_alone_s$seed
  done
  if [[ " $STUDENTS " == *" bilstm "* && -z "${NO_TANG:-}" ]]; then
    kdnlp train-student --config $CFG $S --seed $seed --set data.unlabeled=null --set augment.enabled=true \
      --set augment.n_samples=$((PILE / 2000)) --set student.name=bilstm_tang_s$seed
  fi
done
python benchmarks/summarize.py $OUT
