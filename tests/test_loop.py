"""The training loop's pieces (kdnlp/loop.py) and its promises on a GPU, checked on the CPU: no per-step host read
(issue 21, item 7), the accumulation arithmetic, and a background checkpoint that keeps the config of its weights."""
import io
import json
import sys
import threading
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

import kdnlp
import kdnlp.modeldir as modeldir
from kdnlp.config import DistillConfig, load_config
from kdnlp.distributed import shard_batches
from kdnlp.intermediate import IntermediateDistiller
from kdnlp.loop import RunningLoss, accumulation, labelled_positions, optimizer_steps
from kdnlp.modeldir import BackgroundSaver, load_model_dir
from kdnlp.trainer import Trainer, pick_device

KDNLP = str(Path(kdnlp.__file__).parent)


def _bool_mask(key) -> bool:
    keys = key if isinstance(key, tuple) else (key,)
    return any(isinstance(k, torch.Tensor) and k.dtype == torch.bool for k in keys)


# Tensor methods that copy a value to the host: on CUDA each one waits for every queued kernel (a sync), and
# indexing by a boolean mask, whose result size the host must learn first. (.numpy() is not one of them: it
# refuses a CUDA tensor, so per-step code cannot use it on device values.) name -> which calls count (by argument)
HOST_READS = {"item": None, "tolist": None, "cpu": None, "__float__": None, "__int__": None, "__bool__": None,
              "__format__": None, "__getitem__": _bool_mask}


@contextmanager
def host_reads(monkeypatch) -> Counter:
    """Count the host reads that kdnlp's own code makes, by file:line and method (torch's internals are not
    counted: the CPU optimizer reads its step counter, the fused CUDA one does not)."""
    counts = Counter()
    with monkeypatch.context() as m:
        for name, counted in HOST_READS.items():
            def patched(self, *args, _real=getattr(torch.Tensor, name), _name=name, _counted=counted, **kwargs):
                frame = sys._getframe(1)
                if frame.f_code.co_filename.startswith(KDNLP) and (_counted is None or _counted(*args)):
                    counts[f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno} {_name}"] += 1
                return _real(self, *args, **kwargs)
            m.setattr(torch.Tensor, name, patched)
        yield counts


def _fit_reads(trainer, monkeypatch, tmp_path, n_rows: int, make_model, make_loss, teacher_logits=None) -> Counter:
    """The host reads of one epoch of `fit` on the first n_rows training examples (batches of 4)."""
    hp = trainer.cfg.student
    hp.epochs, hp.batch_size = 1, 4
    model, tokenizer = make_model()
    examples = trainer.splits.train[:n_rows]
    tl = teacher_logits[:n_rows] if teacher_logits is not None else None
    loss_fn = make_loss(model)
    with monkeypatch.context() as m:
        # no terminal: the progress bar is off and a line is printed per tenth of the epoch (a read each), whatever
        # the terminal pytest runs in (a bar on short epochs reads the loss every batch, by design)
        m.setattr(sys, "stderr", io.StringIO())
        with host_reads(monkeypatch) as counts:
            trainer.fit(model, tokenizer, loss_fn, hp, tmp_path / f"m{n_rows}", "m", tl, examples)
    return counts


def _assert_constant(small: Counter, large: Counter) -> None:
    grown = {k: (small[k], large[k]) for k in set(small) | set(large) if small[k] != large[k]}
    assert not grown, f"host reads that change with the number of steps (a short vs a twice longer epoch): {grown}"


@pytest.mark.parametrize("kind", ["teacher", "distilled", "intermediate"])
def test_no_host_read_per_training_step(kind, write_config, tmp_path, monkeypatch):
    """One epoch of 10 and of 20 batches make the same host reads: the dev evaluation, the log lines (a tenth of
    an epoch each) and the epoch's end, never one per step (the loss and its parts stay on the device)."""
    trainer = Trainer(load_config(write_config({"distill": {"alpha": 0.5, "T": 0.5, "loss": "kl"}})))
    teacher_logits = np.random.default_rng(0).normal(size=(len(trainer.splits.train), 2)).astype(np.float32)
    if kind == "teacher":
        def make_loss(model):
            return trainer.task.gold_loss
        teacher_logits = None
    elif kind == "distilled":
        def make_loss(model):
            return trainer.task.distill_loss(trainer.cfg.distill)
    else:
        teacher, _ = trainer.build_teacher()

        def make_loss(model):
            return IntermediateDistiller(trainer.task.distill_loss(trainer.cfg.distill), teacher, model, "tinybert")
    counts = [_fit_reads(trainer, monkeypatch, tmp_path, n, trainer.build_teacher, make_loss, teacher_logits)
              for n in (40, 80)]
    assert sum(counts[0].values()) > 0  # the counting sees kdnlp's reads (the log lines, the epoch's loss)
    _assert_constant(*counts)


def test_no_host_read_per_step_in_token_level_training(write_config, tmp_path, monkeypatch):
    """NER (and the masked LM): the labelled positions are picked on the host, not by a mask on the device."""
    from test_ner import _ner_file
    _ner_file(tmp_path / "train.txt", 120, 1)
    _ner_file(tmp_path / "test.txt", 30, 2)
    trainer = Trainer(load_config(write_config({"task": "ner", "data": {
        "train": str(tmp_path / "train.txt"), "test": str(tmp_path / "test.txt"), "max_length": 8}})))
    counts = [_fit_reads(trainer, monkeypatch, tmp_path, n, trainer.build_teacher,
                         lambda model: trainer.task.gold_loss) for n in (40, 80)]
    _assert_constant(*counts)


