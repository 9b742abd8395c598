"""The student's transfer set with the unlabelled pile: labelled rows in memory, unlabelled rows streamed from disk.

Row i < n_labelled is train_examples[i] (gold label: CE + teacher term); row n_labelled + j is unlabelled row j
of the shards (label UNLABELLED: the teacher term only, see kdnlp/losses.py). Trainer.fit sees the same interface
as an EncodedSplit (n_batches, train_batch_indices, collate, pairs) and teacher logits indexed by row number, so
the training loop is unchanged; a batch's unlabelled texts are read memory-mapped and tokenised when the batch is
collated, so neither the texts nor their encodings are all in RAM.
"""
from __future__ import annotations

import hashlib
import random

import numpy as np
import torch

from ..data import UNLABELLED, Example
from .shards import ShardedRows


class MixedLogits:
    """Teacher logits by row number: the labelled rows' array, then the shards' memory-mapped logits."""

    def __init__(self, labelled: np.ndarray, pile: ShardedRows, pile_sha256: str):
        self.labelled, self.pile, self.pile_sha256 = labelled, pile, pile_sha256

    def __len__(self) -> int:
        return len(self.labelled) + len(self.pile)

    def __getitem__(self, index) -> np.ndarray:
        index = np.asarray(index, dtype=np.int64)
        n = len(self.labelled)
        out = np.empty((len(index), self.labelled.shape[1]), dtype=np.float32)
        own = index < n
        out[own] = self.labelled[index[own]]
        if (~own).any():
            out[~own] = self.pile.logits(index[~own] - n)
        return out

    @property
    def fingerprint(self) -> str:
        """What a --resume state is tied to (checkpoint.run_fingerprint): the labelled logits and the pass."""
        return hashlib.sha256(np.ascontiguousarray(self.labelled).tobytes() + self.pile_sha256.encode()).hexdigest()


class MixedTrainSplit:
    """Trainer.fit's train split over labelled examples + the pile (see the module docstring)."""

    def __init__(self, task, examples: list, pile: ShardedRows, tokenizer, max_length: int, pair_input: str):
        self.task, self.examples, self.pile = task, examples, pile
        self.tokenizer, self.max_length, self.pair_input = tokenizer, max_length, pair_input
        labelled = task.encode(examples, tokenizer, max_length, pair_input)
        self.pairs = getattr(labelled, "pairs", False)
        self.n_labelled = len(labelled)
        # length buckets: the student's tokens for labelled rows, the teacher's (recorded by the pass) for the pile
        self.lengths = np.concatenate([np.asarray(labelled.lengths, dtype=np.int32), pile.lengths()])

    def __len__(self) -> int:
        return self.n_labelled + len(self.pile)

    def n_batches(self, batch_size: int) -> int:
        return (len(self) + batch_size - 1) // batch_size

    def train_batch_indices(self, batch_size: int, rng: random.Random, bucket: int = 50) -> list[np.ndarray]:
        """EncodedSplit.train_batch_indices with numpy index arrays: shuffle, sort within buckets of `bucket`
        batches by length, shuffle the batches (no Python list of a million row numbers)."""
        order = np.random.default_rng(rng.getrandbits(63)).permutation(len(self))
        span, batches = batch_size * bucket, []
        for s in range(0, len(order), span):
            chunk = order[s:s + span]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches += [chunk[j:j + batch_size] for j in range(0, len(chunk), batch_size)]
        rng.shuffle(batches)
        return batches

    def collate(self, index, width: int | None = None, pad_to_multiple_of: int | None = None) -> dict:
        index = np.asarray(index, dtype=np.int64)
        pile_rows = iter(self.pile.texts(index[index >= self.n_labelled] - self.n_labelled))
        examples = [self.examples[i] if i < self.n_labelled else
                    (lambda t: Example(t[0], UNLABELLED, text_b=t[1]))(next(pile_rows)) for i in index.tolist()]
        batch = self.task.encode(examples, self.tokenizer, self.max_length, self.pair_input).collate(
            np.arange(len(index)), width, pad_to_multiple_of)
        batch["index"] = torch.from_numpy(index)
        return batch


class UnlabeledTransferSet:
    """What train_student passes to fit as `train_examples`: fit calls encode() instead of task.encode."""

    def __init__(self, examples: list, pile: ShardedRows):
        self.examples, self.pile = examples, pile

    def __len__(self) -> int:
        return len(self.examples) + len(self.pile)

    def encode(self, task, tokenizer, max_length: int, pair_input: str) -> MixedTrainSplit:
        return MixedTrainSplit(task, self.examples, self.pile, tokenizer, max_length, pair_input)
