"""Data parallelism with Hugging Face Accelerate: one process per GPU (or per CPU slot with gloo).

`accelerate launch distill.py ...` / `torchrun ... -m kdnlp ...` start N processes; each builds the same Trainer.
Single-process runs use the same code with one "rank": every helper below is then the identity.

    make_accelerator()   the Accelerator and the device of this process; resolves train.mixed_precision
    shard_batches()      this rank's share of an epoch's batch list (equal counts on every rank)
    gather_rows()        per-rank (example index, logits) pieces -> one array in example order, on every rank
    quiet_other_ranks()  only the main process prints
"""
from __future__ import annotations

import os
import sys

import numpy as np
import torch
from accelerate import Accelerator

from .errors import UserError
from .ner import TokenLogits


def launched() -> bool:
    """True under accelerate launch / torchrun with more than one process (they set WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def resolve_mixed_precision(spec: str, device: torch.device) -> str:
    """train.mixed_precision -> Accelerate's no|fp16|bf16. `auto` keeps kdnlp's old default: bf16 on CUDA GPUs
    that support it, fp32 elsewhere."""
    if spec == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "no"
    if spec == "fp16" and device.type != "cuda":
        raise UserError("train.mixed_precision: fp16 needs a CUDA device (use bf16 or no on CPU)")
    return spec


def make_accelerator(mixed_precision: str, device: torch.device, **tracking) -> tuple[Accelerator, torch.device]:
    """The Accelerator and this process's device.

    One process: `device` is the configured one (train.device, e.g. cuda:1), exactly as without Accelerate.
    Several processes: Accelerate's device, cuda:<local rank>, or the CPU (gloo) for train.device: cpu or
    `accelerate launch --cpu`. We place models ourselves (device_placement=False) so both cases share one path."""
    accelerator = Accelerator(mixed_precision=resolve_mixed_precision(mixed_precision, device),
                              cpu=launched() and device.type == "cpu", device_placement=False,
                              **tracking)  # train.report_to: log_with + project_dir (kdnlp/tracking.py)
    if accelerator.num_processes > 1:
        device = accelerator.device
    return accelerator, device


def shard_batches(batches: list, rank: int, world: int) -> list:
    """Batches rank, rank+world, ... of an epoch's batch list, which every rank drew identically (same seed).

    DDP needs every rank to run the same number of steps (each backward all-reduces), so the list is first
    wrapped around to a multiple of `world`: at most world-1 batches from the epoch's start are seen twice, the
    same choice as torch's DistributedSampler. Nothing is dropped, and one process gets the list unchanged."""
    if world == 1 or not batches:
        return batches
    n = -(-len(batches) // world) * world
    return [batches[i % len(batches)] for i in range(rank, n, world)]


def gather_rows(pieces: list, n_rows: int, n_labels: int,
                accelerator: Accelerator | None = None) -> np.ndarray | TokenLogits:
    """Reassemble per-batch (example indices, logits) pieces from every rank into example order.

    Each piece's logits are a (batch, labels) array, or for token classification a list of per-row
    (valid positions, labels) arrays. Ranks predict disjoint rows (eval_batches(shard=...)), so after
    gather_for_metrics every row appears exactly once: no padding duplicates to strip. Every rank gets the
    result (dev scores, hence early-stopping decisions, agree everywhere). accelerator=None: this process's
    pieces only."""
    if accelerator is not None:
        pieces = accelerator.gather_for_metrics(pieces, use_gather_object=True)
    seen = np.zeros(n_rows, dtype=np.int64)
    ragged = any(isinstance(logits, list) for _, logits in pieces)
    out = [None] * n_rows if ragged else np.zeros((n_rows, n_labels), dtype=np.float32)
    for index, logits in pieces:
        seen[index] += 1
        if ragged:
            for i, row in zip(index.tolist(), logits):
                out[i] = row
        else:
            out[index] = logits
    if (seen != 1).any():
        raise RuntimeError(f"gathered predictions cover rows {int((seen > 0).sum())}/{n_rows} "
                           f"with {int((seen > 1).sum())} duplicated: the ranks' shards do not partition the data")
    return TokenLogits.from_rows(out, n_labels) if ragged else out


def quiet_other_ranks(accelerator: Accelerator) -> None:
    """Only the main process prints progress and reports; the others keep stderr for errors."""
    if not accelerator.is_main_process:
        sys.stdout = open(os.devnull, "w")
