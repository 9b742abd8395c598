"""Sentence pairs: finding the two text fields, encoding a pair the way the reading model takes it, and refusing
pairs for a single-text model (and the reverse).

Two input kinds (`input_kind(model)`), each tokenised once per split:
    joint   [CLS] a [SEP] b [SEP] with token types 0/1 (transformers: BERT, MiniLM, ...)
    sides   each text on its own, [CLS] a [SEP] and [CLS] b [SEP] (the siamese BiLSTM, config.siamese)

A model kdnlp trained records what it reads in its config.json (`kdnlp_input`: text_pairs, max_length), so that
`kdnlp predict` and kdnlp.predict can refuse the wrong kind of input and tokenise as in training.
"""
from __future__ import annotations

from .errors import UserError

# (first, second) text fields of sentence-pair datasets (GLUE, CLUE, NLI); data.text_pair_field: auto finds them
PAIR_FIELDS = (("sentence1", "sentence2"), ("question1", "question2"), ("premise", "hypothesis"), ("text_a", "text_b"))
JOINT, SIDES = "joint", "sides"
INPUT_KEY = "kdnlp_input"  # in the model's config.json: {"text_pairs": bool, "max_length": int}


def find_field(keys, name: str):
    """The key among `keys` that is `name` up to case (a header `Sentence1` is sentence1), or None."""
    return next((k for k in keys if isinstance(k, str) and k.lower() == name), None)


def auto_pair_fields(keys) -> tuple[str, str] | None:
    """(first, second) of the first known pair whose two fields are both among `keys`, case-insensitively."""
    for first, second in PAIR_FIELDS:
        a, b = find_field(keys, first), find_field(keys, second)
        if a is not None and b is not None:
            return a, b
    return None


def encode_pairs(tokenizer, a: list[str], b: list[str], max_length: int, chunk: int = 8192):
    """tokenizer(a, b) the standard way: [CLS] a [SEP] b [SEP], token types 0/1, the longer side truncated first.
    Returns (ids, token type ids)."""
    ids, types = [], []
    for i in range(0, len(a), chunk):
        enc = tokenizer(a[i:i + chunk], b[i:i + chunk], truncation="longest_first", max_length=max_length)
        ids.extend(enc["input_ids"])
        types.extend(enc.get("token_type_ids") or [[0] * len(x) for x in enc["input_ids"]])
    return ids, types


def input_kind(model) -> str:
    """How `model` reads a pair: each side on its own (the siamese BiLSTM) or jointly (everything else)."""
    return SIDES if getattr(model.config, "siamese", False) else JOINT


def record_input(model, pairs: bool, max_length: int) -> None:
    """Write into the model's config (saved with it) whether it reads pairs and its max_length: predict reads
    them back, so the model itself says what it takes, with or without the run's config.resolved.yaml."""
    setattr(model.config, INPUT_KEY, {"text_pairs": bool(pairs), "max_length": max_length})


def recorded_input(config) -> dict:
    """What record_input wrote ({} for a model kdnlp did not train, or trained before it was recorded); a
    siamese model reads pairs in any case."""
    found = dict(getattr(config, INPUT_KEY, None) or {})
    if getattr(config, "siamese", False):
        found["text_pairs"] = True
    return found


def check_pair_input(config, texts: list, where) -> None:
    """Refuse sentence pairs for a model that reads single texts, and single texts for a pair model."""
    pairs = recorded_input(config).get("text_pairs")
    if pairs is None:  # not recorded (an imported or older model): nothing to check against
        return
    if pairs and any(isinstance(t, str) for t in texts):
        raise UserError(f"{where}: this model classifies sentence pairs, and a single text was given; give each "
                        "input as --pair A B or two tab-separated columns in --input (Python: (first, second) tuples)")
    if not pairs and any(not isinstance(t, str) for t in texts):
        raise UserError(f"{where}: this model classifies single texts, and a sentence pair was given; give the "
                        "texts one by one (TEXT arguments or one text per line in --input), not --pair")


def check_pairs(splits) -> None:
    """All splits are pairs or none is: a model trained on pairs cannot be tested on single texts."""
    kinds = {name: {e.text_b is not None for e in getattr(splits, name)} for name in ("train", "dev", "test")}
    if any(len(k) > 1 for k in kinds.values()) or len(set.union(*kinds.values())) > 1:
        which = ", ".join(f"{n}: {'pairs' if True in k else 'single texts'}" for n, k in kinds.items())
        raise UserError(f"data: every split must be sentence pairs or single texts, not a mix ({which}); "
                        "check data.text_pair_field and the files")
