#!/usr/bin/env bash
# Issue 21 item 6: does a multi-label MiniLM teacher leave the label-prior plateau on a few thousand GoEmotions
# comments? Dev: 300 comments carved from train by iterative stratification (data.dev_ratio 300/43,410, what a user
# with a few thousand examples has); test: the whole GoEmotions test split (5,427). Thresholds and checkpoints are
# chosen on dev, never on test. Outputs under saved_dict/ (git-ignored).
#
#   benchmarks/mlabel_plateau.sh probe   the plain loop (benchmarks/mlabel_probe.py: kdnlp's teacher schedule, dev and
#                                        test logits saved after every epoch), then every threshold rule on them
#                                        (benchmarks/mlabel_thresholds.py)
#   benchmarks/mlabel_plateau.sh kdnlp   the same through `kdnlp train-teacher` with this branch's defaults
#                                        (before: run it on a checkout of main, or add --set teacher.pooling=cls)
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
SHARED=${SHARED:-../shared/data}
[ -e data/goemotions ] || ln -s "$(realpath "$SHARED/goemotions")" data/goemotions
PY=${PYTHON:-python}

if [ "${1:-probe}" = probe ]; then
  for n in 3000 6000; do
    k=$((n / 1000))k
    [ -f "saved_dict/mlabel_probe/cls_$k/epoch2.npz" ] || \
      $PY benchmarks/mlabel_probe.py --name "cls_$k" --pool cls --bias zero --n-train "$n" --epochs 2         # before
    [ -f "saved_dict/mlabel_probe/mean_prior_$k/epoch2.npz" ] || \
      $PY benchmarks/mlabel_probe.py --name "mean_prior_$k" --pool mean --bias prior --n-train "$n" --epochs 2  # after
  done
  $PY benchmarks/mlabel_thresholds.py saved_dict/mlabel_probe/*/epoch*.npz | tee saved_dict/mlabel_thresholds.txt
else
  for n in 3000 6000; do
    for e in 1 2; do
      $PY -m kdnlp train-teacher --config configs/goemotions.yaml --output-dir "saved_dict/mlabel_kdnlp/n${n}_e${e}" \
        --set data.dev=null --set data.dev_ratio=0.006911 --set data.max_train_examples="$n" --set teacher.epochs="$e" \
        --set train.threads=2 "${@:2}"
    done
  done
fi
