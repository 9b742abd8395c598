"""TruncatedBertStudent: a k-layer copy of the fine-tuned teacher (embeddings, chosen layers, pooler, classifier).

The result is a plain transformers model of the teacher's class with num_hidden_layers=k, so
`AutoModelForSequenceClassification.from_pretrained(student_dir)` loads it without kdnlp.
"""
from __future__ import annotations

import re

from ..errors import UserError

_LAYER_KEY = re.compile(r"^(.*\bencoder\.layer\.)(\d+)(\..*)$")


def select_layers(n_teacher: int, k: int, selection) -> list[int]:
    """`first` -> 0..k-1; `alternate` -> evenly spaced (12->6 gives 0,2,4,6,8,10); or an explicit list."""
    if isinstance(selection, list):
        bad = [i for i in selection if not 0 <= i < n_teacher]
        if bad:
            raise UserError(f"student.layer_selection: layer {bad[0]} is out of range for a {n_teacher}-layer teacher (0..{n_teacher - 1})")
        return list(selection)
    if k > n_teacher:
        raise UserError(f"student.num_layers: {k} is more than the teacher's {n_teacher} layers")
    if selection == "first":
        return list(range(k))
    return [i * n_teacher // k for i in range(k)]


def student_layers(student_cfg, n_teacher: int, default_k: int | None = 6) -> list[int]:
    """The teacher layers the student keeps: an explicit layer_selection list, else num_layers of them
    (num_layers unset: `default_k`, or the teacher's full depth when default_k is None — fastbert's default)."""
    sel = student_cfg.layer_selection
    k = len(sel) if isinstance(sel, list) else (student_cfg.num_layers or default_k or n_teacher)
    return select_layers(n_teacher, k, sel)


def truncate(teacher, layers: list[int]):
    """A new model of the teacher's class holding only `layers` (student layer i = teacher layer layers[i])."""
    config = teacher.config.__class__.from_dict(teacher.config.to_dict())
    config.num_hidden_layers = len(layers)
    config.kdnlp_teacher_layers = list(layers)
    student = type(teacher)(config)
    state = {}
    for key, value in teacher.state_dict().items():
        m = _LAYER_KEY.match(key)
        if m is None:
            state[key] = value.clone()
        elif int(m.group(2)) in layers:
            state[f"{m.group(1)}{layers.index(int(m.group(2)))}{m.group(3)}"] = value.clone()
    student.load_state_dict(state, strict=True)
    return student


def build(cfg, ctx):
    teacher = ctx.fine_tuned_teacher()
    return truncate(teacher, student_layers(cfg.student, teacher.config.num_hidden_layers)), ctx.teacher_tokenizer()
