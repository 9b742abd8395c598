#!/usr/bin/env bash
# Issue 23, accuracy: SST-2 with 2,000 labelled sentences, plus 50,000 unlabelled ones (the rest of train, labels
# removed) labelled by the MiniLM teacher, vs the same students on the 2,000 alone (distilled, and trained alone),
# vs the 2,000 + Tang et al. augmentation of equal size (25 copies each). Test = GLUE dev (872). Students: the
# BiLSTM and the static student. SEEDS="1 2 3" for several seeds.
# Needs the teacher: TEACHER=<dir> (default saved_dict/sst2_t12k/teacher, a MiniLM fine-tuned on 12k train rows).
set -euo pipefail
cd "$(dirname "$0")/.."
CFG=configs/sst2_unlabeled.yaml
OUT=saved_dict/sst2_unlabeled
TEACHER=${TEACHER:-saved_dict/sst2_t12k/teacher}
SEEDS=${SEEDS:-1}
SST2=${SST2:-data/sst2}
mkdir -p $OUT/data
python - "$SST2/train.tsv" $OUT/data <<'PY'
import random, sys
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
header, rows = lines[0], lines[1:]
random.Random(0).shuffle(rows)
open(f"{sys.argv[2]}/train2k.tsv", "w", encoding="utf-8").write("\n".join([header] + rows[:2000]) + "\n")
open(f"{sys.argv[2]}/pile50k.txt", "w", encoding="utf-8").write("\n".join(r.rsplit("\t", 1)[0] for r in rows[2000:52000]) + "\n")
PY
S="--set teacher.fine_tuned=$TEACHER --set data.test=$SST2/dev.tsv"
kdnlp train-teacher --config $CFG $S                                   # imports the teacher, reports it on test
kdnlp cache-logits --config $CFG $S                                    # the 2k rows, then the pile in shards
for seed in $SEEDS; do
  kdnlp train-student --config $CFG $S --seed $seed --set student.name=bilstm_pile_s$seed
  kdnlp train-student --config $CFG $S --seed $seed --epochs 20 --set data.unlabeled=null --set student.name=bilstm_kd2k_s$seed
  kdnlp train-student --config $CFG $S --seed $seed --epochs 20 --set data.unlabeled=null --alpha 1 --T 0 --set student.name=bilstm_alone_s$seed
  kdnlp train-student --config $CFG $S --seed $seed --set data.unlabeled=null --set augment.enabled=true \
    --set augment.n_samples=25 --set student.name=bilstm_tang_s$seed
  for arm in "pile:" "kd2k:--set data.unlabeled=null --epochs 20"; do
    kdnlp train-student --config $CFG $S --seed $seed --set student.type=static --set student.embeddings=random \
      --set student.freeze_embeddings=false --set student.embedding_dim=128 --set student.mlp_size=128 ${arm#*:} \
      --set student.name=static_${arm%%:*}_s$seed
  done
done
python benchmarks/summarize.py $OUT
