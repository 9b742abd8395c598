"""TruncatedBertStudent: a k-layer copy of the fine-tuned teacher (embeddings, chosen layers, pooler, classifier).

The result is a plain transformers model of the teacher's class with num_hidden_layers=k, so
`AutoModelForSequenceClassification.from_pretrained(student_dir)` loads it without kdnlp.
"""
from __future__ import annotations

from ..errors import UserError

# config entries holding one value per layer (ModernBERT's layer_types, Longformer's attention_window)
PER_LAYER_KEYS = ("layer_types", "attention_window")


def find_layers(model) -> str:
    """Dotted name of the model's one list of transformer layers (e.g. `bert.encoder.layer`,
    `distilbert.transformer.layer`, `model.layers`): the only nn.ModuleList with num_hidden_layers entries.

    Found by shape, not by name, so every family that keeps its layers in one list works; raises UserError
    when there is no such list (ALBERT shares one layer group, Funnel has blocks) or more than one."""
    from torch import nn
    n = model.config.num_hidden_layers
    found = [name for name, m in model.named_modules() if isinstance(m, nn.ModuleList) and len(m) == n
             and len({type(layer) for layer in m}) == 1]
    if len(found) != 1:
        kind = model.config.model_type
        why = "no list of" if not found else f"{len(found)} lists of"
        raise UserError(f"teacher model_type '{kind}' ({type(model).__name__}): {why} {n} transformer layers to copy "
                        f"from, so it cannot be truncated; use student.type: bilstm, or a teacher of a family that "
                        f"keeps its layers in one list (bert, roberta, xlm-roberta, deberta-v2, electra, distilbert)")
    return found[0]


def check_truncatable(config) -> None:
    """Raise UserError (one line naming the family and what to do) when a teacher with this transformers config
    cannot be cut into a student of some of its layers (student.type bert, theseus, fastbert).

    Needs only the config (e.g. AutoConfig.from_pretrained(teacher dir)): the model is built on the meta device
    (no memory, no weights), so the fail-fast checks can call it before any training."""
    if not isinstance(getattr(config, "num_hidden_layers", None), int):
        raise UserError(f"teacher model_type '{config.model_type}': its config has no num_hidden_layers, so it "
                        f"cannot be truncated; use student.type: bilstm")
    import torch
    from transformers import AutoModel
    try:
        with torch.device("meta"):
            model = AutoModel.from_config(config)
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"teacher model_type '{config.model_type}': transformers cannot build it "
                        f"({str(e).splitlines()[0][:120]}); use student.type: bilstm") from None
    find_layers(model)


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


def student_layers(student_cfg, n_teacher: int) -> list[int]:
    """The teacher layers the student keeps: an explicit layer_selection list, else num_layers of them
    (unset only for fastbert, whose default is the teacher's full depth; the others' default is filled in by
    config.py's DEFAULT_STUDENT_LAYERS)."""
    sel = student_cfg.layer_selection
    k = len(sel) if isinstance(sel, list) else (student_cfg.num_layers or n_teacher)
    return select_layers(n_teacher, k, sel)


def truncate(teacher, layers: list[int]):
    """A new model of the teacher's class holding only `layers` (student layer i = teacher layer layers[i])."""
    n = teacher.config.num_hidden_layers
    prefix = find_layers(teacher) + "."
    config = teacher.config.__class__.from_dict(teacher.config.to_dict())
    config.num_hidden_layers = len(layers)  # DistilBERT's n_layers too (its attribute_map)
    for key in PER_LAYER_KEYS:  # a list with one entry per layer follows the layers it describes
        value = getattr(config, key, None)
        if isinstance(value, list) and len(value) == n:
            setattr(config, key, [value[i] for i in layers])
    config.kdnlp_teacher_layers = list(layers)
    student = type(teacher)(config)
    state = {}
    for key, value in teacher.state_dict().items():
        if not key.startswith(prefix):
            state[key] = value.clone()
            continue
        index, rest = key[len(prefix):].split(".", 1)
        if int(index) in layers:
            state[f"{prefix}{layers.index(int(index))}.{rest}"] = value.clone()
    student.load_state_dict(state, strict=True)
    return student


def build(cfg, ctx):
    teacher = ctx.fine_tuned_teacher()
    return truncate(teacher, student_layers(cfg.student, teacher.config.num_hidden_layers)), ctx.teacher_tokenizer()
