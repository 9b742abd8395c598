"""Logit cache: hit, miss, invalidation, corruption; teacher rows follow examples through shuffling."""
import json

import numpy as np
import pytest
import torch

from kdnlp.cache import LogitCache
from kdnlp.config import load_config
from kdnlp.trainer import Trainer


@pytest.fixture
def trained(write_config):
    """A config whose teacher is trained (1 epoch) and whose train logits are cached."""
    path = write_config({"teacher": {"epochs": 1}})
    trainer = Trainer(load_config(path))
    trainer.train_teacher()
    logits = trainer.cache_teacher_logits()
    return path, trainer, logits


def test_cache_hit_and_row_order(trained, capsys):
    path, trainer, logits = trained
    assert logits.shape == (len(trainer.splits.train), 2)
    again = Trainer(load_config(path)).cache_teacher_logits()
    assert "reusing" in capsys.readouterr().out
    np.testing.assert_array_equal(again, logits)
    # Row i is example i: recompute a few rows directly, unbatched.
    from kdnlp.trainer import load_model_dir
    model, tok, _ = load_model_dir(trainer.out / "teacher")
    model.eval()
    for i in (0, 7, len(logits) - 1):
        enc = tok([trainer.splits.train[i].text], truncation=True, max_length=32, return_tensors="pt")
        with torch.no_grad():
            ref = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits[0].numpy()
        np.testing.assert_allclose(logits[i], ref, atol=1e-5)


@pytest.mark.parametrize("change,reason", [
    ("data", "data_sha256"), ("max_length", "max_length"), ("weights", "teacher_weights_sha256")])
def test_cache_invalidation(trained, capsys, change, reason):
    path, trainer, logits = trained
    overrides = []
    if change == "data":
        overrides = ["data.seed=7"]  # a different dev carve -> different train rows
    elif change == "max_length":
        overrides = ["data.max_length=16"]
    else:
        from kdnlp.trainer import load_model_dir
        model, tok, labels = load_model_dir(trainer.out / "teacher")
        with torch.no_grad():
            model.classifier.bias.add_(1.0)
        trainer._save(model, tok, labels, trainer.out / "teacher", {})
    capsys.readouterr()
    fresh = Trainer(load_config(path, overrides)).cache_teacher_logits()
    out = capsys.readouterr().out
    assert f"stale: {reason} changed" in out
    assert fresh.shape[1] == 2


def test_student_seed_keeps_the_split_and_the_cache(trained, capsys):
    path, trainer, logits = trained
    capsys.readouterr()
    other = Trainer(load_config(path, ["train.seed=7"]))  # a student seed: same data split, same cache
    assert [e.text for e in other.splits.train] == [e.text for e in trainer.splits.train]
    np.testing.assert_array_equal(other.cache_teacher_logits(), logits)
    assert "reusing" in capsys.readouterr().out


def test_corrupt_cache_is_rebuilt(trained, capsys):
    path, trainer, logits = trained
    cache = LogitCache(trainer.out / "logits", "train")
    np.save(cache.array_path, logits[:-3])  # truncated array under a valid manifest
    capsys.readouterr()
    rebuilt = Trainer(load_config(path)).cache_teacher_logits()
    assert "corrupt" in capsys.readouterr().out
    np.testing.assert_allclose(rebuilt, logits, atol=1e-6)
    manifest = json.loads(cache.manifest_path.read_text())
    assert manifest["shape"] == list(logits.shape)


def test_shuffled_student_batches_get_their_teacher_rows(trained):
    """The student's loss receives, for each batch row, the cached logits of exactly that example."""
    path, trainer, logits = trained
    student_trainer = Trainer(load_config(path))
    seen = []

    def spy_loss(student_logits, labels, teacher_logits):
        seen.append((labels.clone(), teacher_logits.clone()))
        return student_logits.sum() * 0.0 + (student_logits ** 2).mean(), {}

    from kdnlp.students import STUDENTS, StudentContext
    ctx = StudentContext(student_trainer.splits.labels, [], student_trainer.teacher_tokenizer, student_trainer.fine_tuned_teacher)
    model, tok = STUDENTS["bilstm"](student_trainer.cfg, ctx)
    # Give each example a unique fake "teacher logit" = its index, so any misalignment shows.
    fake = np.stack([np.arange(len(logits), dtype=np.float32), np.zeros(len(logits), dtype=np.float32)], 1)
    student_trainer.fit(model, tok, spy_loss, student_trainer.cfg.student, student_trainer.out / "spy", "spy", fake)
    labels_by_index = np.array([e.label for e in student_trainer.splits.train])
    rows = 0
    for labels, tl in seen:
        idx = tl[:, 0].long().numpy()
        np.testing.assert_array_equal(labels.numpy(), labels_by_index[idx])
        rows += len(idx)
    first_epoch = np.concatenate([tl[:, 0].numpy() for _, tl in seen])[: len(logits)]
    assert sorted(first_epoch.astype(int).tolist()) == list(range(len(logits)))
    assert first_epoch.astype(int).tolist() != list(range(len(logits)))  # it really was shuffled
