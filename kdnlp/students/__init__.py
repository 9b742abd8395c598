"""Student registry: a new student = one file exposing `build(cfg, ctx) -> (model, tokenizer)` + one line here.

Every student (and the teacher) is a transformers PreTrainedModel whose forward returns an object with
`.logits`: that is the whole interface the Trainer relies on, so no adaptor functions are needed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from .. import pooling  # noqa: F401  (registers the mean-pooled teacher, kdnlp-bert-mean, with the Auto* classes)
from . import bilstm, fastbert, pretrained, static, theseus, transformer, truncated_bert, word_bilstm


@dataclass
class StudentContext:
    labels: list[str]
    train_texts: Iterable[str]                # every training text, then data.unlabeled's (streamed): iterate, don't index
    teacher_tokenizer: Callable[[], object]   # the teacher's tokenizer (cheap: no weights)
    fine_tuned_teacher: Callable[[], object]  # loads the fine-tuned teacher's weights (only when a student needs them)
    has_teacher_model: bool = True            # False: the teacher is only teacher.outputs (no model, no tokenizer)


STUDENTS: dict[str, Callable] = {
    "bilstm": bilstm.build,
    "bert": truncated_bert.build,
    "fastbert": fastbert.build,
    "theseus": theseus.build,
    "static": static.build,
    "transformer": transformer.build,
    "pretrained": pretrained.build,
    "word_bilstm": word_bilstm.build,
}

# Students whose training has stages of their own: fit(trainer, model, tokenizer, loss_fn, teacher_logits,
# train_examples) runs Trainer.fit once per stage and leaves the final model in <output_dir>/<student.name>.
STAGED_TRAINING: dict[str, Callable] = {
    "fastbert": fastbert.fit,
    "theseus": theseus.fit,
}
