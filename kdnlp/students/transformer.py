"""TransformerStudent (`student.type: transformer`): a BERT of a shape you choose (`student.config`: BertConfig fields
such as num_hidden_layers, hidden_size, num_attention_heads, intermediate_size), trained from scratch.

It is the task's own BertFor<Task> class (tasks.py bert_class_name), so pairs (one joint sequence with token types),
multi-label and NER work as for the teacher, and the saved student loads with plain transformers. It reads the
teacher's tokenizer, and starts from the teacher's word embeddings: copied when the widths match, else their PCA to
hidden_size (the static student's `pca`, one implementation). Everything else is randomly initialised.
"""
from __future__ import annotations

import numpy as np
import torch

from ..teacher import random_teacher_config
from .static import pca

# shape fields taken from the teacher unless student.config sets them: inputs the teacher's tokenizer produces
# (positions up to its max length, its token types) must fit the student's embeddings
INHERITED = ("max_position_embeddings", "type_vocab_size")


def student_config(fields: dict | None, teacher_config, vocab_size: int, pad_token_id: int, labels: list[str]):
    """The student's BertConfig: student.config over the teacher's input shape (INHERITED) and vocabulary size."""
    inherited = {k: getattr(teacher_config, k) for k in INHERITED
                 if isinstance(getattr(teacher_config, k, None), int) and k not in (fields or {})}
    return random_teacher_config(fields, where="student.config", **inherited, vocab_size=vocab_size,
                                 pad_token_id=pad_token_id, num_labels=len(labels), id2label=dict(enumerate(labels)),
                                 label2id={lab: i for i, lab in enumerate(labels)})


def word_embeddings(teacher_weights: np.ndarray, width: int) -> np.ndarray:
    """The teacher's word embeddings at the student's width: as they are when the widths match, else projected on
    their top principal components (a wider student gets all the teacher's components; the rest stay random)."""
    if teacher_weights.shape[1] == width:
        return teacher_weights
    return pca(teacher_weights, min(width, teacher_weights.shape[1]))


def build(cfg, ctx):
    import transformers

    from ..tasks import TASKS  # local, as in teacher.build_random_teacher
    teacher = ctx.fine_tuned_teacher()
    tokenizer = ctx.teacher_tokenizer()
    weights = teacher.get_input_embeddings().weight.detach().float().numpy()
    config = student_config(cfg.student.config, teacher.config, weights.shape[0], tokenizer.pad_token_id or 0,
                            ctx.labels)
    model = getattr(transformers, TASKS[cfg.task].bert_class_name)(config)
    vectors = word_embeddings(weights, config.hidden_size)
    how = "copied" if vectors is weights else f"PCA {weights.shape[1]} -> {vectors.shape[1]}"
    print(f"transformer student: {config.num_hidden_layers} layers, hidden {config.hidden_size}, "
          f"{config.num_attention_heads} heads; the teacher's word embeddings {how}")
    with torch.no_grad():
        model.get_input_embeddings().weight[:, :vectors.shape[1]] = torch.from_numpy(np.ascontiguousarray(vectors))
    return model, tokenizer
