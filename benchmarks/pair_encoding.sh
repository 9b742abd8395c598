#!/usr/bin/env bash
# Issue 21 item 9: sentence pairs tokenised once per split per model kind (joint for BERT-like models, per side for
# the siamese BiLSTM) instead of three times. On MRPC (3,668 train pairs), a baseline commit vs this tree:
#   cache pass   `kdnlp cache-logits` with an untrained MiniLM-L6 teacher (weights do not change the cost): wall time
#                of the command and the "N rows in Xs" predict time it prints
#   BiLSTM epoch `kdnlp train-student`, siamese BiLSTM, 1 epoch, from that cache: its tokenising and epoch lines
# Sides alternate run by run, so both see the same machine load; compare only numbers from the same run.
# Environment: BASE (commit, default 4ebc80a = before item 9), REPEATS (default 2), THREADS (default 2),
# DATA (default ../shared/data), WORK (default saved_dict/pair_encoding). Results: $WORK/*.log, summary on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BASE=${BASE:-4ebc80a}; REPEATS=${REPEATS:-2}; THREADS=${THREADS:-2}
DATA=${DATA:-$( [ -d ../shared/data/mrpc ] && echo ../shared/data || echo data )}; DATA=$(cd "$DATA" && pwd)
WORK=${WORK:-saved_dict/pair_encoding}; mkdir -p "$WORK"; WORK=$(cd "$WORK" && pwd)
BASE_TREE=$WORK/base_tree
if [ ! -d "$BASE_TREE/kdnlp" ]; then mkdir -p "$BASE_TREE" && git archive "$BASE" | tar -x -C "$BASE_TREE"; fi
echo "baseline $BASE vs candidate $(git rev-parse --short HEAD)$(git diff --quiet || echo ' + uncommitted changes')"
uptime
export OMP_NUM_THREADS=$THREADS PYTHONUNBUFFERED=1
COMMON=(--config configs/mrpc.yaml --set "data.train=$DATA/mrpc/train.tsv" --set "data.dev=$DATA/mrpc/dev.tsv"
        --set "data.test=$DATA/mrpc/test.tsv" --set "train.threads=$THREADS" --set train.device=cpu
        --set student.type=bilstm --set student.siamese=true --set student.embeddings=teacher
        --set student.freeze_embeddings=true --set student.embedding_dim=384 --set student.hidden_size=300
        --set student.mlp_size=192 --set student.lr=1e-3 --set student.batch_size=64)
if [ ! -f "$WORK/init/teacher/config.json" ]; then
  PYTHONPATH=$ROOT python -m kdnlp bench "${COMMON[@]}" --output-dir "$WORK/init" --init-untrained > "$WORK/init.log" 2>&1
fi
side() {  # side name, tree, repeat
  local out=$WORK/runs/$1.$3 log=$WORK/$1.$3.log
  rm -rf "$out" && mkdir -p "$out" && cp -r "$WORK/init/teacher" "$out/teacher"
  (cd "$2" && export PYTHONPATH=$2 &&
   s=$(date +%s.%N) && python -m kdnlp cache-logits "${COMMON[@]}" --output-dir "$out" &&
   echo "cache-logits wall $(echo "$(date +%s.%N) - $s" | bc)s" &&
   python -m kdnlp train-student "${COMMON[@]}" --output-dir "$out" --epochs 1
  ) > "$log" 2>&1 || { echo "$1 run $3 failed: see $log" >&2; exit 1; }
  echo "$1 run $3: $(grep -h 'cache-logits wall' "$log"); $(grep -h 'logit cache: .* rows in' "$log" | sed 's/ -> .*//');" \
       "$(grep -h 'student: .*tokenising' "$log" | sed 's/,.*//'); $(grep -h 'student epoch 1: train loss' "$log" | sed 's/.*, //')"
}
for r in $(seq 1 "$REPEATS"); do
  side base "$BASE_TREE" "$r"
  side new "$ROOT" "$r"
done
uptime
