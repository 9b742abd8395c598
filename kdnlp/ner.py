"""NER (task: ner): column-file reader, IOB1 -> IOB2, subword alignment, windowing, ragged token logits, seqeval.

A sentence is a list of words (characters for Chinese) with one tag each. Each word's label sits on its first
subword; other subwords and pads get -100 and are ignored by every loss and metric. A sentence longer than
`max_length` subwords is split into consecutive word windows (rows); predictions are stitched back per word.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import DataConfig
from .data import EncodedSplit, Splits, read_labels_file, split_specs
from .errors import UserError
from .readers import read_text
from .runtime.encoders import word_windows  # torch-free: the serving runtime windows NER texts the same way

IGNORE = -100


@dataclass
class TagExample:
    tokens: list[str]
    tags: list[int]

    @property
    def text(self) -> str:  # for vocabulary building and fingerprints
        return " ".join(self.tokens)


# ---------------------------------------------------------------- reading

def iob1_to_iob2(tags: list[str]) -> list[str]:
    """IOB1 (entities start with I-; B- only between adjacent same-type entities) -> IOB2 (every entity starts
    with B-). IOB2 input is unchanged; an I- after O or after another type (invalid in IOB2) becomes B-."""
    out, prev = [], "O"
    for tag in tags:
        if tag.startswith("I-") and (prev == "O" or prev[2:] != tag[2:]):
            tag = "B-" + tag[2:]
        out.append(tag)
        prev = tag
    return out


def read_column_file(path: str | Path) -> list[tuple[str, list[str], list[str]]]:
    """CoNLL-style columns (token first, tag last; blank line between sentences; -DOCSTART- skipped).
    Also reads char-per-line Chinese BIO files. Returns (location, tokens, IOB2 tags)."""
    path = Path(path)
    text = read_text(path)
    sentences, tokens, tags, start = [], [], [], 1
    for lineno, line in enumerate(text.splitlines() + [""], 1):
        parts = line.split()
        if not parts or parts[0] == "-DOCSTART-":
            if tokens:
                sentences.append((f"{path} line {start}", tokens, iob1_to_iob2(tags)))
            tokens, tags, start = [], [], lineno + 1
            continue
        if len(parts) < 2:
            raise UserError(f"{path} line {lineno}: expected 'token ... TAG' columns, got {line.strip()!r}")
        tag = parts[-1]
        if tag != "O" and not (tag[:2] in ("B-", "I-") and len(tag) > 2):
            raise UserError(f"{path} line {lineno}: tag {tag!r} is not O, B-TYPE or I-TYPE; use IOB1/IOB2 tags in the last column")
        tokens.append(parts[0])
        tags.append(tag)
    if not sentences:
        raise UserError(f"{path}: no sentences found")
    return sentences


def read_ner_rows(spec: str, split: str):
    if spec.startswith("builtin:"):
        from .builtin import NER, peoples_daily_ner
        name = spec[len("builtin:"):]
        if name not in NER:
            raise UserError(f"{spec}: not an NER dataset (available: {', '.join(NER)})")
        return [(f"{spec} {split} sentence {i + 1}", c, t) for i, (c, t) in enumerate(peoples_daily_ner()[split])]
    return read_column_file(spec)


def load_ner_splits(cfg: DataConfig, seed: int, allow_unlabelled: bool = False) -> Splits:
    _, dev_spec, test_spec = split_specs(cfg)
    train_rows = read_ner_rows(cfg.train, "train")
    if cfg.labels:
        labels = read_labels_file(cfg.labels)
    else:
        types = sorted({t[2:] for _, _, tags in train_rows for t in tags if t != "O"})
        labels = ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]
    index = {lab: i for i, lab in enumerate(labels)}

    def to_examples(rows):
        out = []
        for where, tokens, tags in rows:
            for t in tags:
                if t not in index:
                    raise UserError(f"{where}: unknown tag '{t}' (known: {', '.join(labels)}); list it in data.labels")
            out.append(TagExample(list(tokens), [index[t] for t in tags]))
        return out

    train, test = to_examples(train_rows), to_examples(read_ner_rows(test_spec, "test"))
    if dev_spec:
        dev = to_examples(read_ner_rows(dev_spec, "dev"))
        source = f"{'split of' if dev_spec.startswith('builtin:') else 'file'} {dev_spec}"
    else:
        order = list(range(len(train)))
        random.Random(seed).shuffle(order)
        n_dev = max(1, round(len(train) * cfg.dev_ratio))
        dev = [train[i] for i in sorted(order[:n_dev])]
        train = [train[i] for i in sorted(order[n_dev:])]
        source = f"carved from train (dev_ratio={cfg.dev_ratio}, seed={seed})"
    if cfg.max_train_examples and cfg.max_train_examples < len(train):
        keep = sorted(random.Random(seed).sample(range(len(train)), cfg.max_train_examples))
        train = [train[i] for i in keep]
    return Splits(train, dev, test, labels, source)


# ---------------------------------------------------------------- alignment and windowing

def word_prefix(tokenizer) -> str:
    """What to put before each word: a space for tokenizers whose pieces mark a word start by the space before it
    (byte-level BPE: RoBERTa, GPT-2), else nothing. Each word is tokenized on its own; with the space it gets the
    pieces it has inside a sentence ("ĠParis", not "Paris"), as add_prefix_space=True does for is_split_into_words.
    WordPiece and SentencePiece (BERT, XLM-R, DeBERTa) give the same pieces either way."""
    probe = tokenizer(["a", " a"], add_special_tokens=False)["input_ids"]
    return " " if probe[0] != probe[1] else ""


class EncodedTagSplit(EncodedSplit):
    """Rows = word windows of at most max_length subwords; `labels[r]` has -100 off first subwords.

    `row_example[r]`, `row_word[r]`: the example and first word of row r, to map predictions back to words.
    """

    def __init__(self, examples: list[TagExample], tokenizer, max_length: int):
        budget = max_length - 2  # [CLS] and [SEP]
        self.ids, labels, self.row_example, self.row_word = [], [], [], []
        cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
        words = sorted({w for ex in examples for w in ex.tokens})
        prefix = word_prefix(tokenizer)
        word_ids = dict(zip(words, tokenizer([prefix + w for w in words], add_special_tokens=False)["input_ids"])) if words else {}
        for e_idx, ex in enumerate(examples):
            pieces = [word_ids[w] or [tokenizer.unk_token_id] for w in ex.tokens]
            for ids, firsts, start in word_windows(pieces, cls_id, sep_id, budget):
                labs = [IGNORE] * len(ids)
                for k, position in enumerate(firsts):
                    labs[position] = ex.tags[start + k]
                self.ids.append(ids)
                labels.append(labs)
                self.row_example.append(e_idx)
                self.row_word.append(start)
        self.labels = labels
        self.lengths = np.array([len(x) for x in self.ids])
        self.pad_id = tokenizer.pad_token_id or 0
        self.n_examples = len(examples)
        self.gold = [ex.tags for ex in examples]

    def collate(self, index: np.ndarray, width: int | None = None,
                pad_to_multiple_of: int | None = None) -> dict[str, torch.Tensor]:
        batch = self.pad_ids(index, width, pad_to_multiple_of)
        lab = torch.full(batch["input_ids"].shape, IGNORE, dtype=torch.long)
        for row, i in enumerate(index):
            lab[row, :len(self.labels[i])] = torch.tensor(self.labels[i])
        batch["labels"] = lab
        return batch

    def word_predictions(self, token_logits: "TokenLogits") -> list[list[int]]:
        """Per example, the predicted tag id of every word (windows stitched back in order)."""
        out: list[list[int]] = [[] for _ in range(self.n_examples)]
        for r in range(len(self.ids)):
            out[self.row_example[r]].extend(token_logits.row(r).argmax(1).tolist())
        return out


class TokenLogits:
    """Ragged per-row logits at valid (first-subword) positions: one flat (N, C) array + row offsets."""

    def __init__(self, flat: np.ndarray, offsets: np.ndarray):
        self.flat, self.offsets = flat, offsets

    @classmethod
    def from_rows(cls, rows: list[np.ndarray], n_labels: int) -> "TokenLogits":
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(r) for r in rows])
        flat = np.concatenate(rows) if rows else np.zeros((0, n_labels), np.float32)
        return cls(flat.astype(np.float32), offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def row(self, r: int) -> np.ndarray:
        return self.flat[self.offsets[r]:self.offsets[r + 1]]

    def __getitem__(self, index) -> np.ndarray:
        """Rows `index` concatenated in that order: matches logits[labels != -100] of a batch of those rows."""
        return np.concatenate([self.row(int(r)) for r in index])


def realign_word_logits(logits: TokenLogits, data: EncodedTagSplit) -> TokenLogits:
    """Teacher logits re-cut into `data`'s rows. The cache holds one row per word, in example then word order,
    whatever windows the teacher's tokenizer made; a student with other windows (its own words: word_bilstm; its
    own tokenizer: student.type pretrained) labels the same words in the same order, one position each (the first
    sub-token), so only the row offsets change: the teacher's tokenizer is not needed."""
    counts = [sum(1 for t in lab if t != IGNORE) for lab in data.labels]
    if sum(counts) != len(logits.flat):
        raise UserError(f"the teacher's logit cache has {len(logits.flat)} word rows but the training split has "
                        f"{sum(counts)} words; delete the cache folder (<output_dir>/logits) and rerun")
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(counts)
    return TokenLogits(logits.flat, offsets)


