#!/usr/bin/env bash
# data.unlabeled under task: multilabel (GoEmotions, 28 labels): LABELLED (default 4,000) train comments, plus PILE
# (default 30,000) other train comments with their labels removed, labelled by a MiniLM teacher fine-tuned on the
# LABELLED rows only. BiLSTM students (teacher embeddings, frozen; bce on the teacher's sigmoids, configs/goemotions.yaml):
# alone on LABELLED (alpha 1, T 0), distilled on LABELLED, distilled on LABELLED + the pile, and the first two again
# for as many optimizer steps as the pile run (*_long). Dev and test: GoEmotions' own (5,426 / 5,427), never
# subsampled; thresholds chosen on dev. One seed.
#   DATA=../shared/data benchmarks/unlabeled_goemotions.sh      (OUT, LABELLED, PILE, TEACHER_EPOCHS, EPOCHS)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-data}; OUT=${OUT:-saved_dict/goemotions_unlabeled}
LABELLED=${LABELLED:-4000}; PILE=${PILE:-30000}; TEACHER_EPOCHS=${TEACHER_EPOCHS:-3}; EPOCHS=${EPOCHS:-4}
G=$DATA/goemotions
mkdir -p "$OUT/data"
python - "$G/train.tsv" "$OUT/data" "$LABELLED" "$PILE" <<'PY'
# labelled rows: raw lines of the header-less TSV (their CSV quoting kept, auto-detected when read); pile: the other
# rows' texts, read by kdnlp's reader (quotes undone), one per line
import random, sys
from pathlib import Path
from kdnlp.config import DataConfig
from kdnlp.readers import records
src, out, n_lab, n_pile = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
lines = src.read_text(encoding="utf-8").splitlines()
texts = [rec["text"] for _, rec in records(src, DataConfig(columns=["text", "label", "id"]))[1]]
assert len(texts) == len(lines)
order = list(range(len(lines)))
random.Random(0).shuffle(order)
(out / "train_labelled.tsv").write_text("".join(lines[i] + "\n" for i in order[:n_lab]), encoding="utf-8")
(out / "pile.txt").write_text("".join(" ".join(texts[i].split()) + "\n" for i in order[n_lab:n_lab + n_pile]), encoding="utf-8")
PY
S=(--config configs/goemotions.yaml --output-dir "$OUT" --set data.train="$OUT/data/train_labelled.tsv"
   --set data.dev="$G/dev.tsv" --set data.test="$G/test.tsv" --set data.labels="$G/emotions.txt"
   --set data.unlabeled="$OUT/data/pile.txt" --set data.unlabeled_shard_rows=10000)
BILSTM=(--set student.type=bilstm --set student.embeddings=teacher --set student.freeze_embeddings=true
        --set student.embedding_dim=384 --set student.hidden_size=300 --set student.mlp_size=192 --set student.lr=1e-3
        --set student.batch_size=64 --set student.epochs="$EPOCHS")
NONE=(--set data.unlabeled=null)
step() { [ -f "$OUT/$1/report.json" ] && { echo "== $1: done, skipped"; return; }; echo "== $1 ($(date -u +%H:%M:%S))"; shift; python -m kdnlp "$@"; }
step teacher train-teacher "${S[@]}" --set teacher.epochs="$TEACHER_EPOCHS"
step bilstm_alone train-student "${S[@]}" "${BILSTM[@]}" "${NONE[@]}" --alpha 1 --T 0 --set student.name=bilstm_alone
step bilstm_kd train-student "${S[@]}" "${BILSTM[@]}" "${NONE[@]}" --set student.name=bilstm_kd
step bilstm_pile train-student "${S[@]}" "${BILSTM[@]}" --set student.name=bilstm_pile
# the same number of optimizer steps as the pile run, on the labelled rows alone: does the pile help beyond more steps?
LONG=$(( EPOCHS * (LABELLED + PILE) / LABELLED ))
step bilstm_kd_long train-student "${S[@]}" "${BILSTM[@]}" "${NONE[@]}" --set student.epochs=$LONG --set student.name=bilstm_kd_long
step bilstm_alone_long train-student "${S[@]}" "${BILSTM[@]}" "${NONE[@]}" --alpha 1 --T 0 --set student.epochs=$LONG \
  --set student.name=bilstm_alone_long
python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print("| model | test micro-F1 | macro-F1 | % of teacher (micro) | optimizer steps |")
print("|---|---:|---:|---:|---:|")
t = json.loads((out / "teacher" / "report.json").read_text())
for name in ("teacher", "bilstm_alone", "bilstm_kd", "bilstm_pile", "bilstm_kd_long", "bilstm_alone_long"):
    r = json.loads((out / name / "report.json").read_text())
    steps = json.loads((out / name / "train_log.json").read_text())["step"]
    print(f"| {name} | {r['micro_f1']:.4f} | {r['macro_f1']:.4f} | {r['micro_f1'] / t['micro_f1']:.1%} | {steps:,} |")
PY
