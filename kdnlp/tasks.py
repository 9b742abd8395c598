"""What differs between tasks, in one place: data loading, encoding, model classes, dev score, test report.

The Trainer asks `TASKS[cfg.task]` for these and is otherwise task-agnostic.
"""
from __future__ import annotations

import numpy as np

from .data import EncodedSplit, Example, load_splits
from .ner import EncodedTagSplit, TagExample, TokenLogits, entity_metrics, format_entity_report, load_ner_splits
from .losses import DistillLoss, cross_entropy_loss
from .multilabel import MultiLabel
from .pairs import JOINT
from .report import classification_metrics, format_report
from .runtime.decode import ner_words


class Task:
    """What every task shares: how a model is scored on dev during training (Trainer.fit selects on this), the
    teacher's loss (gold labels only) and the student's (gold + teacher term), the HF head's problem_type."""

    gold_loss = staticmethod(cross_entropy_loss)
    distill_loss = DistillLoss
    problem_type = None  # transformers' default: single-label classification

    @classmethod
    def dev_score(cls, trainer, model, data, labels: list[str], batch_size: int) -> float:
        return cls.score(trainer.predict_logits(model, data, batch_size, desc="dev"), data, labels)


class Classification(Task):
    name = "classification"
    metric = "accuracy"
    auto_class_name = "AutoModelForSequenceClassification"
    bert_class_name = "BertForSequenceClassification"

    load_splits = staticmethod(load_splits)

    @staticmethod
    def encode(examples, tokenizer, max_length: int, pair_input: str = JOINT) -> EncodedSplit:
        """pair_input: how the reading model takes sentence pairs (pairs.input_kind(model))."""
        return EncodedSplit(examples, tokenizer, max_length, pair_input)

    @staticmethod
    def score(logits: np.ndarray, data: EncodedSplit, labels: list[str], config=None) -> float:
        return float((logits.argmax(1) == data.labels).mean())

    @staticmethod
    def report(logits: np.ndarray, data: EncodedSplit, labels: list[str], config=None) -> tuple[dict, str]:
        pred = logits.argmax(1)
        return classification_metrics(data.labels, pred, labels), format_report(data.labels, pred, labels)

    @staticmethod
    def unlabelled(texts: list) -> list:
        """Texts, or (first, second) pairs."""
        return [Example(t, 0) if isinstance(t, str) else Example(t[0], 0, text_b=t[1]) for t in texts]


class Ner(Task):
    name = "ner"
    metric = "entity F1"
    auto_class_name = "AutoModelForTokenClassification"
    bert_class_name = "BertForTokenClassification"

    load_splits = staticmethod(load_ner_splits)

    @staticmethod
    def encode(examples, tokenizer, max_length: int, pair_input: str = JOINT) -> EncodedTagSplit:
        # single word sequences only: pair_input does not apply. A word-level tagger's tokenizer names its own
        # split class (students/word_bilstm.py: rows that also carry each word's characters)
        return getattr(tokenizer, "tag_split_class", EncodedTagSplit)(examples, tokenizer, max_length)

    @staticmethod
    def score(logits: TokenLogits, data: EncodedTagSplit, labels: list[str], config=None) -> float:
        from seqeval.metrics import f1_score
        from seqeval.scheme import IOB2
        gold = [[labels[t] for t in s] for s in data.gold]
        pred = [[labels[t] for t in s] for s in data.word_predictions(logits)]
        return float(f1_score(gold, pred, mode="strict", scheme=IOB2, zero_division=0))

    @staticmethod
    def report(logits: TokenLogits, data: EncodedTagSplit, labels: list[str], config=None) -> tuple[dict, str]:
        gold, pred = data.gold, data.word_predictions(logits)
        return entity_metrics(gold, pred, labels), format_entity_report(gold, pred, labels)

    @staticmethod
    def unlabelled(texts: list[str]) -> list:
        """Chinese text -> characters, anything else -> whitespace words; placeholder O tags."""
        words = [ner_words(t) for t in texts]
        return [TagExample(w, [0] * len(w)) for w in words]


TASKS = {"classification": Classification, "ner": Ner, "multilabel": MultiLabel}


def auto_class(task: str):
    import transformers
    return getattr(transformers, TASKS[task].auto_class_name)
