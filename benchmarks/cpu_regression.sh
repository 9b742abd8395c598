#!/usr/bin/env bash
# CPU must not regress (issue 16): in ONE run on this machine, a baseline commit vs this tree, the same work:
# the SST-2 students of benchmarks/sst2.sh (3-layer BERT and BiLSTM, distilled and alone), one epoch each on a
# stratified subsample, and the MiniLM teacher's logit-cache pass (examples/s). Sides alternate run by run, so both
# see the same machine load; compare only numbers from the same run.
# Environment: BASE (commit, default 74433d8 = main when the GPU work branched), N (train rows, default 20000 =
# configs/sst2.yaml), REPEATS (default 1), THREADS (torch threads, default 2), DATA (default ../shared/data, else
# data/), WORK (default saved_dict/cpu_regression), SETS (extra space-separated section.key=value overrides for
# both sides, e.g. SETS="data.dev_ratio=0.02" for a quick check). The teacher is fine-tuned once (1 epoch, this tree) and
# copied to both sides; each side computes its own logit cache from it.
# Results: $WORK/cpu_regression.json and .md. Small check: N=200 SETS="data.dev_ratio=0.02" benchmarks/cpu_regression.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BASE=${BASE:-74433d8bda645789ed74d668e6f7c5f5ad2d68ac}; N=${N:-20000}; REPEATS=${REPEATS:-1}; THREADS=${THREADS:-2}
DATA=${DATA:-$( [ -d ../shared/data/sst2 ] && echo ../shared/data || echo data )}; DATA=$(cd "$DATA" && pwd)
WORK=${WORK:-saved_dict/cpu_regression}; mkdir -p "$WORK"; WORK=$(cd "$WORK" && pwd)
BASE_TREE=$WORK/base_tree
if [ ! -d "$BASE_TREE" ]; then git worktree add --detach "$BASE_TREE" "$BASE"; fi
git -C "$BASE_TREE" checkout -q --detach "$BASE"
echo "baseline $(git -C "$BASE_TREE" rev-parse HEAD) vs candidate $(git rev-parse HEAD)$(git diff --quiet || echo ' + uncommitted changes')"
uptime
export OMP_NUM_THREADS=$THREADS PYTHONUNBUFFERED=1
COMMON=(--epochs 1 --set "data.train=$DATA/sst2/train.tsv" --set "data.test=$DATA/sst2/dev.tsv"
        --set "data.max_train_examples=$N" --set "train.threads=$THREADS" --set train.device=cpu)
for kv in ${SETS:-}; do COMMON+=(--set "$kv"); done
if [ ! -f "$WORK/teacher_run/teacher/config.json" ]; then
  PYTHONPATH=$ROOT python -m kdnlp train-teacher --config configs/sst2.yaml --output-dir "$WORK/teacher_run" "${COMMON[@]}" > "$WORK/teacher.log" 2>&1
fi
side() {  # side name, tree, repeat
  local out=$WORK/runs/$1.$3
  rm -rf "$out" && mkdir -p "$out" && cp -r "$WORK/teacher_run/teacher" "$out/teacher"
  (cd "$2" && export PYTHONPATH=$2 &&
   python -m kdnlp train-student --config configs/sst2.yaml --output-dir "$out" "${COMMON[@]}" &&
   python -m kdnlp train-student --config configs/sst2.yaml --output-dir "$out" "${COMMON[@]}" --alpha 1 --T 0 --set student.name=student_alone &&
   python -m kdnlp train-student --config configs/sst2_bilstm.yaml --output-dir "$out" "${COMMON[@]}" &&
   python -m kdnlp train-student --config configs/sst2_bilstm.yaml --output-dir "$out" "${COMMON[@]}" --alpha 1 --T 0 --set student.name=bilstm_alone
  ) > "$out.log" 2>&1 || { echo "$1 run $3 failed: see $out.log" >&2; exit 1; }
  echo "$1 run $3 done ($(date -u +%T))"
}
for r in $(seq 1 "$REPEATS"); do
  if [ $((r % 2)) = 1 ]; then side baseline "$BASE_TREE" "$r"; side candidate "$ROOT" "$r"
  else side candidate "$ROOT" "$r"; side baseline "$BASE_TREE" "$r"; fi
done
uptime
python - "$WORK" "$N" "$REPEATS" <<'PY'
import json, statistics, sys
from pathlib import Path
work, n, repeats = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
models = ["student", "student_alone", "bilstm", "bilstm_alone"]
res = {}
for side in ("baseline", "candidate"):
    runs = [work / "runs" / f"{side}.{r}" for r in range(1, repeats + 1)]
    row = {}
    for m in models:
        secs = [next(h["epoch_seconds"] for h in json.loads((d / m / "train_log.json").read_text())["history"]
                     if "epoch_seconds" in h) for d in runs]
        row[f"{m}_epoch_seconds"] = statistics.median(secs)
    row["cache_pass_examples_per_second"] = statistics.median(
        json.loads((d / "logits" / "train.json").read_text())["examples_per_second"] for d in runs)
    res[side] = row
ratio = {k: round(res["candidate"][k] / res["baseline"][k], 3) for k in res["baseline"]}
out = {"train_rows": n, "repeats": repeats, **res, "candidate_over_baseline": ratio}
(work / "cpu_regression.json").write_text(json.dumps(out, indent=2) + "\n")
lines = ["| measure (median of %d) | baseline | candidate | candidate / baseline |" % repeats, "|---|---:|---:|---:|"]
for k in res["baseline"]:
    lines.append(f"| {k} | {res['baseline'][k]:.1f} | {res['candidate'][k]:.1f} | {ratio[k]:.3f} |")
text = "\n".join(lines) + "\n(epoch seconds: lower is better; examples/s: higher is better)\n"
(work / "cpu_regression.md").write_text(text)
print(text)
PY
