"""The pieces Trainer.fit (kdnlp/trainer.py) is built from, so that fit itself reads top to bottom as the loop:

    pick_device, seed_everything     where training runs; the seeded draws (initialisation, shuffling, dropout)
    make_optimizer, linear_schedule  AdamW without weight decay on biases and LayerNorm weights; linear warmup/decay
    optimizer_steps, accumulation    gradient-accumulation arithmetic: steps per run, each batch's group
    labelled_positions               token-level batches (NER, masked LM): the positions that have a label
    RunningLoss                      the epoch's loss and its parts, summed on the device (no per-step host sync)
    EpochProgress                    the progress bar, or a line per tenth of an epoch without a terminal
"""
from __future__ import annotations

import math
import random

import numpy as np
import torch
from tqdm.auto import tqdm

from .errors import UserError
from .ner import IGNORE

NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight")  # parameter names trained without weight decay


def pick_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"train.device: {spec} requested but CUDA is not available (use --device cpu or auto)")
    return torch.device(spec)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_optimizer(model, hp, extra, device: torch.device) -> tuple[torch.optim.AdamW, bool]:
    """(AdamW over the model's parameters and `extra`'s, whether it is fused). `extra`: loss-side parameters
    (intermediate distillation's projections), trained with the model but never saved with it."""
    named = list(model.named_parameters())
    params = [{"params": [p for n, p in named if not n.endswith(NO_DECAY)], "weight_decay": hp.weight_decay},
              {"params": [p for n, p in named if n.endswith(NO_DECAY)], "weight_decay": 0.0}]
    if extra is not None:
        extra.to(device)
        params.append({"params": list(extra.parameters()), "weight_decay": 0.0})
    # fused AdamW: one kernel for the whole update instead of several per parameter (CUDA tensors only)
    fused = device.type == "cuda" and all(p.is_cuda for g in params for p in g["params"])
    return torch.optim.AdamW(params, lr=hp.lr, fused=fused or None), fused


def linear_schedule(optimizer, total_steps: int, warmup: int) -> torch.optim.lr_scheduler.LambdaLR:
    """The learning rate rises linearly over `warmup` optimizer steps, then falls linearly to 0 at the last."""
    def factor(s: int) -> float:
        if s < warmup:
            return (s + 1) / (warmup + 1)
        return max(0.0, (total_steps - s) / max(1, total_steps - warmup))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def optimizer_steps(n_batches: int, epochs: int, processes: int, accum: int) -> int:
    """Optimizer steps in the whole run: each process trains on its share of an epoch's batches (rounded up) and
    steps once per `accum` of them, the epoch's last, shorter group included."""
    return epochs * math.ceil(math.ceil(n_batches / processes) / accum)


def accumulation(i: int, n_batches: int, accum: int) -> tuple[int, bool]:
    """Batch i (0-based) of an epoch of n_batches, in groups of `accum` batches, one optimizer step per group (the
    epoch's last group may be shorter): (its group's size, whether batch i ends the group). Each batch's loss is
    divided by its group's size, so the gradients summed over the group are the gradient of the group's mean."""
    group_start = i // accum * accum
    size = min(accum, n_batches - group_start)
    return size, i + 1 == group_start + size


def labelled_positions(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, labels) of the labelled positions (label != IGNORE) of a token-level batch, in row order: logits
    (rows, length, classes) on the device -> (positions, classes); `labels`: the batch's host copy (rows, length).
    The positions are found on the host: a boolean mask on the device (logits[labels != IGNORE]) makes the host
    wait for the GPU at every step, to learn how many positions the result has."""
    flat = labels.flatten()
    index = (flat != IGNORE).nonzero().squeeze(1)
    return logits.flatten(0, 1)[index.to(logits.device, non_blocking=True)], flat[index]


class RunningLoss:
    """An epoch's training loss and its parts (ce, mse, a layer match, ...), each summed times the batch's rows.

    The sums stay on the device: adding queues device ops and never waits for them; reading (mean(), totals())
    is a host sync, done only at the log interval and at the epoch's end (docs/gpu.md). A part may be missing in
    some batches (a weight scheduled to 0): it is averaged over the rows of the batches that had it."""

    def __init__(self, device: torch.device):
        self.loss = torch.zeros((), dtype=torch.float64, device=device)
        self.rows = 0  # examples (NER: windows), not tokens; counted on the host
        self.parts: dict[str, torch.Tensor] = {}
        self.part_rows: dict[str, int] = {}

    def add(self, loss: torch.Tensor, parts: dict, rows: int) -> None:
        self.loss += loss.detach().double() * rows
        self.rows += rows
        for name, value in parts.items():
            self.parts[name] = self.parts.get(name, 0) + value.detach().double() * rows
            self.part_rows[name] = self.part_rows.get(name, 0) + rows

    def mean(self) -> float:
        """This process's mean loss so far (a host sync)."""
        return self.loss.item() / max(self.rows, 1)

    def totals(self, accelerator) -> tuple[float, int, dict[str, float]]:
        """All processes' (mean loss, rows, mean of each part): one reduce and one read. Every process has the
        same parts in the same order (the same schedule), so the stacked sums line up."""
        names = list(self.parts)
        sums = torch.stack([self.loss, *(self.parts[n] for n in names)])
        counts = sums.new_tensor([self.rows, *(self.part_rows[n] for n in names)])
        reduced = accelerator.reduce(torch.cat([sums, counts]), "sum").tolist()
        (loss, *part_sums), (rows, *part_rows) = reduced[:len(names) + 1], reduced[len(names) + 1:]
        return loss / max(rows, 1), int(rows), {n: s / max(r, 1) for n, s, r in zip(names, part_sums, part_rows)}


class EpochProgress:
    """The epoch's progress: a tqdm bar on a terminal; without one (a log file, nohup, a cluster job) tqdm is off
    and a line is printed per tenth of the epoch. Both show the running loss, a host sync, so not every batch."""

    def __init__(self, name: str, epoch: int, epochs: int, n_batches: int, is_main: bool, processes: int):
        self.name, self.epoch, self.n_batches, self.processes = name, epoch, n_batches, processes
        self.bar = tqdm(total=n_batches, desc=f"{name} epoch {epoch}/{epochs}", disable=None if is_main else True)
        # the batches after which a line is printed: one at each tenth of the epoch (9, or n_batches - 1 if fewer)
        tenths = {math.ceil(k * n_batches / 10) for k in range(1, 10)} - {n_batches}
        self.log_at = tenths if self.bar.disable and is_main else set()
        self.show_every = max(1, min(50, n_batches // 20))

    def update(self, i: int, running: RunningLoss, best_dev: float, seconds: float) -> None:
        """After batch i (0-based); `seconds` since the epoch started."""
        self.bar.update(1)
        if (i + 1) % self.show_every == 0 and not self.bar.disable:
            self.bar.set_postfix(loss=f"{running.mean():.4f}", dev=f"{max(best_dev, 0):.4f}")
        if i + 1 in self.log_at:
            print(f"{self.name} epoch {self.epoch}: batch {i + 1}/{self.n_batches}, loss {running.mean():.4f}, "
                  f"{running.rows * self.processes / seconds:.0f} examples/s", flush=True)

    def close(self) -> None:
        self.bar.close()
