"""Datasets: rows of a file (read by kdnlp/readers.py) or builtin:, labels, the dev split, tokenisation, batching.

Every example keeps its position in its split (`index`), so teacher logits are looked up by example, never by
batch position: shuffling and length-sorting are safe.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

import numpy as np
import torch

from .errors import UserError
from .pairs import JOINT, SIDES, check_pairs, encode_pairs
from .readers import pick_pair_field, pick_text_field, read_text, records

if TYPE_CHECKING:  # a type only: data.py does not import config.py at run time (tests/test_imports.py: no circle)
    from .config import DataConfig

UNLABELLED = -100  # label id of a train row without a gold label (== ner.IGNORE, PyTorch's ignore_index)


@dataclass
class Example:
    text: str
    label: int | tuple       # a class id (UNLABELLED: no gold label, only the teacher term trains on it);
                             # task multilabel: the sorted tuple of label ids
    id: str | None = None    # the row's data.id_field, when the file has one (teacher.outputs may refer to it)
    text_b: str | None = None  # the second text of a sentence pair


@dataclass
class Splits:
    train: list[Example]
    dev: list[Example]
    test: list[Example]
    labels: list[str]
    dev_source: str  # "file" or "carved from train (dev_ratio=...)"
    unused: list = dataclasses.field(default_factory=list)  # train rows left out by data.max_train_examples

    def fingerprint(self, split: str) -> str:
        """Hash of the exact examples of a split (texts + labels in order): identifies a logit cache's rows."""
        h = hashlib.sha256()
        for ex in getattr(self, split):
            fields = dataclasses.astuple(ex)
            while fields and fields[-1] is None:  # unset optional fields (id, text_b) are left out: the hash of
                fields = fields[:-1]              # an example without them is as before they existed
            h.update(json.dumps(fields, ensure_ascii=False).encode("utf-8") + b"\n")
        return h.hexdigest()


# ---------------------------------------------------------------- files -> rows (kdnlp/readers.py reads them)

def _blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def read_file(path: str | Path, cfg: DataConfig, need_labels: bool = True) -> list[tuple]:
    """Read one file into (location, text, raw label, id) rows, with a fifth item, the second text, for pairs.

    A row whose label is missing or empty gets raw label None (an unlabelled text: to_examples decides whether that
    is allowed). need_labels=False (kdnlp label): a file without any label field/column is fine."""
    path = Path(path)
    rows, field, pair = [], None, None
    fmt, recs = records(path, cfg)
    for where, rec in recs:
        if not isinstance(rec, dict):
            raise UserError(f"{path} {where}: expected an object with text and label fields")
        if field is None:
            field = pick_text_field(path, list(rec), cfg.text_field)
            pair = pick_pair_field(path, list(rec), field, cfg.text_pair_field)
            if fmt in ("csv", "tsv") and cfg.label_field not in rec and need_labels:
                raise UserError(f"{path} line 1: no '{cfg.label_field}' column (columns: {', '.join(rec)}); "
                                "set data.label_field")
        for key, name in ((field, "text"), (pair, "data.text_pair_field")):
            if key is not None and key not in rec:
                raise UserError(f"{path} {where}: missing field '{key}' ({name}); every row needs it")
        label, rid = rec.get(cfg.label_field), rec.get(cfg.id_field)
        row = (f"{path} {where}", rec[field], None if _blank(label) else label, None if rid is None else str(rid))
        rows.append(row + (rec[pair],) if pair else row)
    for where, t, _, _, *second in rows:
        for value in (t, *second):
            if not isinstance(value, str) or not value.strip():
                raise UserError(f"{where}: empty text; remove the row or fill it in")
    if not rows:
        raise UserError(f"{path}: no examples")
    return rows


def read_rows(spec: str, cfg: DataConfig, split: str):
    """A path or builtin:<name> -> rows. Builtin datasets carry their own splits."""
    if spec.startswith("builtin:"):
        from .builtin import load_builtin
        return load_builtin(spec[len("builtin:"):], split)
    return read_file(spec, cfg)


