"""The SST-2 frontier's training file: N rows of SST-2 train that the teacher never saw, written as a TSV.

    python benchmarks/frontier_subset.py --teacher-run saved_dict/sst2_t12k --train data/sst2/train.tsv \
        --rows 20000 --out saved_dict/sst2_frontier_data/train.tsv

The teacher (saved_dict/sst2_t12k: all-MiniLM-L6-v2 fine-tuned by kdnlp on 12,000 rows) records its run in
<teacher-run>/config.resolved.yaml; its training rows are rebuilt from it with kdnlp's own split (load_splits) and
left out, so the dev split carved from this file is unseen by the teacher too and the teacher's dev score, against
which --retain is applied, is not inflated. The rows kept are a seeded random sample (seed 0) of the rest.
"""
from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

from kdnlp.config import load_config
from kdnlp.data import load_splits


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--teacher-run", required=True, help="the teacher's output_dir (holds config.resolved.yaml)")
    ap.add_argument("--train", required=True, help="SST-2 train.tsv (sentence<TAB>label, a header row)")
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    cfg = load_config(Path(args.teacher_run) / "config.resolved.yaml", [f"data.train={args.train}"])
    seen = {e.text for e in load_splits(cfg.data, cfg.data.seed).train}
    with open(args.train, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    header, body = rows[0], [r for r in rows[1:] if r[0] not in seen]
    random.Random(0).shuffle(body)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join("\t".join(r) for r in [header] + body[:args.rows]) + "\n", encoding="utf-8")
    print(f"{out}: {min(args.rows, len(body))} rows of {len(rows) - 1}, none of the teacher's {len(seen)} training rows")


if __name__ == "__main__":
    main()
