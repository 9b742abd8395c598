"""The output layer of a classifier or tagger: found once here for the head rules of kdnlp/teacher.py (rows kept by
label name, or drawn afresh) and the prior-bias init of kdnlp/multilabel.py, which would otherwise import each other."""
from __future__ import annotations

from .errors import UserError


def output_layer(model, n: int, key: str):
    """The one Linear that produces the n class scores (outside the encoder)."""
    from torch import nn
    base = getattr(model, model.base_model_prefix, None)
    in_base = {id(m) for m in base.modules()} if base is not None and base is not model else set()
    heads = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == n and id(m) not in in_base]
    if len(heads) != 1:
        raise UserError(f"{key}: cannot find the one output layer of {type(model).__name__} to put its "
                        f"labels in the data's order; list data.labels in the teacher's order instead")
    return heads[0]
