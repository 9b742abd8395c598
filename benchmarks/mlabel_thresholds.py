"""Issue 21 item 6: threshold rules compared on saved dev/test logits (benchmarks/mlabel_probe.py), no retraining.
Thresholds are always chosen on dev; test micro/macro-F1 at them is printed. `global@test` (a global threshold
chosen on test) is an upper bound for reference only, never a selection rule.

    python benchmarks/mlabel_thresholds.py saved_dict/mlabel_probe/*/epoch*.npz
"""
from __future__ import annotations

import sys

import numpy as np
from sklearn.metrics import f1_score

from kdnlp.multilabel import choose_thresholds, sigmoid


def rules(dev_p, dev_g):
    n = dev_p.shape[1]
    out = {"0.5": np.full(n, 0.5), "global": choose_thresholds(dev_p, dev_g, "global"),
           "per_label": choose_thresholds(dev_p, dev_g, "per_label")}
    g, per, pos = out["global"], out["per_label"], dev_g.sum(0)
    for k in (5, 10, 20):
        out[f"per_label>={k}"] = np.where(pos >= k, per, g)
    return out


def main(paths):
    names = None
    for path in paths:
        z = np.load(path)
        dev_p, test_p = sigmoid(z["dev_logits"]), sigmoid(z["test_logits"])
        dev_g, test_g = z["dev_gold"], z["test_gold"]
        rs = rules(dev_p, dev_g)
        rs["global@test"] = choose_thresholds(test_p, test_g, "global")
        if names is None:
            names = list(rs)
            print(f"{'run':<34}" + "".join(f"{n:>20}" for n in names) + "   (test micro/macro-F1)")
        cells = []
        for n in names:
            pred = (test_p >= rs[n][None, :]).astype(int)
            cells.append(f"{f1_score(test_g, pred, average='micro', zero_division=0):.3f}/"
                         f"{f1_score(test_g, pred, average='macro', zero_division=0):.3f}")
        print(f"{path.split('mlabel_probe/')[-1]:<34}" + "".join(f"{c:>20}" for c in cells))


if __name__ == "__main__":
    main(sys.argv[1:])
