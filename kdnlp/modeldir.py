"""A saved model directory: what kdnlp writes for the teacher, every student and `kdnlp pretrain`, and reads back.

    config.json + model.safetensors   save_pretrained: plain transformers (Auto* classes) load it without kdnlp
    tokenizer files (+ vocab.txt)      the tokenizer the model was trained with
    labels.txt                         class names / tags, one per line, in label-id order (not for a masked LM)
    train_state.json                   dev history and best score at the time of saving
    kdnlp_manifest.json                file sizes, written last (fileio.atomic_dir): a truncated copy is detected

Writes are atomic (a temp dir renamed into place), so a crash leaves the previous checkpoint or the new one.
"""
from __future__ import annotations

import copy
import json
import threading
import time
from pathlib import Path
from typing import Callable

from .errors import UserError
from .fileio import atomic_dir, check_manifest, recover_dir
from .tasks import auto_class
from .teacher import load_tokenizer

LABELS_FILE = "labels.txt"
WEIGHT_NAMES = ("model.safetensors", "pytorch_model.bin")


def save_model_dir(model, tokenizer, labels: list[str], path: Path, state: dict, weights: dict | None = None,
                   config=None) -> None:
    """`weights` and `config`: a state dict and a config to write instead of the model's current ones
    (BackgroundSaver's snapshots, taken when the save was asked for)."""
    with atomic_dir(path) as tmp:
        model.save_pretrained(str(tmp), state_dict=weights)
        if config is not None:  # replaces the config.json save_pretrained wrote from the live model.config
            config.save_pretrained(str(tmp))
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
    from .tokenization.static import FILE as STATIC_TOKENIZER, StaticTokenizer
    from .students.word_bilstm import FILE as WORD_TAGGER_FILE, WordTagTokenizer
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
    if (path / STATIC_TOKENIZER).is_file():
        tokenizer = StaticTokenizer.from_pretrained(path)
    elif (path / WordTokenizer.VOCAB_FILE).is_file():
        tokenizer = WordTokenizer.from_pretrained(path)
    elif (path / WORD_TAGGER_FILE).is_file():
        tokenizer = WordTagTokenizer.from_pretrained(path)
    else:
        tokenizer = load_tokenizer(path)
    return model, tokenizer, labels


def config_snapshot(model):
    """A copy of model.config as save_pretrained would write it now: training goes on changing the live one (a
    multi-label dev evaluation rewrites its thresholds), and the copy must match the weights copied with it."""
    config = copy.deepcopy(model.config)
    config.dtype = str(model.dtype).split(".")[1]  # what save_pretrained records: "float32"
    config.architectures = [type(model).__name__]
    return config


def cpu_snapshot(model) -> dict:
    """A CPU copy of the model's state dict that training cannot change; tied weights stay one shared tensor."""
    copies: dict = {}
    out = {}
    for name, t in model.state_dict().items():
        key = (t.data_ptr(), t.dtype, tuple(t.shape), t.stride())
        if key not in copies:
            copies[key] = t.detach().to("cpu", copy=True)
        out[name] = copies[key]
    return out


class BackgroundSaver:
    """Best-checkpoint saves that do not stall training: save() copies the weights to the CPU and the config (the
    only part the training loop waits for) and writes the directory (save_model_dir: atomic, manifest, fsync) in a
    thread: what is written is the model as it was when save() was called, whatever training does meanwhile.

    One write at a time: save() and wait() first finish the previous one. wait() must run before anything reads
    the directory (the end of fit, the resume state that records this best score). A failed write is raised by
    the next save()/wait(). The thread is not a daemon: Ctrl-C still lets a started write finish."""

    def __init__(self, name: str = "checkpoint", card: Callable[[Path], None] | None = None):
        self.name, self.card = name, card  # card(path): writes the model card once the folder is saved
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.stall_seconds = 0.0  # training time spent in save(): the CPU copies
        self.write_seconds = 0.0  # background time spent writing
        self.saves = 0

    def save(self, model, tokenizer, labels: list[str], path: Path, state: dict) -> None:
        self.wait()
        t0 = time.perf_counter()
        weights, config = cpu_snapshot(model), config_snapshot(model)
        state = json.loads(json.dumps(state))  # training goes on changing the live dict
        self.stall_seconds += time.perf_counter() - t0
        self.saves += 1

        def write():
            t1 = time.perf_counter()
            try:
                save_model_dir(model, tokenizer, labels, path, state, weights, config)
                if self.card is not None:
                    self.card(path)
            except BaseException as e:  # re-raised in the training thread by wait()
                self._error = e
            self.write_seconds += time.perf_counter() - t1

        self._thread = threading.Thread(target=write, name=f"save {path.name}")
        self._thread.start()

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def summary(self) -> str:
        return (f"{self.name}: {self.saves} checkpoint save(s), training paused {self.stall_seconds:.2f}s for the "
                f"CPU copies, {self.write_seconds:.2f}s of writing in the background")
