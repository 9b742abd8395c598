"""teacher.outputs: soft targets made anywhere (an API, an LLM, an ensemble, `kdnlp label` on another machine).

Two file shapes:

    outputs.jsonl   optional first line {"labels": [...]} naming the columns; then one object per example:
                    {"text": ... [, "text_b": ...] | "id": ..., "logits": [...] | "probs": [...]}; the numbers are a
                    list (in the header's order, else data label order) or a {label: value} mapping
    outputs.npy     rows x labels (data label order), with teacher.outputs_ids: one text (or data id) per line
                    (a sentence pair: both texts, tab-separated)

task: multilabel (independent sigmoids) takes the same shapes: "logits" are per-label pre-sigmoid values, "probs"
per-label probabilities, each in [0, 1] and not summing to 1, made logits by log(p / (1 - p)) (clipped), so
sigmoid(logit / t) is the teacher's probability at temperature t for distill.loss: bce. kdnlp label writes the
model's task in the header ({"labels": [...], "task": "multilabel"}); a file whose task is not the config's is
refused (softmax logits read as sigmoids, or the reverse, would train silently on the wrong targets).

Texts are matched after Unicode NFC normalisation and trimming, on both sides (an API or a macOS tool may write
'café' decomposed); a sentence pair is keyed by both its texts, never by the first alone (in RTE, 210 train pairs
share their first sentence). Probabilities become logits as log(p) (softmax(log p / t) = p^(1/t) renormalised: the
temperature still applies), so the student trains on them exactly as on cached logits. Every problem is one
UserError naming the line; a text given twice with different values names both lines.
"""
from __future__ import annotations

import json
import math
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import UserError
from .readers import lines, records_json  # JSON lines with their line numbers, one clear error per bad line
from .teacher import match_labels

PROB_TOLERANCE = 1e-3  # |sum(probs) - 1| allowed (rounded API outputs)
REPEAT_TOLERANCE = 1e-4  # repeated rows this close are the same values (see _check_repeats)
MIN_PROB = 1e-7        # log(0) = -inf: a hard 0 becomes this before the log (multi-label: 1 - p clipped too)
TASKS = {"classification": "softmax over the labels", "multilabel": "an independent sigmoid per label"}


@dataclass
class TeacherOutputs:
    path: str
    kind: str                    # "logits" | "probs" (as supplied; `logits` holds log-probs for probs)
    keys: list[str]              # per row: the text or the data id it belongs to
    key_kind: str                # "text" | "id"
    logits: np.ndarray           # rows x labels, data label order, float32
    where: list[str]             # per row: "<path> line N" for messages
    task: str = "classification" # "multilabel": probs were made logits by log(p / (1 - p))

    def lookup(self) -> dict[str, int]:
        """key -> first row with that key (_finish has checked that repeated keys repeat the same values)."""
        index: dict[str, int] = {}
        for i, k in enumerate(self.keys):
            index.setdefault(k, i)
        return index


def text_key(text: str, text_b: str | None = None) -> str:
    """What a row and an example are matched by: NFC, trimmed; a pair's two texts joined by a tab."""
    norm = lambda t: unicodedata.normalize("NFC", t).strip()
    return norm(text) if text_b is None else f"{norm(text)}\t{norm(text_b)}"


def example_key(e, key_kind: str) -> str:
    return str(e.id) if key_kind == "id" else text_key(e.text, e.text_b)


def _values(raw, where: str, order: list[str], labels: list[str]) -> list[float]:
    """One row's numbers in data label order, from a list (in `order`) or a {label: value} mapping."""
    if isinstance(raw, dict):
        if set(raw) != set(labels):
            missing = [lab for lab in labels if lab not in raw]
            extra = [k for k in raw if k not in labels]
            raise UserError(f"{where}: labels {missing[:5] or ''}{' missing' if missing else ''}"
                            f"{'; ' if missing and extra else ''}{extra[:5] or ''}{' not in the data' if extra else ''}"
                            f" (the data's labels: {labels[:12]})")
        return [raw[lab] for lab in labels]
    if not isinstance(raw, list):
        raise UserError(f"{where}: expected a list of {len(labels)} numbers or a {{label: number}} mapping")
    if len(raw) != len(labels):
        raise UserError(f"{where}: {len(raw)} values but the data has {len(labels)} labels ({', '.join(labels[:12])})")
    if order is labels:
        return raw
    by_name = dict(zip(order, raw))
    return [by_name[lab] for lab in labels]


