"""Logits -> answers, torch-free; the same arithmetic as kdnlp.predictor (tests/test_runtime.py compares them).

NER: a text is split into words by ner_words (kdnlp.tasks.Ner.unlabelled uses it too) (Chinese: characters, spaces dropped;
anything else: whitespace words), and an entity carries both its word span (`start`, `end`: what `kdnlp predict`
gives) and its character span in the original text (`char_start`, `char_end`: text[char_start:char_end]).
"""
from __future__ import annotations

import numpy as np

from ..tokenization import is_chinese


def ner_words(text: str) -> list[str]:
    """Chinese text -> characters (spaces dropped), anything else -> whitespace words (also Ner.unlabelled's split)."""
    return list(text.replace(" ", "")) if is_chinese(text) else text.split()


def word_offsets(text: str, words: list[str]) -> list[tuple[int, int]]:
    """(start, end) of each word in `text`, searching left to right (the words are its pieces, in order)."""
    out, pos = [], 0
    for w in words:
        start = text.index(w, pos)
        pos = start + len(w)
        out.append((start, pos))
    return out


def entities(tokens: list[str], tags: list[str]) -> list[dict]:
    """Entity spans (word offsets, end exclusive) from IOB2 tags; a stray I- starts an entity."""
    out, cur = [], None
    for i, tag in enumerate(tags + ["O"]):
        if cur and (tag == "O" or tag.startswith("B-") or tag[2:] != cur["type"]):
            cur["end"] = i
            out.append(cur)
            cur = None
        if tag != "O" and cur is None:
            cur = {"type": tag[2:], "start": i}
    for e in out:
        e["text"] = ("" if all(len(t) == 1 for t in tokens[e["start"]:e["end"]]) else " ").join(tokens[e["start"]:e["end"]])
    return out


def entities_with_offsets(text: str, tokens: list[str], tags: list[str]) -> list[dict]:
    spans = word_offsets(text, tokens)
    found = entities(tokens, tags)
    for e in found:
        e["char_start"], e["char_end"] = spans[e["start"]][0], spans[e["end"] - 1][1]
    return found


def softmax(logits: np.ndarray) -> np.ndarray:
    probs = np.exp(logits - logits.max(1, keepdims=True))
    return probs / probs.sum(1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(logits, -50, 50)))


def classification(shown: list[dict], logits: np.ndarray, labels: list[str]) -> list[dict]:
    probs = softmax(logits)
    best = probs.argmax(1).tolist()
    return [{**s, "label": labels[k], "probability": p[k], "probabilities": dict(zip(labels, p))}
            for s, p, k in zip(shown, probs.tolist(), best)]


def multilabel(shown: list[dict], logits: np.ndarray, labels: list[str], thresholds: np.ndarray) -> list[dict]:
    probs = sigmoid(logits)
    chosen = probs >= thresholds[None, :]
    return [{**s, "labels": [lab for lab, on in zip(labels, row) if on],
             "probabilities": {label: float(x) for label, x in zip(labels, p)}}
            for s, p, row in zip(shown, probs, chosen)]