def test_labelled_positions_are_those_of_a_boolean_mask():
    logits = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(2, 3, 2)
    labels = torch.tensor([[1, -100, 0], [-100, 2, -100]])
    picked, gold = labelled_positions(logits, labels)
    assert torch.equal(picked, logits[labels != -100]) and gold.tolist() == [1, 0, 2]


def test_no_host_read_per_step_in_multilabel_training(write_config, tmp_path, monkeypatch):
    from test_shapes import multilabel_config
    cfg = multilabel_config(write_config, tmp_path)
    trainer = Trainer(load_config(cfg))
    teacher_logits = np.random.default_rng(0).normal(size=(len(trainer.splits.train), 3)).astype(np.float32)
    for make_loss, tl in ((lambda model: trainer.task.gold_loss, None),
                          (lambda model: trainer.task.distill_loss(trainer.cfg.distill), teacher_logits)):
        counts = [_fit_reads(trainer, monkeypatch, tmp_path, n, trainer.build_teacher, make_loss, tl) for n in (40, 80)]
        _assert_constant(*counts)


def test_loss_parts_are_device_tensors_and_logged_per_epoch(write_config, tmp_path):
    from kdnlp.losses import DistillLoss
    total, parts = DistillLoss(DistillConfig(alpha=0.5, T=0.5, loss="mse"))(
        torch.tensor([[1.0, 0.0]], requires_grad=True), torch.tensor([0]), torch.tensor([[0.0, 1.0]]))
    assert set(parts) == {"ce", "mse"}
    assert all(isinstance(v, torch.Tensor) and not v.requires_grad for v in parts.values())
    trainer = Trainer(load_config(write_config()))
    model, tokenizer = trainer.build_teacher()
    logits = np.zeros((len(trainer.splits.train), 2), dtype=np.float32)
    state = trainer.fit(model, tokenizer, trainer.task.distill_loss(trainer.cfg.distill), trainer.cfg.student,
                        tmp_path / "m", "m", logits)
    epochs = [h for h in state["history"] if "train_loss" in h]
    assert len(epochs) == 2
    for h in epochs:  # alpha * ce + T * mse, both averaged over the same rows
        assert h["train_loss"] == pytest.approx(0.5 * h["train_parts"]["ce"] + 0.5 * h["train_parts"]["mse"])


def test_running_loss_averages_each_part_over_the_rows_that_had_it():
    class OneProcess:
        @staticmethod
        def reduce(t, _op):
            return t
    running = RunningLoss(torch.device("cpu"))
    running.add(torch.tensor(2.0), {"ce": torch.tensor(1.0), "mse": torch.tensor(4.0)}, rows=3)
    running.add(torch.tensor(1.0), {"mse": torch.tensor(1.0)}, rows=1)  # alpha scheduled to 0: no ce part
    assert running.mean() == pytest.approx((2 * 3 + 1) / 4)
    loss, rows, parts = running.totals(OneProcess)
    assert (loss, rows) == (pytest.approx(7 / 4), 4)
    assert parts == {"ce": pytest.approx(1.0), "mse": pytest.approx((4 * 3 + 1) / 4)}


@pytest.mark.parametrize("n_batches", [1, 5, 6, 7])
@pytest.mark.parametrize("accum", [1, 2, 3])
def test_accumulation_groups(n_batches, accum):
    """An optimizer step after every `accum` batches and after the last; each batch weighted by 1 / its group."""
    groups = [accumulation(i, n_batches, accum) for i in range(n_batches)]
    steps = [i for i, (_, step) in enumerate(groups) if step]
    assert steps == sorted({min(i, n_batches - 1) for i in range(accum - 1, n_batches + accum - 1, accum)})
    start = 0
    for end in steps:  # the weights of a group's batches sum to 1: the group's mean loss
        assert sum(1 / groups[i][0] for i in range(start, end + 1)) == pytest.approx(1.0)
        start = end + 1
    assert len(steps) == optimizer_steps(n_batches, 1, 1, accum)
    share = len(shard_batches(list(range(n_batches)), 1, 2))  # a process's share of the epoch, with 2 processes
    per_epoch = sum(accumulation(i, share, accum)[1] for i in range(share))
    assert optimizer_steps(n_batches, 3, 2, accum) == 3 * per_epoch


def test_background_save_writes_the_config_that_goes_with_its_weights(tiny_bert, tmp_path, monkeypatch):
    """A multi-label dev evaluation rewrites config.multilabel_thresholds; a save still being written must keep
    the thresholds of the evaluation that chose its weights."""
    from transformers import BertForSequenceClassification
    from kdnlp.teacher import load_tokenizer
    model = BertForSequenceClassification.from_pretrained(str(tiny_bert), num_labels=2)
    model.config.multilabel_thresholds = [0.3, 0.4]
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    release, real = threading.Event(), modeldir.atomic_dir

    @contextmanager
    def held(path):  # the write waits until training has moved on
        assert release.wait(timeout=60)
        with real(path) as tmp:
            yield tmp
    monkeypatch.setattr(modeldir, "atomic_dir", held)
    saver = BackgroundSaver()
    saver.save(model, load_tokenizer(tiny_bert), ["a", "b"], tmp_path / "best", {"best_dev": 0.5})
    model.config.multilabel_thresholds = [0.9, 0.9]  # the next evaluation
    with torch.no_grad():
        model.classifier.weight.add_(1.0)  # the next steps
    release.set()
    saver.wait()
    assert json.loads((tmp_path / "best" / "config.json").read_text())["multilabel_thresholds"] == [0.3, 0.4]
    saved, _, _ = load_model_dir(tmp_path / "best")
    assert torch.equal(saved.state_dict()["classifier.weight"], weights["classifier.weight"])
    assert model.config.multilabel_thresholds == [0.9, 0.9]  # the live config is not touched


def test_pick_device_is_importable_from_the_trainer():
    assert pick_device("cpu") == torch.device("cpu")