# ---------------------------------------------------------------- labels

def read_labels_file(path: str | Path) -> list[str]:
    text = read_text(Path(path))
    labels = [line.strip() for line in text.splitlines() if line.strip()]
    seen = set()
    for i, lab in enumerate(labels, 1):
        if lab in seen:
            raise UserError(f"{path} line {i}: duplicate label '{lab}'; each class name must appear once")
        seen.add(lab)
    return labels


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def infer_labels(rows) -> list[str]:
    listed = next((r for r in rows if isinstance(r[2], (list, dict))), None)
    if listed is not None:  # a set would fail on it with a bare TypeError
        raise UserError(f"{listed[0]}: the label is a {type(listed[2]).__name__} ({str(listed[2])[:60]}); several labels "
                        "per example are task: multilabel")
    raw = {r[2] for r in rows if r[2] is not None}
    if all(_is_int(x) for x in raw):
        return [str(x) for x in sorted(raw)]
    return sorted(str(x) for x in raw)


def row_extras(rest: list) -> tuple:
    """(id, second text) from the items after a row's raw label; builtin rows have neither."""
    return (rest[0] if rest else None), (rest[1].strip() if len(rest) > 1 else None)


def to_examples(rows, labels: list[str], labels_from: str, allow_unlabelled: bool = False) -> list[Example]:
    """Rows -> Examples. A row without a label is an unlabelled text (label UNLABELLED) where allow_unlabelled
    (train rows when a given teacher supplies the targets), an error otherwise."""
    index = {lab: i for i, lab in enumerate(labels)}
    out = []
    for where, text, raw, *rest in rows:
        rid, second = row_extras(rest)
        if raw is None:
            if not allow_unlabelled:
                raise UserError(f"{where}: no label (check data.label_field; unlabelled texts are allowed only in "
                                "train, with teacher.fine_tuned or teacher.outputs supplying their targets)")
            out.append(Example(text.strip(), UNLABELLED, rid, second))
            continue
        if labels_from == "file" and isinstance(raw, str) and raw.strip().isdigit() and raw not in index:
            raw = int(raw)  # a CSV/TSV label id (SST-2's 0/1) indexes data.labels, as a JSON int does
        if _is_int(raw) and labels_from == "file":
            if not 0 <= raw < len(labels):
                raise UserError(f"{where}: label id {raw} is out of range for the {len(labels)} classes in data.labels")
            out.append(Example(text.strip(), raw, rid, second))
            continue
        key = str(raw)
        if key not in index:
            raise UserError(f"{where}: unknown label '{key}' (known: {', '.join(labels[:20])}); "
                            "fix the row or list every class in data.labels")
        out.append(Example(text.strip(), index[key], rid, second))
    return out


def _stratified_split(examples: list[Example], n_keep: int, seed: int) -> tuple[list[Example], list[Example]]:
    """Deterministic stratified split: (kept n_keep examples, rest). Falls back to random for singleton classes."""
    from sklearn.model_selection import train_test_split
    idx = np.arange(len(examples))
    y = np.array([e.label for e in examples])
    counts = np.bincount(y)
    n_classes = int((counts > 0).sum())
    # stratify when every class can go to both sides; tiny or singleton data: a seeded random split
    strat = y if counts[counts > 0].min() >= 2 and min(n_keep, len(y) - n_keep) >= n_classes else None
    keep, rest = train_test_split(idx, train_size=n_keep, random_state=seed, stratify=strat)
    return [examples[i] for i in sorted(keep)], [examples[i] for i in sorted(rest)]


