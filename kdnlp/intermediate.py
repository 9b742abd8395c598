"""Intermediate-layer distillation (`distill.intermediate`) for BERT students: match hidden states, attention maps
and embeddings of chosen teacher layers, on top of the logit loss of losses.DistillLoss.

Layers are numbered like transformers' `hidden_states`: 0 = the embedding output, i = the output of layer i (1..n).
An `attention` match at layer i compares layer i's attention probabilities (all heads; heads must agree).

Presets, for a k-layer student and an n-layer teacher with the uniform mapping g(i) = i * n // k (TinyBERT):
    uniform     hidden MSE, student layer i <-> teacher layer g(i), i = 1..k
    tinybert    embeddings MSE (0 <-> 0) + uniform hidden MSE + attention MSE at the same pairs
    distilbert  cosine distance between the last hidden states (k <-> n)

Where widths differ, a learned linear projection maps the student's features to the teacher's width. It is trained
with the student (and kept in the resume state) but is not part of the saved student: the student stays a plain
transformers model. The teacher's hidden states are computed on the fly for every batch (nothing is cached: caching
them would take layers x tokens x width floats per example).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .errors import UserError

PRESETS = ("uniform", "tinybert", "distilbert")
FEATURES = ("hidden", "attention", "embedding")
LOSSES = ("mse", "cosine")
KEYS = {"teacher_layer", "student_layer", "feature", "loss", "weight"}


@dataclass
class LayerMatch:
    teacher_layer: int
    student_layer: int
    feature: str = "hidden"
    loss: str = "mse"
    weight: float = 1.0

    @property
    def name(self) -> str:
        return f"{self.feature}{self.student_layer}-{self.teacher_layer}"


def check_intermediate(spec) -> str | None:
    """What is wrong with a `distill.intermediate` value (None when it is fine)."""
    if isinstance(spec, str):
        return None if spec in PRESETS else f"'{spec}' is not a preset (use {'|'.join(PRESETS)} or a list of matches)"
    if not isinstance(spec, list) or not spec:
        return "use a preset name or a non-empty list of {teacher_layer, student_layer, feature, loss, weight}"
    for i, m in enumerate(spec):
        if not isinstance(m, dict):
            return f"entry {i} must be a mapping, got {m!r}"
        if unknown := set(m) - KEYS:
            return f"entry {i}: unknown key '{sorted(unknown)[0]}' (valid: {', '.join(sorted(KEYS))})"
        feature = m.get("feature", "hidden")
        if feature not in FEATURES:
            return f"entry {i}: feature '{feature}' (use {'|'.join(FEATURES)})"
        if m.get("loss", "mse") not in LOSSES:
            return f"entry {i}: loss '{m.get('loss')}' (use {'|'.join(LOSSES)})"
        for key in ("teacher_layer", "student_layer"):
            v = m.get(key, 0 if feature == "embedding" else None)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                return f"entry {i}: {key} must be a layer number >= 0 (0 = embeddings), got {v!r}"
        w = m.get("weight", 1.0)
        if not isinstance(w, (int, float)) or isinstance(w, bool) or w < 0:
            return f"entry {i}: weight must be a number >= 0, got {w!r}"
    return None


def layer_matches(spec, n_teacher: int, n_student: int) -> list[LayerMatch]:
    """The matches of a preset or an explicit list, checked against the models' layer counts."""
    if spec in PRESETS:
        pairs = [(n_teacher * i // n_student, i) for i in range(1, n_student + 1)]
        if spec == "distilbert":
            return [LayerMatch(n_teacher, n_student, "hidden", "cosine")]
        matches = [LayerMatch(t, s, "hidden") for t, s in pairs]
        if spec == "tinybert":
            matches = [LayerMatch(0, 0, "embedding")] + matches + [LayerMatch(t, s, "attention") for t, s in pairs]
        return matches
    matches = [LayerMatch(**{"teacher_layer": 0, "student_layer": 0, **m}) for m in spec]
    for m in matches:
        if m.feature == "embedding" and (m.teacher_layer, m.student_layer) != (0, 0):
            raise UserError(f"distill.intermediate: feature embedding is layer 0 of both models, got {m.name}")
        low = 1 if m.feature == "attention" else 0
        if not low <= m.teacher_layer <= n_teacher or not low <= m.student_layer <= n_student:
            raise UserError(f"distill.intermediate: {m.feature} match student layer {m.student_layer} <-> teacher layer "
                            f"{m.teacher_layer} is out of range (student {low}..{n_student}, teacher {low}..{n_teacher})")
    return matches


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` (batch, length, ...) over the positions where mask (batch, length) is 1."""
    mask = mask.to(values.dtype).reshape(*mask.shape, *([1] * (values.dim() - 2))).expand_as(values)
    return (values * mask).sum() / mask.sum().clamp(min=1)


class LayerLoss(nn.Module):
    """Weighted sum of the matches' losses; owns the width projections (its only parameters)."""

    def __init__(self, matches: list[LayerMatch], student_width: int, teacher_width: int):
        super().__init__()
        self.matches = matches
        needs_projection = student_width != teacher_width
        self.projections = nn.ModuleDict({m.name: nn.Linear(student_width, teacher_width) for m in matches
                                          if needs_projection and m.feature != "attention"})

    def forward(self, student, teacher, attention_mask: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """`student` / `teacher`: model outputs with hidden_states (and attentions when matched)."""
        total, parts = 0.0, {}
        for m in self.matches:
            if m.feature == "attention":
                s, t = student.attentions[m.student_layer - 1].float(), teacher.attentions[m.teacher_layer - 1].float()
                # (batch, heads, query, key) -> (batch, query, heads, key): padded queries are masked out
                s, t = s.transpose(1, 2), t.transpose(1, 2)
            else:
                s, t = student.hidden_states[m.student_layer].float(), teacher.hidden_states[m.teacher_layer].float()
                if m.name in self.projections:
                    s = self.projections[m.name](s)
            if m.loss == "mse":
                value = _masked_mean((s - t) ** 2, attention_mask)
            else:
                value = _masked_mean(1 - F.cosine_similarity(s, t, dim=-1), attention_mask)
            total = total + m.weight * value
            parts[m.name] = value.detach()  # read by fit once per epoch, not here (a host sync)
        return total, parts


class IntermediateDistiller:
    """The student loss with intermediate matches: logit_loss(...) + sum of weighted layer losses.

    Plugs into Trainer.fit through `forward_kwargs` (ask the student for hidden states / attentions),
    `batch_loss` (gets the student outputs and the batch, runs the frozen teacher) and `extra_module`."""

    def __init__(self, logit_loss, teacher, student, spec):
        self.logit_loss = logit_loss
        n_t, n_s = teacher.config.num_hidden_layers, student.config.num_hidden_layers
        matches = layer_matches(spec, n_t, n_s)
        self.attention = any(m.feature == "attention" for m in matches)
        if self.attention:
            if teacher.config.num_attention_heads != student.config.num_attention_heads:
                raise UserError(f"distill.intermediate: attention matches need equal head counts (teacher "
                                f"{teacher.config.num_attention_heads}, student {student.config.num_attention_heads})")
            for model in (teacher, student):  # sdpa kernels return no attention probabilities
                model.set_attn_implementation("eager")
        self.teacher = teacher.eval().requires_grad_(False)
        self.extra_module = LayerLoss(matches, student.config.hidden_size, teacher.config.hidden_size)
        self.forward_kwargs = {"output_hidden_states": True, "output_attentions": self.attention}
        self.needs_teacher = logit_loss.needs_teacher

    def start_step(self, step: int, total_steps: int) -> None:
        self.logit_loss.start_step(step, total_steps)

    def batch_loss(self, outputs, inputs: dict, logits, labels, teacher_logits):
        total, parts = self.logit_loss(logits, labels, teacher_logits)
        device = inputs["input_ids"].device
        if next(self.teacher.parameters()).device != device:
            self.teacher.to(device)
        with torch.no_grad():
            teacher_out = self.teacher(**inputs, **self.forward_kwargs)
        layer_total, layer_parts = self.extra_module(outputs, teacher_out, inputs["attention_mask"])
        return total + layer_total, {**parts, **layer_parts}
