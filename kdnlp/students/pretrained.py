"""PretrainedStudent (`student.type: pretrained`, `student.pretrained: <dir | package:... | hub id>`): a separately
pretrained encoder (a small MiniLM, DistilBERT, TinyBERT, a RoBERTa ...) as the student, with ITS OWN tokenizer.

The recipe behind DistilBERT, TinyBERT and MiniLM: a small model already pretrained, taught by a large fine-tuned
teacher. The checkpoint is found by the teacher's rule (teacher.locate: a local directory, a package path or a hub
id) and loaded through AutoModelFor<Task> + AutoTokenizer, in fp32 whatever dtype it was stored in. Its head is
new unless the checkpoint's own head names the data's labels (the teacher.pretrained rule, teacher.keep_head).

Why its own tokenizer works: Trainer.fit tokenises the student's batches with the tokenizer build() returns, and
the teacher's cached logits are per example (classification, pairs, multi-label), so they apply as they are. NER's
cache is one vector per word, re-cut to the student's windows by ner.realign_word_logits (in Trainer.fit). The student is saved with
its own tokenizer (save_pretrained), so predict, kdnlp.load, export and bench read it like any other model.
"""
from __future__ import annotations

from ..errors import UserError
from ..pooling import choose_pooling, declared_pooling, to_mean_pooled
from ..teacher import (_head_labels, fp32, fresh_head, from_hub, keep_head, load_tokenizer, locate, reorder_head,
                       source_config)

KEY = "student.pretrained"


def load(spec: str, labels: list[str], task: str, by_index: bool = False):
    """(model in fp32 with a head for `labels`, its own tokenizer) from a pretrained checkpoint."""
    import transformers

    from ..tasks import TASKS  # local, as in teacher.load_pretrained_teacher (tasks imports the data modules)
    resolved, path = locate(spec, KEY)
    config = source_config(spec, KEY)
    tokenizer = load_tokenizer(path) if path is not None else from_hub(
        KEY, spec, lambda: transformers.AutoTokenizer.from_pretrained(resolved))
    label_kw = dict(num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={lab: i for i, lab in enumerate(labels)})
    auto = getattr(transformers, TASKS[task].auto_class_name)
    try:  # ignore_mismatched_sizes: a head for another number of labels is replaced by a fresh one
        model = from_hub(KEY, spec, lambda: auto.from_pretrained(resolved, ignore_mismatched_sizes=True,
                                                                 **label_kw, **fp32()))
    except ValueError as e:  # e.g. a config class the Auto* mapping has no head for
        raise UserError(f"{KEY}: {spec} has no {TASKS[task].auto_class_name} ({str(e).splitlines()[0][:150]}); "
                        f"use an encoder checkpoint (BERT, RoBERTa, DistilBERT, ...)") from None
    old = _head_labels(config)
    if old is not None:  # a checkpoint fine-tuned elsewhere: keep its head only where its label names say which row is which
        perm = keep_head(old, labels, by_index)
        if perm is not None:
            reorder_head(model, perm, KEY)
        elif len(old) == len(labels):  # same shape, so from_pretrained kept rows that mean other classes
            fresh_head(model, len(labels))
    if task != "ner" and choose_pooling("auto", declared_pooling(path), model, spec) == "mean":
        print(f"student: {spec} declares mean pooling (sentence-transformers); its head reads the mean of the tokens")
        model = to_mean_pooled(model)
    return model, tokenizer


def same_tokenizer(a, b, texts: list[str]) -> bool:
    """Whether two tokenizers give the same ids (same vocabulary, same pieces on these texts): then a batch of one
    is a batch of the other, position by position (what intermediate-layer losses need)."""
    if a.get_vocab() != b.get_vocab():
        return False
    return a(texts)["input_ids"] == b(texts)["input_ids"] if texts else True


def build(cfg, ctx):
    model, tokenizer = load(cfg.student.pretrained, ctx.labels, cfg.task, cfg.data.labels is not None)
    print(f"pretrained student: {cfg.student.pretrained} ({model.config.model_type}, "
          f"{getattr(model.config, 'num_hidden_layers', '?')} layers, hidden {getattr(model.config, 'hidden_size', '?')}, "
          f"{model.num_parameters() / 1e6:.1f}M parameters), its own tokenizer ({type(tokenizer).__name__}, "
          f"{len(tokenizer)} tokens)")
    return model, tokenizer