# ---------------------------------------------------------------- metrics (entities: kdnlp/runtime/decode.py)

def entity_metrics(gold: list[list[int]], pred: list[list[int]], labels: list[str]) -> dict:
    """Entity-level (strict IOB2) P/R/F1 with seqeval: micro `f1`, `precision`, `recall`, `macro_f1`, `per_type`."""
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
    from seqeval.scheme import IOB2
    y_true = [[labels[t] for t in s] for s in gold]
    y_pred = [[labels[t] for t in s] for s in pred]
    kw = dict(mode="strict", scheme=IOB2, zero_division=0)
    rep = classification_report(y_true, y_pred, output_dict=True, **kw)
    per_type = {k: {"precision": float(v["precision"]), "recall": float(v["recall"]), "f1": float(v["f1-score"]),
                    "support": int(v["support"])} for k, v in rep.items() if "avg" not in k}
    return {"f1": float(f1_score(y_true, y_pred, **kw)), "precision": float(precision_score(y_true, y_pred, **kw)),
            "recall": float(recall_score(y_true, y_pred, **kw)),
            "macro_f1": float(f1_score(y_true, y_pred, average="macro", **kw)), "per_type": per_type,
            "labels": labels,
            "token_accuracy": float(np.mean([a == b for g, p in zip(gold, pred) for a, b in zip(g, p)]))}


def format_entity_report(gold, pred, labels) -> str:
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2
    return classification_report([[labels[t] for t in s] for s in gold], [[labels[t] for t in s] for s in pred],
                                 mode="strict", scheme=IOB2, digits=4, zero_division=0)
