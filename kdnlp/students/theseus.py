"""BERT-of-Theseus (Xu et al., 2020): k successor layers learn to replace blocks of the fine-tuned teacher's layers.

The student is a k-layer copy of the teacher (students/truncated_bert.py, layers by student.layer_selection).
  1. replacing  teacher layers are cut into k consecutive blocks (12 -> 6: pairs). In every training forward each
                block is run either as the teacher's frozen layers (the predecessor) or, with probability p, as its
                successor layer; embeddings, pooler and classifier are the teacher's and stay frozen. p is
                student.replacing_rate (constant) or goes linearly from it to 1 (replacing_schedule: linear).
                Dev is evaluated with the successor alone. -> <output_dir>/<name>_replacing
  2. successor  the best successor is fine-tuned alone, all of it (student.successor_epochs; 0 = skip)
                -> <output_dir>/<name>
Both results are plain k-layer BERT models (`from_pretrained` loads them without kdnlp): the predecessor layers
are never registered in the model, so they are neither saved nor in the resume state (they are rebuilt from the
teacher, and p from the resumed step).
"""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..errors import UserError
from ..tasks import auto_class
from .truncated_bert import student_layers, truncate


class TheseusLayers(nn.ModuleList):
    """Stands in for `encoder.layer` during replacing: holds (and saves) the k successor layers; in training mode,
    iterating it yields block i as the successor layer with probability `p`, else as the predecessor's layers."""

    def __init__(self, successor: nn.ModuleList, predecessor_blocks: list[list[nn.Module]]):
        super().__init__(successor)
        # a plain list: not submodules, so not in state_dict / parameters() / save_pretrained
        self.predecessor_blocks = [nn.ModuleList(b).eval().requires_grad_(False) for b in predecessor_blocks]
        self.p = 1.0

    def _apply(self, fn, recurse=True):  # .to(device) moves the predecessor too
        for block in self.predecessor_blocks:
            block._apply(fn)
        return super()._apply(fn, recurse)

    def __iter__(self):
        successor = list(super().__iter__())
        if not self.training:
            yield from successor
            return
        replace = torch.rand(len(successor)) < self.p  # the global torch RNG: seeded and resumed with the run
        for i, layer in enumerate(successor):
            if replace[i]:
                yield layer
            else:
                yield from self.predecessor_blocks[i]


def blocks(n_teacher: int, k: int) -> list[range]:
    """k consecutive blocks of teacher layers (as equal as possible): 12, 6 -> [0,1], [2,3], ... [10,11]."""
    return [range(i * n_teacher // k, (i + 1) * n_teacher // k) for i in range(k)]


class ReplacementSchedule:
    """The stage-1 loss: the configured distillation loss, plus setting p before each step."""

    def __init__(self, loss_fn, layers: TheseusLayers, p0: float, schedule: str):
        self.loss_fn, self.layers, self.p0, self.schedule = loss_fn, layers, p0, schedule
        self.needs_teacher = loss_fn.needs_teacher

    def rate(self, step: int, total_steps: int) -> float:
        if self.schedule == "constant":
            return self.p0
        return min(1.0, self.p0 + (1.0 - self.p0) * step / max(1, total_steps - 1))

    def start_step(self, step: int, total_steps: int) -> None:
        self.layers.p = self.rate(step, total_steps)
        self.loss_fn.start_step(step, total_steps)

    def __call__(self, logits, labels, teacher_logits):
        loss, parts = self.loss_fn(logits, labels, teacher_logits)
        if not loss.requires_grad:  # this step drew the predecessor for every block: nothing trainable was used
            loss = loss + 0.0 * sum(p.sum() for p in self.layers.parameters())  # zero gradient, backward() works
        return loss, parts


def build(cfg, ctx):
    """The successor (a k-layer copy of the teacher) with TheseusLayers holding the teacher's blocks."""
    teacher = ctx.fine_tuned_teacher()
    n = teacher.config.num_hidden_layers
    layers = student_layers(cfg.student, n)
    if len(layers) >= n:
        raise UserError(f"student.num_layers: theseus needs fewer layers than the teacher's {n}, got {len(layers)}")
    model = truncate(teacher, layers)
    if not hasattr(model, "bert"):
        raise UserError(f"student.type theseus: the teacher must be a BERT model, got {type(teacher).__name__}")
    model.requires_grad_(False)  # embeddings, pooler, classifier: the predecessor's, frozen while replacing
    model.bert.encoder.layer.requires_grad_(True)
    model.bert.encoder.layer = TheseusLayers(model.bert.encoder.layer,
                                             [[teacher.bert.encoder.layer[j] for j in b] for b in blocks(n, len(layers))])
    return model, ctx.teacher_tokenizer()


def fit(trainer, model, tokenizer, loss_fn, teacher_logits, train_examples):
    cfg, st = trainer.cfg, trainer.cfg.student
    name = st.name
    successor_epochs = st.epochs if st.successor_epochs is None else st.successor_epochs
    replacing_dir = trainer.out / (f"{name}_replacing" if successor_epochs else name)
    schedule = ReplacementSchedule(loss_fn, model.bert.encoder.layer, st.replacing_rate, st.replacing_schedule)
    print(f"theseus stage 1/2: replacing, p = {st.replacing_rate}"
          + (" -> 1 (linear)" if st.replacing_schedule == "linear" else " (constant)")
          + f", {st.epochs} epochs -> {replacing_dir}")
    trainer.fit(model, tokenizer, schedule, st, replacing_dir, f"{name} replacing", teacher_logits, train_examples)
    if not successor_epochs:
        return
    successor = auto_class(cfg.task).from_pretrained(str(replacing_dir))  # the best successor on dev, plain BERT
    hp = dataclasses.replace(st, epochs=successor_epochs)
    print(f"theseus stage 2/2: successor fine-tuned alone ({successor_epochs} epochs)")
    trainer.fit(successor, tokenizer, loss_fn, hp, trainer.out / name, name, teacher_logits, train_examples)
