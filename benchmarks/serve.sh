#!/usr/bin/env bash
# `kdnlp serve` under load on this machine, beside `kdnlp bench`'s in-process figure for the same file (issue 24).
#   1. Models on SST-2 (English, max_length 64): a BiLSTM (teacher embeddings) and a static student, each trained
#      briefly on 2,000 train rows alone (alpha 1, T 0: no teacher logits needed), and the fine-tuned MiniLM teacher
#      itself ($TEACHER). MODELS picks which (default "bilstm static teacher").
#   2. Per model: kdnlp export --quantize int8 --bundle (parity on the 872 test sentences), kdnlp bench --threads 1
#      (in-process examples/s at batch 64 and batch-1 latency of the int8 ONNX file; and with --threads $WORKERS,
#      the same cores the server gets), then the real server ($WORKERS workers, 1 onnxruntime thread each) on
#      127.0.0.1 driven by benchmarks/serve_load.py: one SST-2 test sentence per request, concurrency 1, 8, 32, 128,
#      $SECONDS_PER_LEVEL s each; requests/s, p50/p95/p99, errors, RSS (all the server's processes).
#   3. The RSS of a torch-based `kdnlp predict` process on the same model, for comparison with the server's.
# Environment: DATA (default data: sst2/train.tsv, sst2/dev.tsv), TEACHER (a fine-tuned SST-2 teacher dir, default
# saved_dict/sst2_t12k/teacher), OUT (default saved_dict/serve_bench), MODELS, SECONDS_PER_LEVEL (default 10),
# PORT (default 18080), and the server's WORKERS (default: the cores this process may use), ONNX_THREADS (1), MAX_BATCH (32),
# MAX_WAIT_MS (0). Results: $OUT/serve_<model>.json (load levels), $OUT/bench_serve.{json,md}, printed table.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-data}; TEACHER=${TEACHER:-saved_dict/sst2_t12k/teacher}; OUT=${OUT:-saved_dict/serve_bench}
MODELS=${MODELS:-bilstm static teacher}; SECONDS_PER_LEVEL=${SECONDS_PER_LEVEL:-10}; PORT=${PORT:-18080}
WORKERS=${WORKERS:-$(python -c "import os; print(len(os.sched_getaffinity(0)))")}  # not nproc: it obeys OMP_NUM_THREADS
mkdir -p "$OUT"
cat > "$OUT/config.yaml" <<EOF
data: {train: $DATA/sst2/train.tsv, test: $DATA/sst2/dev.tsv, max_length: 64, max_train_examples: 2000}
teacher: {fine_tuned: $TEACHER}
student: {type: bilstm, name: bilstm, epochs: 2, batch_size: 32}
distill: {alpha: 1.0, T: 0.0}
train: {device: cpu, seed: 1}
output_dir: $OUT
EOF
CFG=(--config "$OUT/config.yaml")
python -c "import onnxruntime, fastapi, uvicorn, platform; print('onnxruntime', onnxruntime.__version__, '| fastapi', fastapi.__version__, '| uvicorn', uvicorn.__version__, '|', platform.machine())"
nproc; uptime

for m in $MODELS; do
  case $m in
    bilstm) [ -f "$OUT/bilstm/report.json" ] || python -m kdnlp train-student "${CFG[@]}" ;;
    static) [ -f "$OUT/static/report.json" ] || python -m kdnlp train-student "${CFG[@]}" --set student.type=static \
              --set student.name=static --set student.ngrams=2 --set student.epochs=5 ;;
    teacher) [ -f "$OUT/teacher/report.json" ] || python -m kdnlp train-teacher "${CFG[@]}" ;;  # imports teacher.fine_tuned, tests it
  esac
  set_name=(); [ "$m" = static ] && set_name=(--set student.type=static --set student.name=static)
  python -m kdnlp export "${CFG[@]}" "${set_name[@]}" --model "$m" --quantize int8 --bundle "$OUT/$m/bundle-int8"
  echo "load: $(uptime)"
  python -m kdnlp bench "${CFG[@]}" "${set_name[@]}" --models "$m" --threads 1 --runs 20 --examples 872 --results "bench_$m"
  [ "$WORKERS" = 1 ] || python -m kdnlp bench "${CFG[@]}" "${set_name[@]}" --models "$m" --threads "$WORKERS" --runs 20 \
    --examples 872 --results "bench_${m}_threads"
  python -m kdnlp serve --bundle "$OUT/$m/bundle-int8" --port "$PORT" --workers "$WORKERS" --onnx-threads ${ONNX_THREADS:-1} --max-batch ${MAX_BATCH:-32} --max-wait-ms ${MAX_WAIT_MS:-0} \
    --max-queue 4096 > "$OUT/serve_$m.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 120); do curl -sf "http://127.0.0.1:$PORT/health" > /dev/null && break; sleep 0.5; done
  echo "load: $(uptime)"
  python benchmarks/serve_load.py --url "http://127.0.0.1:$PORT" --texts "$DATA/sst2/dev.tsv" --pid "$SERVER" \
    --concurrency 1,8,32,128 --seconds "$SECONDS_PER_LEVEL" --out "$OUT/serve_$m.json"
  echo "load: $(uptime)"
  kill -TERM "$SERVER"; wait "$SERVER" || true
  # the torch-based alternative: one kdnlp predict process on the same model, its peak RSS
  python - "$m" "${CFG[@]}" "${set_name[@]}" <<'EOF'
import resource, subprocess, sys
m, rest = sys.argv[1], sys.argv[2:]
subprocess.run([sys.executable, "-m", "kdnlp", "predict", *rest, "--model", m, "a gripping, funny film"], check=True,
               stdout=subprocess.DEVNULL)
print(f"kdnlp predict ({m}, torch) peak RSS: {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} MB")
EOF
done
python - "$OUT" "$WORKERS" $MODELS <<'EOF'
import json, sys
from pathlib import Path
out, workers = Path(sys.argv[1]), int(sys.argv[2])

def int8_speed(name):
    path = out / f"{name}.json"
    if not path.exists():
        return None
    return next(r for r in json.loads(path.read_text())["rows"] if r["file"].endswith("model.int8.onnx"))["throughput_examples_per_second"]

print(f"served by {workers} worker(s), 1 onnxruntime thread each; in-process: kdnlp bench, int8 ONNX, batch 64")
print(f"| model | in-process ex/s, 1 thread | in-process ex/s, {workers} threads | concurrency | served req/s "
      "| served / in-process (1 thread) | p50 / p95 / p99 ms | errors | server RSS (sum of peaks) / PSS, processes |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for m in sys.argv[3:]:
    one, many = int8_speed(f"bench_{m}"), int8_speed(f"bench_{m}_threads") if workers > 1 else None
    for lv in json.loads((out / f"serve_{m}.json").read_text()):
        print(f"| {m} | {one:,.0f} | {f'{many:,.0f}' if many else '–'} | {lv['concurrency']} | {lv['requests_per_second']:,.0f} "
              f"| {lv['requests_per_second'] / one:.0%} | {lv['p50_ms']} / {lv['p95_ms']} / {lv['p99_ms']} "
              f"| {sum(lv['errors'].values())} | {lv.get('rss_mb', '?')} MB ({lv.get('peak_rss_mb', '?')}) / {lv.get('pss_mb', '?')} MB, {lv.get('processes', '?')} |")
EOF
uptime