def _check_row(values: list, where: str, kind: str, task: str) -> None:
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise UserError(f"{where}: {kind} must be numbers")
    if not all(math.isfinite(v) for v in values):
        raise UserError(f"{where}: {kind} contain NaN or infinity")
    if kind == "probs" and task == "multilabel":  # independent per-label probabilities: no sum to check
        if min(values) < 0 or max(values) > 1:
            raise UserError(f"{where}: multi-label probs must each be in [0, 1] (got {min(values):.4g} .. "
                            f"{max(values):.4g}); give logits instead")
    elif kind == "probs":
        if min(values) < 0 or abs(sum(values) - 1) > PROB_TOLERANCE:
            raise UserError(f"{where}: probs must be >= 0 and sum to 1 (they sum to {sum(values):.4f}); "
                            "give logits instead, or normalise them")


def _check_task(header: dict, where: str, task: str) -> None:
    """The header's "task" (kdnlp label writes it) must be the config's: a header without one is accepted."""
    given = header.get("task")
    if given is None or given == task:
        return
    if given not in TASKS:
        raise UserError(f"{where}: header \"task\": {given!r} is not one of {', '.join(TASKS)}")
    raise UserError(f"{where}: the file holds {given} outputs ({TASKS[given]}) but the config's task is {task}; "
                    f"label with a {task} teacher, or set task: {given}")


def _header_order(header: dict, where: str, labels: list[str], by_index: bool) -> list[str]:
    """The columns' class names in data-label terms. The names must be the data's (any order); generic LABEL_i
    names (kdnlp label on a checkpoint without names) map by index when data.labels gives the order: the rule
    teacher.fine_tuned uses (match_labels)."""
    order = header.get("labels")
    if not isinstance(order, list) or not all(isinstance(x, str) for x in order):
        raise UserError(f"{where}: the header must be {{\"labels\": [class names in column order]}}")
    perm = match_labels(order, labels, f"{where}: the header", by_index)  # data label i = column perm[i]
    named = [""] * len(order)
    for i, column in enumerate(perm):
        named[column] = labels[i]
    return named


