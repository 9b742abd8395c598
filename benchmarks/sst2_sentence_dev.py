"""A sentence-level dev split for SST-2, carved from GLUE's train file (issue 22: select on dev, never on test).

    python benchmarks/sst2_sentence_dev.py data/sst2/train.tsv OUT_DIR [--n 1000] [--seed 0] [--exclude TEXTS]

GLUE's SST-2 train holds every phrase of the treebank's train sentences (67,349 rows) while its dev (kdnlp's test
here) holds whole sentences only, so a dev carved at random from train is mostly phrases and ranks variants
poorly for the test (docs/static.md). Here:
  - a *sentence* is a train row that is no contiguous word span of another train row (the root of its parse);
  - `--n` of them, drawn at random (seeded), are the dev split;
  - train keeps every other row, minus the dev sentences and every phrase that occurs only inside dev sentences
    (a phrase shared with a train sentence stays: it would be in train anyway). So no dev sentence is seen in
    training, not even in pieces;
  - `--exclude TEXTS` (one text a line, e.g. what an existing teacher was fine-tuned on): those sentences are not
    drawn, so that teacher never saw a dev sentence whole. (It may have seen some of their phrases: excluding
    every sentence with such a phrase leaves 1,663 of 6,885 for the 12k-row teacher, 14 words long on average
    against the test's 19.5, a worse proxy.)
Writes OUT_DIR/train.tsv and OUT_DIR/dev.tsv (GLUE's format: `sentence<TAB>label` header) and prints the counts.
"""
from __future__ import annotations

import argparse
import random
from pathlib import Path


def read(path: Path) -> list[tuple[str, str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [tuple(line.split("\t")) for line in lines[1:] if line]


def split(rows: list[tuple[str, str]], n: int, seed: int, exclude: set[str] = frozenset()) -> tuple[list, list]:
    texts = {t.strip() for t, _ in rows}
    inside: dict[str, set[str]] = {}  # phrase -> the rows (texts) it is a proper span of
    for text in texts:
        words = text.split()
        for i in range(len(words)):
            for j in range(i + 1, len(words) + 1):
                if j - i < len(words):
                    span = " ".join(words[i:j])
                    if span in texts:
                        inside.setdefault(span, set()).add(text)
    sentences = sorted(t for t in texts if t not in inside)
    eligible = [t for t in sentences if t not in exclude]
    dev = set(random.Random(seed).sample(eligible, n))
    # a phrase goes with the dev only if every row it lies in is a dev sentence or such a phrase: walk up
    dev_only = set(dev)
    for phrase in sorted(inside, key=lambda p: -len(p.split())):  # longer first: parents are decided before
        if inside[phrase] <= dev_only:
            dev_only.add(phrase)
    train = [(t, y) for t, y in rows if t.strip() not in dev_only]
    dev_rows = [(t, y) for t, y in rows if t.strip() in dev]
    seen = set()
    dev_rows = [r for r in dev_rows if not (r[0].strip() in seen or seen.add(r[0].strip()))]  # one row per sentence
    print(f"{len(rows)} train rows: {len(sentences)} sentences (no span of another row), {len(eligible)} of them "
          f"not excluded; dev: {len(dev_rows)} of them; train: {len(train)} rows (removed {len(rows) - len(train)}: the dev sentences and their phrases "
          f"found in no train sentence)")
    return train, dev_rows


def write(path: Path, rows: list[tuple[str, str]]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows), encoding="utf-8")
    tmp.replace(path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("train")
    ap.add_argument("out_dir")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--exclude", help="a file of texts (one a line) no dev sentence may come from")
    args = ap.parse_args()
    exclude = set(Path(args.exclude).read_text(encoding="utf-8").split("\n")) if args.exclude else set()
    train, dev = split(read(Path(args.train)), args.n, args.seed, {t.strip() for t in exclude})
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write(out / "train.tsv", train)
    write(out / "dev.tsv", dev)


if __name__ == "__main__":
    main()
