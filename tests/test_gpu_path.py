"""The GPU fast path, checked on the CPU: background collation changes nothing, token-budget inference batches
respect their budget and predict what the per-row path predicts, pad-to-8, and background checkpoint writes."""
import json

import numpy as np
import pytest
import torch

import kdnlp.modeldir as modeldir
from kdnlp.cli import main
from kdnlp.config import load_config
from kdnlp.data import prefetch, token_budget_batches
from kdnlp.fileio import check_manifest
from kdnlp.modeldir import load_model_dir
from kdnlp.ner import IGNORE, EncodedTagSplit, TagExample
from kdnlp.trainer import Trainer


def _history(root, name):
    return json.loads((root / name / "train_log.json").read_text())["history"]


def _tiny(path):
    from transformers import BertForSequenceClassification
    from kdnlp.teacher import load_tokenizer
    return BertForSequenceClassification.from_pretrained(str(path), num_labels=2), load_tokenizer(path)


def _weights(root, name):
    from safetensors.torch import load_file
    return load_file(str(root / name / "model.safetensors"))


def test_prefetch_yields_in_order_and_inline_when_depth_0():
    calls = []
    make = lambda x: calls.append(x) or x * x  # noqa: E731
    assert list(prefetch(make, range(7), depth=2)) == [x * x for x in range(7)]
    assert calls == list(range(7))  # one worker: made in item order
    assert list(prefetch(make, range(3), depth=0)) == [0, 1, 4]
    gen = prefetch(make, range(100), depth=2)
    assert next(gen) == 0
    gen.close()  # an early stop: no error, nothing more queued than the depth
    assert len(calls) <= 7 + 3 + 3


def test_background_collation_gives_bit_identical_training(write_config, tmp_path, monkeypatch):
    """Grad accumulation, mid-epoch evaluation and a distilled student (teacher logits by index), both ways."""
    cfg = str(write_config({"train": {"seed": 5, "grad_accum": 2, "eval_every": 2, "patience": 50}}))
    runs = {}
    for depth in (0, 2):
        out = tmp_path / f"depth{depth}"
        monkeypatch.setattr(Trainer, "prefetch_batches", depth)
        assert main(["train-teacher", "--config", cfg, "--output-dir", str(out)]) == 0
        assert main(["train-student", "--config", cfg, "--output-dir", str(out)]) == 0
        runs[depth] = out
    for name in ("teacher", "student"):
        sync, background = _history(runs[0], name), _history(runs[2], name)
        assert [h.get("train_loss") for h in sync] == [h.get("train_loss") for h in background]
        assert [h.get("dev") for h in sync] == [h.get("dev") for h in background]
        assert any(h.get("train_loss") for h in sync)
        a, b = _weights(runs[0], name), _weights(runs[2], name)
        assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("multiple", [None, 8])
