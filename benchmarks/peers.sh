#!/usr/bin/env bash
# fastText and model2vec on the frontier's split, next to kdnlp's students (issue 22 item 7): run after
# `kdnlp frontier --config <same config>`; writes <output_dir>/peers.json and adds the peers to frontier.md/.png.
# Optional installs, each skipped with one line when absent: pip install fasttext-wheel "model2vec[distill,train]"
#   benchmarks/peers.sh configs/sst2_frontier.yaml [--set key=value ...]
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${1:-configs/sst2_frontier.yaml}
shift || true
RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/peers.py --config "$CONFIG" "$@"
