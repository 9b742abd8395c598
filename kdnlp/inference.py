"""Batched inference, mixed into Trainer: every dev evaluation, test report, logit-cache pass, `kdnlp predict`,
`kdnlp bench` and `kdnlp export` parity check goes through predict_logits.

    eval_tokens      the token budget of an inference batch (train.eval_tokens; auto: 65536 on CUDA)
    prefetch_depth   batches collated ahead in a background thread (auto: 2 on CUDA, 0 on the CPU)
    predict_logits   logits for every row of an encoded split, in row order
    forward_batches  the one forward loop under it (also the data.unlabeled / kdnlp label pass: transfer/cache_pass.py)
"""
from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch
from tqdm.auto import tqdm

from .data import EncodedSplit, model_inputs, prefetch
from .distributed import gather_rows
from .ner import IGNORE, TokenLogits


class Inference:
    """Uses the Trainer's cfg, device, accelerator and is_main."""

    # batches collated ahead in a background thread: None = auto, 2 on CUDA (the GPU computes while the CPU collates)
    # and 0 on the CPU, where a collating thread only competes with torch's own threads for the same cores
    # (measured on 2 cores: up to 20% slower epochs with it)
    prefetch_batches: int | None = None

    def _autocast(self):
        return self.accelerator.autocast()  # train.mixed_precision; a no-op for "no"

    def prefetch_depth(self) -> int:
        if self.prefetch_batches is not None:
            return self.prefetch_batches
        return 2 if self.device.type == "cuda" else 0

    def eval_tokens(self, batch_size: int) -> int | None:
        """The token budget of an inference batch: train.eval_tokens, or auto (see TrainConfig.eval_tokens):
        65536 on CUDA, None (batch_size rows, as before) on the CPU, where bigger batches of short rows measured
        slower (the SST-2 cache pass: 580 vs 667 examples/s)."""
        if self.cfg.train.eval_tokens:
            return self.cfg.train.eval_tokens
        return 65536 if self.device.type == "cuda" else None

    @torch.no_grad()
    def predict_logits(self, model, data: EncodedSplit, batch_size: int, desc: str = "predict",
                       device: torch.device | None = None, fixed_padding: bool = False) -> np.ndarray | TokenLogits:
        """Logits for every row of `data`, in row order (batches are length-sorted, then restored).

        Batches are packed by a token budget (eval_tokens(batch_size): on CUDA by default) — many short rows or few
        long ones per batch — or else are `batch_size` rows. Token classifiers give a TokenLogits: per row, the logits of its valid (labelled)
        positions only. With several processes each predicts a disjoint shard and all get the gathered result;
        with an explicit `device` (the CPU speed measurement, kdnlp bench) this process alone predicts
        everything, in fp32, `batch_size` rows at a time.
        fixed_padding: pad every row to data.max_length in file order (the seed's way; for speed comparisons)."""
        local = device is not None
        device = device or self.device
        shard = (0, 1) if local else (self.accelerator.process_index, self.accelerator.num_processes)
        cuda = device.type == "cuda"
        model.eval()
        bar = tqdm(total=len(data), unit="ex", desc=desc, leave=False, disable=None if self.is_main else True)
        fixed_length = self.cfg.data.max_length if fixed_padding else None
        multiple = 8 if cuda and not local else None
        batches = data.eval_batch_indices(batch_size, fixed_length, shard, None if local else self.eval_tokens(batch_size),
                                          multiple)

        def load(index: np.ndarray) -> dict:  # collated in the background; pinned on CUDA for async copies
            batch = data.collate(index, fixed_length, multiple)
            return {k: v.pin_memory() for k, v in batch.items()} if cuda else batch

        pieces = forward_batches(model, prefetch(load, batches, 0 if local else self.prefetch_depth()), device,
                                 self._autocast if not local else nullcontext,
                                 lambda n: bar.update(n * shard[1]))  # examples/s of all processes, not batches/s
        bar.close()
        return gather_rows(pieces, len(data), model.config.num_labels, None if local else self.accelerator)


def forward_batches(model, batches, device: torch.device, autocast=nullcontext, done=lambda n: None) -> list:
    """(example indices, logits) for each collated batch: a (batch, labels) array, or for a token classifier the
    per-row logits of its valid (labelled) positions. gather_rows puts the pieces back in row order."""
    pieces = []
    with torch.no_grad():
        for batch in batches:
            with autocast():
                logits = model(**model_inputs(model, batch, device, non_blocking=device.type == "cuda")).logits
            logits = logits.float().cpu().numpy()
            if logits.ndim == 3:  # keep the valid (labelled) positions of each row
                valid = (batch["labels"] != IGNORE).numpy()
                logits = [logits[b][valid[b]] for b in range(len(logits))]
            pieces.append((batch["index"].numpy(), logits))
            done(len(batch["index"]))
    return pieces
