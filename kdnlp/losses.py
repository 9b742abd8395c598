"""Student loss = alpha * CE(student, gold) + T * D(student, teacher).

`T` is the weight of the teacher term (the seed's name); the softmax temperature is `temperature`.
D is MSE between logits (Tang et al. 2019, default) or Hinton's KL between temperature-softened
distributions multiplied by temperature^2 (so gradients keep their scale as the temperature changes).

Both terms are per-example losses averaged over the batch. Rows whose label is IGNORE (-100) — augmented transfer-set
examples, which have no gold label — contribute only T * D: total = mean_i(alpha * CE_i * [gold_i] + T * D_i).
Without such rows this is exactly alpha * mean CE + T * mean D.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import DistillConfig
from .ner import IGNORE  # -100: no gold label (PyTorch's ignore_index)


def teacher_term(student_logits: torch.Tensor, teacher_logits: torch.Tensor, loss: str, temperature: float) -> torch.Tensor:
    if loss == "mse":
        return F.mse_loss(student_logits, teacher_logits)
    t = temperature
    return F.kl_div(F.log_softmax(student_logits / t, dim=-1), F.log_softmax(teacher_logits / t, dim=-1),
                    reduction="batchmean", log_target=True) * t * t


class DistillLoss:
    """Callable (student_logits, gold labels, teacher logits or None) -> (total, parts for logging)."""

    def __init__(self, cfg: DistillConfig):
        self.cfg = cfg

    @property
    def needs_teacher(self) -> bool:
        return self.cfg.T > 0

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor | None):
        logits = logits.float()
        total = logits.new_zeros(())
        parts = {}
        if self.cfg.alpha > 0:
            # sum over gold rows / all rows: an augmented row (label -100) adds no CE but still counts in the mean
            ce = F.cross_entropy(logits, labels, ignore_index=IGNORE, reduction="sum") / max(len(labels), 1)
            total = total + self.cfg.alpha * ce
            parts["ce"] = ce.item()
        if self.cfg.T > 0:
            d = teacher_term(logits, teacher_logits.float(), self.cfg.loss, self.cfg.temperature)
            total = total + self.cfg.T * d
            parts[self.cfg.loss] = d.item()
        return total, parts


def cross_entropy_loss(logits: torch.Tensor, labels: torch.Tensor, _teacher_logits=None):
    ce = F.cross_entropy(logits.float(), labels)
    return ce, {"ce": ce.item()}