def split_specs(cfg: DataConfig) -> tuple[str, str | None, str]:
    """(train, dev or None, test) sources; a builtin: train brings its own dev and test splits."""
    builtin = cfg.train is not None and cfg.train.startswith("builtin:")
    test_spec = cfg.test or (cfg.train if builtin else None)
    dev_spec = cfg.dev or (cfg.train if builtin else None)
    if cfg.train is None or test_spec is None:
        raise UserError("data.train and data.test must be set in the config")
    return cfg.train, dev_spec, test_spec


def load_splits(cfg: DataConfig, seed: int, allow_unlabelled: bool = False, *, examples=to_examples,
                infer=infer_labels, split=_stratified_split, split_name: str = "") -> Splits:
    """Read train/dev/test; labels come from data.labels or, sorted, from train.

    allow_unlabelled: train rows without a label are kept as unlabelled texts (never in dev, never subsampled).
    Another label shape (multi-label) passes its own rows -> examples, label inference and dev/subsample split."""
    _, dev_spec, test_spec = split_specs(cfg)
    train_rows = read_rows(cfg.train, cfg, "train")
    if cfg.labels:
        labels, labels_from = read_labels_file(cfg.labels), "file"
    else:
        labels, labels_from = infer(train_rows), "inferred"
    if not labels:
        raise UserError(f"{cfg.train}: no row has a label (check data.label_field)")
    train = examples(train_rows, labels, labels_from, allow_unlabelled)
    unlabelled = [e for e in train if e.label == UNLABELLED]
    train = [e for e in train if e.label != UNLABELLED]
    test = examples(read_rows(test_spec, cfg, "test"), labels, labels_from)
    if dev_spec:
        dev = examples(read_rows(dev_spec, cfg, "dev"), labels, labels_from)
        source = f"{'split of' if dev_spec.startswith('builtin:') else 'file'} {dev_spec}"
    else:
        if len(train) < 2:
            raise UserError(f"{cfg.train}: {len(train)} labelled example, too few to carve a dev split from; "
                            "add examples or set data.dev")
        n_dev = max(1, round(len(train) * cfg.dev_ratio))
        dev, train = split(train, n_dev, seed)
        source = f"carved from train (dev_ratio={cfg.dev_ratio}, seed={seed}{split_name})"
    unused = []
    if cfg.max_train_examples and cfg.max_train_examples < len(train):
        train, unused = split(train, cfg.max_train_examples, seed)
    splits = Splits(train + unlabelled, dev, test, labels, source, unused)
    check_pairs(splits)
    return splits


# ---------------------------------------------------------------- tokenisation and batching

def encode(tokenizer, texts: list[str], max_length: int, chunk: int = 8192) -> list[list[int]]:
    ids: list[list[int]] = []
    for i in range(0, len(texts), chunk):
        ids.extend(tokenizer(texts[i:i + chunk], truncation=True, max_length=max_length)["input_ids"])
    return ids


