#!/usr/bin/env bash
# Issue 16's table on a GPU: kdnlp vs the Hugging Face Trainer, same data and models, one epoch each, in one run
# (benchmarks/gpu_bench.py), plus accuracy and the BERT-base row's model FLOP/s vs the card's bf16 peak.
# The GPU machine starts bare: prepare gpu_payload/ here first (benchmarks/gpu_payload.sh: data, MiniLM weights,
# wheels), then with the device tool:   run(command="benchmarks/gpu.sh", carry=["gpu_payload"], timeout_s=600)
# Results: $OUT/gpu_bench.{json,md} + $OUT/gpu_bench.log (without $OUT: saved_dict/gpu_bench/results/).
#   benchmarks/gpu.sh --tiny   (or GPU_BENCH_TINY=1): tiny models and subsets on the CPU, a couple of minutes:
#                              checks that the script works end to end on a machine without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PAYLOAD=${PAYLOAD:-gpu_payload}
RESULTS=${OUT:-saved_dict/gpu_bench/results}
TINY=()
if [ "${1:-}" = "--tiny" ] || [ "${GPU_BENCH_TINY:-0}" = 1 ]; then TINY=(--tiny); fi
[ -d "$PAYLOAD/sst2" ] || { echo "$PAYLOAD/ is missing: run benchmarks/gpu_payload.sh first (and carry it)" >&2; exit 2; }
PY=$(command -v python3 || command -v python)
if ! "$PY" -c "import seqeval" 2>/dev/null; then  # the GPU image lacks it: install the carried wheel
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$PAYLOAD"/wheels/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
mkdir -p "$RESULTS"
"$PY" -c "import torch, transformers, platform; print('torch', torch.__version__, '| transformers', transformers.__version__, '|', torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or platform.machine())" | tee "$RESULTS/gpu_bench.log"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null | tee -a "$RESULTS/gpu_bench.log" || true
PYTHONUNBUFFERED=1 "$PY" benchmarks/gpu_bench.py --payload "$PAYLOAD" --work "${WORK:-saved_dict/gpu_bench}" \
  --results "$RESULTS" "${TINY[@]}" 2>&1 | tee -a "$RESULTS/gpu_bench.log"
