"""Logit cache: hit, miss, invalidation, corruption; teacher rows follow examples through shuffling."""
import json
import shutil

import numpy as np
import pytest
import torch

from kdnlp.cache import LogitCache
from kdnlp.config import load_config
from kdnlp.trainer import Trainer


_TRAINED: dict = {}  # the teacher is trained once per session; each test gets its own copy of the output dir


@pytest.fixture
def trained(write_config, tmp_path_factory):
    """A config whose teacher is trained (1 epoch) and whose train logits are cached."""
    path = write_config({"teacher": {"epochs": 1}})
    out = load_config(path).out
    if "out" not in _TRAINED:
        trainer = Trainer(load_config(path))
        trainer.train_teacher()
        trainer.cache_teacher_logits()
        _TRAINED["out"] = tmp_path_factory.mktemp("trained") / "out"
        shutil.copytree(out, _TRAINED["out"])
    else:  # tiny_data is the same content in every test, so the copied cache's fingerprint matches
        shutil.copytree(_TRAINED["out"], out)
    trainer = Trainer(load_config(path))
    logits = trainer.cache_teacher_logits()
    return path, trainer, logits


def test_cache_hit_and_row_order(trained, capsys):
    path, trainer, logits = trained
    assert logits.shape == (len(trainer.splits.train), 2)
    again = Trainer(load_config(path)).cache_teacher_logits()
    assert "reusing" in capsys.readouterr().out
    np.testing.assert_array_equal(again, logits)
    # Row i is example i: recompute a few rows directly, unbatched.
    from kdnlp.modeldir import load_model_dir
    model, tok, _ = load_model_dir(trainer.out / "teacher")
    model.eval()
    for i in (0, 7, len(logits) - 1):
        enc = tok([trainer.splits.train[i].text], truncation=True, max_length=32, return_tensors="pt")
        with torch.no_grad():
            ref = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits[0].numpy()
        np.testing.assert_allclose(logits[i], ref, atol=1e-5)


@pytest.mark.parametrize("change,reason", [
    ("data", "data_sha256"), ("data file", "data_sha256"), ("max_length", "max_length"),
    ("weights", "teacher_weights_sha256"), ("tokenizer", "tokenizer_sha256")])
def test_cache_invalidation(trained, capsys, change, reason):
    path, trainer, logits = trained
    overrides = []
    if change == "data":
        overrides = ["data.seed=7"]  # a different dev carve -> different train rows
    elif change == "data file":  # one more training example in the file itself
        train_file = trainer.cfg.data.train
        rows = json.loads(open(train_file, encoding="utf-8").read())
        open(train_file, "w", encoding="utf-8").write(json.dumps(rows + [{"text": "好好好", "label": "pos"}]))
    elif change == "max_length":
        overrides = ["data.max_length=16"]
    else:
        from kdnlp.modeldir import load_model_dir, save_model_dir
        model, tok, labels = load_model_dir(trainer.out / "teacher")
        if change == "weights":
            with torch.no_grad():
                model.classifier.bias.add_(1.0)
        else:  # same weights, a tokenizer with one more token
            tok.add_tokens(["[NEW]"])
        save_model_dir(model, tok, labels, trainer.out / "teacher", {})
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


@pytest.mark.parametrize("damage", ["truncated npy", "garbage manifest", "missing npy", "offsets of another run"])
def test_damaged_cache_files_are_never_used(trained, capsys, damage):
    path, trainer, logits = trained
    cache = LogitCache(trainer.out / "logits", "train")
    if damage == "truncated npy":  # a copy or a disk cut short
        cache.array_path.write_bytes(cache.array_path.read_bytes()[:-17])
    elif damage == "garbage manifest":
        cache.manifest_path.write_text('{"fingerprint": ')
    elif damage == "missing npy":
        cache.array_path.unlink()
    else:  # a ragged-cache manifest whose offsets do not fit the array
        manifest = json.loads(cache.manifest_path.read_text())
        np.save(cache.offsets_path, np.array([0, 5]))
        cache.manifest_path.write_text(json.dumps({**manifest, "ragged": True, "rows": 1}))
    capsys.readouterr()
    rebuilt = Trainer(load_config(path)).cache_teacher_logits()
    assert "computing teacher logits" in capsys.readouterr().out
    np.testing.assert_allclose(rebuilt, logits, atol=1e-6)
    assert LogitCache(trainer.out / "logits", "train").load(trainer._cache_fingerprint(trainer.out / "teacher", trainer.splits.fingerprint("train"))) is not None


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


def test_cache_hit_does_not_load_the_teacher(trained, monkeypatch):
    path, trainer, logits = trained
    import kdnlp.trainer as trainer_module

    def no_loading(*args, **kwargs):
        raise AssertionError("the teacher's weights were loaded for a cache hit")
    monkeypatch.setattr(trainer_module, "load_model_dir", no_loading)
    np.testing.assert_array_equal(Trainer(load_config(path)).cache_teacher_logits(), logits)