def read_outputs(path: str, labels: list[str], outputs_type: str = "auto", ids_path: str | None = None,
                 by_index: bool = False, task: str = "classification") -> TeacherOutputs:
    """Read and validate a teacher.outputs file (every row), without looking at the data yet; `task`: the
    config's (classification | multilabel), which fixes what probs mean."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"teacher.outputs: {path} not found (a .jsonl of teacher outputs, e.g. written by kdnlp label)")
    if p.suffix == ".npy":
        return _read_npy(p, labels, outputs_type, ids_path, task)
    keys, rows, where, kinds, key_kinds = [], [], [], set(), set()
    order = labels
    for line_at, rec in records_json(p, lines(p), "jsonl"):
        at = f"{path} {line_at}"
        if not isinstance(rec, dict):
            raise UserError(f"{at}: expected an object like {{\"text\": ..., \"logits\": [...]}}")
        if not rows and "labels" in rec and not ({"logits", "probs"} & set(rec)):
            _check_task(rec, at, task)
            order = _header_order(rec, at, labels, by_index)
            continue
        kind = [k for k in ("logits", "probs") if k in rec]
        if len(kind) != 1:
            raise UserError(f"{at}: give exactly one of \"logits\" or \"probs\"")
        key = "id" if "id" in rec else "text" if "text" in rec else None
        if key is None or not isinstance(rec[key], (str, int)) or (key == "text" and not str(rec[key]).strip()):
            raise UserError(f"{at}: each row needs a non-empty \"text\" (or the example's \"id\")")
        if key == "text" and not isinstance(rec.get("text_b", ""), str):
            raise UserError(f"{at}: \"text_b\" (a pair's second text) must be a string")
        values = _values(rec[kind[0]], at, order, labels)
        _check_row(values, at, kind[0], task)
        kinds.add(kind[0])
        key_kinds.add(key)
        keys.append(text_key(str(rec["text"]), rec.get("text_b") or None) if key == "text" else str(rec[key]))
        rows.append(values)
        where.append(at)
    if not rows:
        raise UserError(f"{path}: no teacher outputs")
    if len(kinds) > 1 or len(key_kinds) > 1:
        raise UserError(f"{path}: mixes {' and '.join(sorted(kinds | key_kinds))} rows; use one kind throughout")
    kind, = kinds
    if outputs_type != "auto" and outputs_type != kind:
        raise UserError(f"{path}: rows give {kind} but teacher.outputs_type is {outputs_type}")
    return _finish(path, kind, keys, key_kinds.pop(), np.asarray(rows, dtype=np.float64), where, task)


def _read_npy(p: Path, labels: list[str], outputs_type: str, ids_path: str | None, task: str) -> TeacherOutputs:
    try:
        array = np.load(p, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise UserError(f"{p}: not a readable .npy array ({e})") from None
    if array.ndim != 2 or array.shape[1] != len(labels):
        raise UserError(f"{p}: shape {list(array.shape)}, expected [rows, {len(labels)}] (one column per data label, "
                        "in data label order)")
    ids_file = Path(ids_path or "")
    if not ids_file.is_file():
        raise UserError(f"teacher.outputs_ids: {ids_path} not found (one text or data id per line, row i = line i)")
    keys = [text_key(*line.split("\t", 1)) for line in ids_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(keys) != len(array):
        raise UserError(f"{ids_file}: {len(keys)} non-empty lines but {p} has {len(array)} rows")
    looks = outputs_type == "auto" and _looks_like_probs(array, task)
    kind = "probs" if outputs_type == "probs" or looks else "logits"
    if looks:  # regressing probabilities as logits (mse) would be silently wrong
        shape = "in [0, 1]" if task == "multilabel" else ">= 0 and sums to 1"
        print(f"teacher outputs: every row of {p} is {shape}, so they are read as probabilities "
              "(set teacher.outputs_type: logits if they are logits)")
    where = [f"{p} row {i}" for i in range(len(array))]
    for i, row in enumerate(array):
        _check_row(row.tolist(), where[i], kind, task)
    return _finish(str(p), kind, keys, "text", array.astype(np.float64), where, task)


def _looks_like_probs(array: np.ndarray, task: str) -> bool:
    """Rows that are all >= 0 and each sum to 1 (multi-label: every value in [0, 1]): probabilities (real logits
    almost never are; a multi-label model's logits are mostly negative)."""
    if not (np.isfinite(array).all() and (array >= 0).all()):
        return False
    if task == "multilabel":
        return bool((array <= 1).all())
    return bool(np.allclose(array.sum(1), 1.0, rtol=0, atol=PROB_TOLERANCE))


def _check_repeats(keys: list[str], values: np.ndarray, where: list[str], key_kind: str) -> None:
    """A text (or id) given twice must repeat the same values: which one would win is otherwise undefined. "The same"
    within REPEAT_TOLERANCE: a model run over one text in two batches differs in the last float bits (padding)."""
    first: dict[str, int] = {}
    for i, k in enumerate(keys):
        j = first.setdefault(k, i)
        if j != i and not np.allclose(values[i], values[j], rtol=REPEAT_TOLERANCE, atol=REPEAT_TOLERANCE):
            raise UserError(f"{where[i]}: {key_kind} {k[:80]!r} was already given different values at {where[j]}; "
                            "keep one row per example (identical repeats are fine)")


def probs_to_logits(probs: np.ndarray, task: str) -> np.ndarray:
    """softmax: log p (softmax(log p / t) = p^(1/t) renormalised); multi-label: the logit log(p / (1 - p)), the
    inverse of each label's sigmoid, with p clipped to [MIN_PROB, 1 - MIN_PROB] (|logit| <= 16.1)."""
    if task == "multilabel":
        p = np.clip(probs, MIN_PROB, 1 - MIN_PROB)
        return np.log(p) - np.log1p(-p)
    return np.log(np.clip(probs, MIN_PROB, None))


def _finish(path, kind, keys, key_kind, values: np.ndarray, where, task: str) -> TeacherOutputs:
    _check_repeats(keys, values, where, key_kind)
    logits = probs_to_logits(values, task) if kind == "probs" else values
    return TeacherOutputs(path, kind, keys, key_kind, logits.astype(np.float32), where, task)


def align(outputs: TeacherOutputs, train: list, others: list, strict: bool = True) -> np.ndarray:
    """Rows of `outputs` for each training example, in train order.

    Every training example must have an output; every output must belong to an example of the data files (train, dev
    or test, including train rows that data.max_train_examples leaves out: labelling a whole file is fine, the rows
    not trained on are simply not used). A .npy's ids may be texts or,
    when the data has ids, data ids. strict=False (data.unlabeled: the file also labels the unlabelled pile):
    outputs beyond the data are allowed."""
    key_kind = outputs.key_kind
    if key_kind == "text" and any(e.id is not None for e in train) and outputs.path.endswith(".npy"):
        ids = {str(e.id) for e in train}
        if all(k in ids for k in outputs.keys[:50]):
            key_kind = "id"
    key_of = lambda e: example_key(e, key_kind)
    if key_kind == "text" and any(e.text_b is not None for e in train) and not any("\t" in k for k in outputs.keys):
        raise UserError(f"{outputs.path}: the data are sentence pairs but its rows give one text; key each row by both "
                        "texts (\"text\" and \"text_b\"; in a .npy's ids, tab-separated) or by the example's \"id\"")
    if key_kind == "id" and any(e.id is None for e in train):
        raise UserError(f"{outputs.path}: rows refer to examples by \"id\" but the training data has no ids "
                        "(set data.id_field to the id column, or give \"text\" instead)")
    index = outputs.lookup()
    rows = np.empty(len(train), dtype=np.int64)
    missing = [e for e in train if key_of(e) not in index]
    if missing:
        shown = key_of(missing[0])
        raise UserError(f"{outputs.path}: no teacher output for {len(missing)} of {len(train)} training examples, e.g. "
                        f"{key_kind} {shown[:80]!r}; label them (kdnlp label) or remove them from data.train")
    for i, e in enumerate(train):
        rows[i] = index[key_of(e)]
    known = {key_of(e) for e in train} | {key_of(e) for e in others if key_kind == "text" or e.id is not None}
    for k, at in zip(outputs.keys, outputs.where):
        if strict and k not in known:
            raise UserError(f"{at}: {key_kind} {k[:80]!r} is not in the data (train, dev or test); "
                            "outputs must belong to the data's examples")
    return outputs.logits[rows]


def check_loss(outputs: TeacherOutputs, loss: str) -> None:
    if outputs.kind == "probs" and loss == "mse" and outputs.task == "multilabel":
        # logit(p) inverts the sigmoid, but rounded or clipped p near 0 or 1 become arbitrary logits (0.0000 -> -16)
        raise UserError(f"{outputs.path}: gives probabilities; distill.loss: mse regresses logits, and near 0 or 1 "
                        "rounded probabilities give arbitrary ones, so set distill.loss: bce (against the "
                        "probabilities), or teacher.outputs_type: logits if they are logits")
    if outputs.kind == "probs" and loss == "mse":
        raise UserError(f"{outputs.path}: gives probabilities; distill.loss: mse matches logits, so set "
                        "distill.loss: kl (KL on the probabilities, with distill.temperature), or "
                        "teacher.outputs_type: logits if they are logits")


def header_line(labels: list[str], task: str) -> str:
    """kdnlp label's first line: the columns' names and the task of the model (predictor.model_task)."""
    return json.dumps({"labels": labels, "task": task}, ensure_ascii=False)


def output_line(key: dict, logits) -> str:
    """One row of kdnlp label's file: {"text" [, "text_b"] | "id": ..., "logits": [...]}."""
    # float32 -> float keeps every bit: the reader's float32 cast gives back exactly these logits
    return json.dumps({**key, "logits": [float(x) for x in logits]}, ensure_ascii=False)
