"""A saved model directory: what kdnlp writes for the teacher, every student and `kdnlp pretrain`, and reads back.

    config.json + model.safetensors   save_pretrained: plain transformers (Auto* classes) load it without kdnlp
    tokenizer files (+ vocab.txt)      the tokenizer the model was trained with
    labels.txt                         class names / tags, one per line, in label-id order (not for a masked LM)
    train_state.json                   dev history and best score at the time of saving
    kdnlp_manifest.json                file sizes, written last (fileio.atomic_dir): a truncated copy is detected

Writes are atomic (a temp dir renamed into place), so a crash leaves the previous checkpoint or the new one.
"""
from __future__ import annotations

import json
from pathlib import Path

from .errors import UserError
from .fileio import atomic_dir, check_manifest, recover_dir
from .tasks import auto_class
from .teacher import load_tokenizer

LABELS_FILE = "labels.txt"
WEIGHT_NAMES = ("model.safetensors", "pytorch_model.bin")


def save_model_dir(model, tokenizer, labels: list[str], path: Path, state: dict) -> None:
    with atomic_dir(path) as tmp:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        if "Bert" in type(tokenizer).__name__ and not (tmp / "vocab.txt").exists():
            # transformers 5 writes only tokenizer.json; keep the BERT-style vocab.txt next to the weights too
            vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
            (tmp / "vocab.txt").write_text("".join(f"{tok}\n" for tok, _ in vocab), encoding="utf-8")
        if labels:  # a classifier's classes / a tagger's tags (a masked LM has none)
            (tmp / LABELS_FILE).write_text("\n".join(labels) + "\n", encoding="utf-8")
        (tmp / "train_state.json").write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")


def load_model_dir(path: Path, task: str = "classification"):
    """(model, tokenizer, labels) from a directory written by save_model_dir; plain transformers loading."""
    from transformers import AutoConfig

    from .students.bilstm import WordTokenizer
    recover_dir(path)  # a save killed between its two renames
    if not (path / "config.json").is_file():
        raise UserError(f"{path}: no trained model here yet (run kdnlp distill, or train-teacher / train-student first)")
    if (problem := check_manifest(path)) is not None:
        raise UserError(f"{path}: checkpoint is damaged ({problem}); retrain it")
    if not (path / LABELS_FILE).is_file():
        raise UserError(f"{path}: no {LABELS_FILE} (not a directory written by kdnlp); retrain or add one class per line")
    labels = (path / LABELS_FILE).read_text(encoding="utf-8").splitlines()
    num_labels = AutoConfig.from_pretrained(str(path)).num_labels
    if num_labels != len(labels):
        raise UserError(f"{path}: config.json has num_labels={num_labels} but {LABELS_FILE} lists "
                        f"{len(labels)} labels; the directory was mixed from two models, retrain it")
    model = auto_class(task).from_pretrained(str(path))
    if (path / WordTokenizer.VOCAB_FILE).is_file():
        tokenizer = WordTokenizer.from_pretrained(path)
    else:
        tokenizer = load_tokenizer(path)
    return model, tokenizer, labels