def test_token_budget_batches_cover_every_row_once_within_budget(multiple):
    rng = np.random.default_rng(0)
    lengths = np.sort(rng.integers(2, 120, size=500))[::-1]
    lengths[0] = 300  # longer than the budget alone
    budget = 256
    batches = token_budget_batches(lengths, budget, multiple)
    assert np.concatenate(batches).tolist() == list(range(len(lengths)))  # each row once, in order
    m = multiple or 1
    for b in batches:
        width = -(-int(lengths[b].max()) // m) * m
        assert len(b) * width <= budget or len(b) == 1
    assert len(batches[0]) == 1 and len(batches[-1]) > 2  # the over-long row alone; short rows many to a batch


def test_token_budget_predictions_match_the_per_row_path(write_config, tiny_bert):
    trainer = Trainer(load_config(write_config({"train": {"eval_tokens": 40}})))
    model, tokenizer = _tiny(tiny_bert)
    data = trainer.task.encode(trainer.splits.train, tokenizer, 32)
    batches = list(data.eval_batches(16, max_tokens=40))
    assert sorted(np.concatenate([b["index"].numpy() for b in batches]).tolist()) == list(range(len(data)))
    assert all(b["input_ids"].numel() <= 40 for b in batches) and len({len(b["index"]) for b in batches}) > 1
    by_tokens = trainer.predict_logits(model, data, 16)
    by_rows = trainer.predict_logits(model, data, 16, device=torch.device("cpu"))  # 16 rows at a time
    assert (by_tokens.argmax(1) == by_rows.argmax(1)).all()
    np.testing.assert_allclose(by_tokens, by_rows, atol=1e-5)
    auto = Trainer(load_config(write_config({"train": {"eval_tokens": None}})))
    assert auto.eval_tokens(64) is None  # the CPU default: the old 2 x batch_size rows (a row count, no budget)


def test_pad_to_multiple_of_is_explicit(write_config, tiny_bert):
    trainer = Trainer(load_config(write_config()))
    model, tokenizer = _tiny(tiny_bert)
    data = trainer.task.encode(trainer.splits.train, tokenizer, 32)
    index = np.arange(5)
    plain, padded = data.collate(index), data.collate(index, pad_to_multiple_of=8)
    width = int(data.lengths[index].max())
    assert plain["input_ids"].shape[1] == width  # the CPU default: no rounding
    assert padded["input_ids"].shape[1] == -(-width // 8) * 8 and padded["input_ids"].shape[1] % 8 == 0
    assert torch.equal(padded["input_ids"][:, :width], plain["input_ids"])
    assert torch.equal(padded["attention_mask"].sum(1), plain["attention_mask"].sum(1))
    assert torch.equal(padded["labels"], plain["labels"])
    assert data.collate(index, width=31, pad_to_multiple_of=8)["input_ids"].shape[1] == 31  # explicit width kept
    model.eval()
    with torch.no_grad():
        a = model(input_ids=plain["input_ids"], attention_mask=plain["attention_mask"]).logits
        b = model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"]).logits
    assert torch.allclose(a, b, atol=1e-5)
    ner = EncodedTagSplit([TagExample(list("好棒的"), [1, 2, 0]), TagExample(list("差"), [0])], tokenizer, 32)
    batch = ner.collate(np.arange(2), pad_to_multiple_of=8)
    assert batch["labels"].shape == batch["input_ids"].shape == (2, 8)
    assert (batch["labels"] != IGNORE).sum() == 4 and (batch["labels"][:, 5:] == IGNORE).all()


def test_background_checkpoint_is_complete_after_fit_and_equals_a_slow_write(write_config, tmp_path, monkeypatch):
    """The saved best checkpoint is the weights at the time of the improvement, whatever training did meanwhile."""
    import time
    cfg = str(write_config({"train": {"seed": 2, "eval_every": 3, "patience": 50}}))
    real = modeldir.save_model_dir
    assert main(["train-teacher", "--config", cfg, "--output-dir", str(tmp_path / "fast")]) == 0

    def slow(*a, **k):
        time.sleep(0.3)  # training runs on while this write is pending
        real(*a, **k)
    monkeypatch.setattr(modeldir, "save_model_dir", slow)
    assert main(["train-teacher", "--config", cfg, "--output-dir", str(tmp_path / "slow")]) == 0
    for run in ("fast", "slow"):
        assert check_manifest(tmp_path / run / "teacher") is None
        load_model_dir(tmp_path / run / "teacher")
    a, b = _weights(tmp_path / "fast", "teacher"), _weights(tmp_path / "slow", "teacher")
    assert all(torch.equal(a[k], b[k]) for k in a)
    state = json.loads((tmp_path / "slow" / "teacher" / "train_state.json").read_text())
    log = json.loads((tmp_path / "slow" / "teacher" / "train_log.json").read_text())
    assert state["best_step"] == log["best_step"] and state["best_dev"] == log["best_dev"]


def test_a_failed_background_write_fails_the_run(write_config, tmp_path, monkeypatch, capsys):
    def broken(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(modeldir, "save_model_dir", broken)
    cfg = str(write_config())
    assert main(["train-teacher", "--config", cfg, "--epochs", "1"]) != 0
    assert "No space left on device" in capsys.readouterr().err
    assert not (tmp_path / "out" / "teacher" / "train_log.json").exists()