def pad(seqs: list, index, width: int | None, value: int,
        pad_to_multiple_of: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(padded ids, attention mask) of rows `index` of `seqs`: as wide as `width` if given, else as the longest
    of them (rounded up to a multiple of pad_to_multiple_of)."""
    if width is None:
        width = max(len(seqs[i]) for i in index)
        if pad_to_multiple_of:
            width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
    out = np.full((len(index), width), value, dtype=np.int64)
    mask = np.zeros((len(index), width), dtype=np.int64)
    for row, i in enumerate(index):
        out[row, :len(seqs[i])] = seqs[i]
        mask[row, :len(seqs[i])] = 1
    return torch.from_numpy(out), torch.from_numpy(mask)


def model_inputs(model, batch: dict, device, non_blocking: bool = False) -> dict:
    """The forward() keyword arguments for `model` from a batch, on `device`: the one place that decides them.

    Pairs come encoded for one input kind (kdnlp/pairs.py): jointly with token_type_ids for transformers, or each
    side on its own (input_ids/attention_mask = first text, input_ids_b/attention_mask_b = second) for a siamese
    model. A batch of the other kind is refused here rather than read wrongly."""
    siamese = getattr(model.config, "siamese", False)
    if siamese != ("input_ids_b" in batch):
        raise ValueError(f"a batch encoded for the {'joint' if siamese else 'per-side'} pair input given to a model "
                         f"that reads {'each side on its own' if siamese else 'single texts or joint pairs'}: "
                         "encode the split with pair_input=input_kind(model)")
    keys = ("input_ids", "attention_mask") + (("input_ids_b", "attention_mask_b") if siamese else ("token_type_ids",))
    keys += ("char_ids",)  # the word tagger's characters per word (students/word_bilstm.py), when the batch has them
    return {k: batch[k].to(device, non_blocking=non_blocking) for k in keys if k in batch}


class EncodedSplit:
    """Token ids of one split under one tokenizer; row i is example i.

    Sentence pairs are tokenised once, for the input kind of the model that reads them (`pair_input`, see
    kdnlp/pairs.py): joint (`ids`, `types`: [CLS] a [SEP] b [SEP]) or per side (`ids` = first texts, `ids_b` =
    second texts, for the siamese BiLSTM). model_inputs() checks that a batch suits its model."""

    def __init__(self, examples: list[Example], tokenizer, max_length: int, pair_input: str = JOINT):
        self.pairs = bool(examples) and getattr(examples[0], "text_b", None) is not None
        self.pair_input = pair_input if self.pairs else None
        texts = [e.text for e in examples]
        if self.pair_input == JOINT:
            self.ids, self.types = encode_pairs(tokenizer, texts, [e.text_b for e in examples], max_length)
            self.lengths = np.array([len(x) for x in self.ids])
        elif self.pair_input == SIDES:  # both sides in one tokenizer pass, then cut in two
            both = encode(tokenizer, texts + [e.text_b for e in examples], max_length)
            self.ids, self.ids_b = both[:len(texts)], both[len(texts):]
            # both sides are padded: sort and budget batches by the two lengths together
            self.lengths = np.array([len(a) + len(b) for a, b in zip(self.ids, self.ids_b)])
        elif self.pairs:
            raise ValueError(f"pair_input: {pair_input!r}; expected {JOINT!r} or {SIDES!r}")
        else:
            self.ids = encode(tokenizer, texts, max_length)
            self.lengths = np.array([len(x) for x in self.ids])
        self.labels = self.encode_labels(examples)
        self.pad_id = tokenizer.pad_token_id or 0

    @staticmethod
    def encode_labels(examples: list[Example]) -> np.ndarray:
        return np.array([e.label for e in examples], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    def collate(self, index: np.ndarray, width: int | None = None,
                pad_to_multiple_of: int | None = None) -> dict[str, torch.Tensor]:
        batch = self.pad_ids(index, width, pad_to_multiple_of)
        batch["labels"] = torch.from_numpy(self.labels[index])
        return batch

    def pad_ids(self, index: np.ndarray, width: int | None = None,
                pad_to_multiple_of: int | None = None) -> dict[str, torch.Tensor]:
        """Dynamic padding: pad to the longest example of this batch only (or to `width`, e.g. max_length).

        pad_to_multiple_of: round the dynamic width up (8 on CUDA: tensor-core friendly shapes, fewer distinct
        shapes); an explicit `width` is kept as given. Pairs also get their token_type_ids (joint) or the second
        side's ids and mask (per side)."""
        input_ids, mask = pad(self.ids, index, width, self.pad_id, pad_to_multiple_of)
        batch = {"input_ids": input_ids, "attention_mask": mask, "index": torch.from_numpy(np.asarray(index))}
        kind = getattr(self, "pair_input", None)  # subclasses (NER, masked LM) have no pairs
        if kind == JOINT:
            batch["token_type_ids"] = pad(self.types, index, input_ids.shape[1], 0)[0]
        elif kind == SIDES:
            batch["input_ids_b"], batch["attention_mask_b"] = pad(self.ids_b, index, width, self.pad_id,
                                                                  pad_to_multiple_of)
        return batch

    def train_batch_indices(self, batch_size: int, rng: random.Random, bucket: int = 50) -> list[list[int]]:
        """Shuffled batches of similar length, as example indices: shuffle, sort within buckets of `bucket` batches,
        shuffle the batches. Indices, not tensors: data-parallel ranks each take a share, then collate()."""
        order = list(range(len(self)))
        rng.shuffle(order)
        batches = []
        span = batch_size * bucket
        for s in range(0, len(order), span):
            chunk = sorted(order[s:s + span], key=lambda i: self.lengths[i])
            batches += [chunk[j:j + batch_size] for j in range(0, len(chunk), batch_size)]
        rng.shuffle(batches)
        return batches

    def eval_batches(self, batch_size: int, fixed_length: int | None = None,
                     shard: tuple[int, int] = (0, 1), max_tokens: int | None = None,
                     pad_to_multiple_of: int | None = None) -> Iterator[dict]:
        """Inference batches sorted by length (longest first); callers restore order with batch['index'].

        max_tokens: pack rows by a token budget instead of `batch_size` rows (see token_budget_batches).
        fixed_length: the seed's way instead, for speed comparisons: file order, every row padded to this width.
        shard=(rank, world): only rows rank, rank+world, ... of that order (disjoint, similar lengths per rank)."""
        for index in self.eval_batch_indices(batch_size, fixed_length, shard, max_tokens, pad_to_multiple_of):
            yield self.collate(index, fixed_length, pad_to_multiple_of)

    def eval_batch_indices(self, batch_size: int, fixed_length: int | None = None, shard: tuple[int, int] = (0, 1),
                           max_tokens: int | None = None, pad_to_multiple_of: int | None = None) -> list[np.ndarray]:
        """The row indices of eval_batches' batches (to collate elsewhere, e.g. in a background thread)."""
        order = np.arange(len(self)) if fixed_length else np.argsort(-self.lengths, kind="stable")
        order = order[shard[0]::shard[1]]
        if max_tokens and not fixed_length:
            return [order[i] for i in token_budget_batches(self.lengths[order], max_tokens, pad_to_multiple_of)]
        return [order[s:s + batch_size] for s in range(0, len(order), batch_size)]

    def n_batches(self, batch_size: int) -> int:
        return (len(self) + batch_size - 1) // batch_size


def token_budget_batches(lengths: np.ndarray, max_tokens: int, pad_to_multiple_of: int | None = None) -> list[np.ndarray]:
    """Positions 0..n-1 of rows with non-increasing `lengths`, cut into consecutive batches whose padded size
    (rows x the first, longest row's width) stays within `max_tokens`: short rows go many to a batch, long rows few.
    A row longer than the budget on its own forms a batch alone."""
    m = pad_to_multiple_of or 1
    out, start, n = [], 0, len(lengths)
    while start < n:
        width = -(-int(lengths[start]) // m) * m
        rows = max(1, max_tokens // max(width, 1))
        out.append(np.arange(start, min(start + rows, n)))
        start += rows
    return out


def prefetch(make: Callable, items: Iterable, depth: int = 2) -> Iterator:
    """make(item) for every item, in order, computed up to `depth` items ahead in ONE background thread, so the
    next batch is collated while the current one trains. One worker calls make() in item order, so anything it
    draws from numpy's global RNG (masked-LM collate) is drawn in the same order as without it. depth 0: inline."""
    if depth <= 0:
        yield from map(make, items)
        return
    items = iter(items)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="collate") as pool:
        pending = deque(pool.submit(make, item) for _, item in zip(range(depth), items))
        try:
            while pending:
                done = pending.popleft()
                for item in items:  # keep `depth` in flight
                    pending.append(pool.submit(make, item))
                    break
                yield done.result()
        finally:  # early stop / error: do not leave work queued
            for f in pending:
                f.cancel()
