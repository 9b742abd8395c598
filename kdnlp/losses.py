"""Student loss = alpha * CE(student, gold) + T * D(student, teacher).

`T` is the weight of the teacher term (the seed's name); the softmax temperature is `temperature`.
D is MSE between logits (Tang et al. 2019, default) or Hinton's KL between temperature-softened
distributions multiplied by temperature^2 (so gradients keep their scale as the temperature changes).

Both terms are per-example losses averaged over the batch. Rows whose label is IGNORE (-100) — augmented transfer-set
examples, which have no gold label — contribute only T * D: total = mean_i(alpha * CE_i * [gold_i] + T * D_i).
Without such rows this is exactly alpha * mean CE + T * mean D.

Schedules: alpha, T and temperature are constant unless `<key>_end` is set, in which case they move linearly from
`<key>` at the first step to `<key>_end` at the last (Trainer.fit calls start_step before every step; the step is
part of fit's resume state, so a resumed run continues the schedule where it stopped).

Every loss returns (total, parts): the parts (ce, mse, ...) are detached tensors, never Python floats, so that
computing them does not wait for the GPU (a .item() is a host sync); Trainer.fit sums them on the device and reads
them once per epoch (kdnlp/loop.py, RunningLoss).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import DistillConfig
from .ner import IGNORE  # -100: no gold label (PyTorch's ignore_index)


def teacher_term(student_logits: torch.Tensor, teacher_logits: torch.Tensor, loss: str, temperature: float) -> torch.Tensor:
    """D(student, teacher) per distill.loss: mse on logits; kl (single-label) between the temperature-softened
    softmaxes; bce (multi-label) of the student's logits / t against the teacher's sigmoid(logits / t), each label
    its own two-class distribution. kl and bce are x temperature^2 (gradients keep their scale)."""
    if loss == "mse":
        return F.mse_loss(student_logits, teacher_logits)
    t = temperature
    if loss == "bce":
        return F.binary_cross_entropy_with_logits(student_logits / t, torch.sigmoid(teacher_logits / t)) * t * t
    return F.kl_div(F.log_softmax(student_logits / t, dim=-1), F.log_softmax(teacher_logits / t, dim=-1),
                    reduction="batchmean", log_target=True) * t * t


def scheduled(start: float, end: float | None, progress: float) -> float:
    """`start` when `end` is None (constant), else linear from start (progress 0) to end (progress 1)."""
    return start if end is None else start + (end - start) * progress


class DistillLoss:
    """Callable (student_logits, gold labels, teacher logits or None) -> (total, parts for logging)."""

    def __init__(self, cfg: DistillConfig):
        self.cfg = cfg
        self.start_step(0, 1)

    @property
    def needs_teacher(self) -> bool:
        return self.cfg.T > 0 or (self.cfg.T_end or 0) > 0

    def start_step(self, step: int, total_steps: int) -> None:
        """Set alpha, T and temperature for training step `step` (0-based) of `total_steps`."""
        c = self.cfg
        progress = min(1.0, step / max(1, total_steps - 1))
        self.alpha = scheduled(c.alpha, c.alpha_end, progress)
        self.T = scheduled(c.T, c.T_end, progress)
        self.temperature = scheduled(c.temperature, c.temperature_end, progress)

    # the gold term's name in the logged parts, and the teacher term's (multilabel: "bce" and "teacher_<loss>")
    gold_part = "ce"

    def teacher_part(self) -> str:
        return self.cfg.loss

    @staticmethod
    def gold_term(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # sum over gold rows / all rows: an augmented row (label -100) adds no CE but still counts in the mean
        return F.cross_entropy(logits, labels, ignore_index=IGNORE, reduction="sum") / max(len(labels), 1)

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor | None):
        logits = logits.float()
        total = logits.new_zeros(())
        parts = {}
        if self.alpha > 0:
            gold = self.gold_term(logits, labels)
            total = total + self.alpha * gold
            parts[self.gold_part] = gold.detach()
        if self.T > 0:
            d = teacher_term(logits, teacher_logits.float(), self.cfg.loss, self.temperature)
            total = total + self.T * d
            parts[self.teacher_part()] = d.detach()
        return total, parts


def cross_entropy_loss(logits: torch.Tensor, labels: torch.Tensor, _teacher_logits=None):
    ce = F.cross_entropy(logits.float(), labels)
    return ce, {"ce": ce.detach()}
