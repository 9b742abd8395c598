"""Tang et al. augmentation: each operation, determinism, POS preservation, n-gram bounds, dedup, the stored
transfer set's fingerprint, CE masking of augmented rows, and an end-to-end distill on a transfer set."""
import json
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kdnlp.augment import (PosTable, Tagger, TransferSetStore, build_transfer_set,
                           load_or_build_transfer_set, make_tagger)
from kdnlp.cli import main
from kdnlp.config import AugmentConfig, DistillConfig
from kdnlp.losses import DistillLoss

LEXICON = {"the": "DT", "a": "DT", "cat": "NN", "dog": "NN", "film": "NN", "plot": "NN", "sat": "VB", "ran": "VB",
           "loved": "VB", "good": "JJ", "bad": "JJ", "slow": "JJ"}
TEXTS = ["the cat sat", "a good film", "the bad plot ran slow", "the dog loved a good cat", "a slow film sat"]


def lexicon_tag(texts):
    return [[(w, LEXICON.get(w, "X")) for w in t.split()] for t in texts]


TAGGER = Tagger("lexicon", lexicon_tag, True, " ")


def cfg(**kw) -> AugmentConfig:
    base = dict(enabled=True, n_samples=20, p_mask=0.0, p_pos=0.0, p_ngram=0.0, seed=3)
    return AugmentConfig(**{**base, **kw})


def test_mask_only_masks_words_and_is_deterministic():
    a = build_transfer_set(TEXTS, cfg(p_mask=0.3), TAGGER, "[MASK]")
    b = build_transfer_set(TEXTS, cfg(p_mask=0.3), TAGGER, "[MASK]")
    assert a.texts == b.texts and a.texts  # same seed, same transfer set
    c = build_transfer_set(TEXTS, cfg(p_mask=0.3, seed=4), TAGGER, "[MASK]")
    assert c.texts != a.texts
    for text, src, ops in zip(a.texts, a.sources, a.ops):
        orig, new = TEXTS[src].split(), text.split()
        assert len(new) == len(orig) and ops == "mask"
        assert all(n == o or n == "[MASK]" for n, o in zip(new, orig)) and "[MASK]" in new
    everything = build_transfer_set(TEXTS, cfg(p_mask=1.0, n_samples=1), TAGGER, "<m>")
    assert all(set(t.split()) == {"<m>"} for t in everything.texts)


def test_pos_replacement_keeps_the_tag_and_draws_from_training_words():
    ts = build_transfer_set(TEXTS, cfg(p_pos=1.0), TAGGER, "[MASK]")
    assert ts.texts and all(o == "pos" for o in ts.ops)
    train_words = {w for t in TEXTS for w in t.split()}
    for text, src in zip(ts.texts, ts.sources):
        for new, old in zip(text.split(), TEXTS[src].split()):
            assert LEXICON[new] == LEXICON[old] and new in train_words


def test_pos_table_samples_by_frequency():
    table = PosTable([[("a", "T")] * 9 + [("b", "T")]])
    rng = random.Random(0)
    draws = [table.sample("T", rng) for _ in range(2000)]
    assert 0.85 < draws.count("a") / 2000 < 0.95
    assert table.sample("unknown-tag", rng) is None


def test_ngram_length_bounds_and_contiguity():
    ts = build_transfer_set(TEXTS, cfg(p_ngram=1.0, ngram_range=[2, 3]), TAGGER, "[MASK]")
    assert ts.texts
    for text, src in zip(ts.texts, ts.sources):
        new, orig = text.split(), TEXTS[src].split()
        assert 2 <= len(new) <= 3 and len(new) < len(orig)
        assert any(orig[i:i + len(new)] == new for i in range(len(orig)))  # a contiguous n-gram of the original


def test_dedup_excludes_originals_and_repeats_and_cap_keeps_originals():
    ts = build_transfer_set(TEXTS, cfg(p_mask=0.2, p_pos=0.2, p_ngram=0.5), TAGGER, "[MASK]")
    assert len(set(ts.texts)) == len(ts.texts) and not set(ts.texts) & set(TEXTS)
    assert ts.stats["generated"] == 100 and ts.stats["unique_new"] == len(ts.texts)
    assert ts.stats["dedup_rate"] == pytest.approx(1 - len(ts.texts) / 100, abs=1e-4)
    unchanged = build_transfer_set(TEXTS, cfg(), TAGGER, "[MASK]")  # no operation -> only copies of originals
    assert unchanged.texts == [] and unchanged.stats["dedup_rate"] == 1.0
    capped = build_transfer_set(TEXTS, cfg(p_mask=0.2, p_pos=0.2, p_ngram=0.5, max_examples=12), TAGGER, "[MASK]")
    assert len(capped.texts) == 12 - len(TEXTS) and set(capped.texts) <= set(ts.texts)


def test_chinese_uses_jieba_pos_tags():
    pytest.importorskip("jieba")
    texts = ["我喜欢这部电影", "这部电影很好看", "剧情非常糟糕", "演员表演很自然", "我讨厌这个结局"]
    tagger = make_tagger("auto", chinese=True)
    assert tagger.name == "jieba" and tagger.joiner == ""
    tagged = tagger.tag(texts)
    assert "".join(w for w, _ in tagged[0]) == texts[0]
    word_tags = {(w, t) for sent in tagged for w, t in sent}
    ts = build_transfer_set(texts, cfg(p_pos=1.0, seed=0), tagger, "[MASK]")
    assert ts.texts
    for text, src in zip(ts.texts, ts.sources):
        orig = tagged[src]
        # rebuild the replacement word by word: each new word was seen in training with the original word's tag
        rest = text
        for w, tag in orig:
            match = next((x for x, t in word_tags if t == tag and rest.startswith(x)), None)
            assert match is not None, (text, w, tag)
            rest = rest[len(match):]
        assert rest == ""


def test_no_tagger_turns_pos_off_with_one_warning(monkeypatch):
    import kdnlp.augment as aug
    monkeypatch.setattr(aug, "_nltk_tag", lambda: None)
    tagger = make_tagger("auto", chinese=False)
    assert not tagger.has_pos and "POS-guided replacement is off" in tagger.warning
    ts = build_transfer_set(TEXTS, cfg(p_pos=1.0, p_ngram=1.0, ngram_range=[1, 2]), tagger, "[MASK]")
    assert ts.stats["pos_replacement"] is False and ts.stats["examples_with_op"]["pos"] == 0
    assert ts.stats["examples_with_op"]["ngram"] == len(ts.texts) > 0  # n-grams still run


def test_transfer_set_is_stored_reused_and_invalidated(tmp_path, monkeypatch):
    import kdnlp.augment as aug
    monkeypatch.setattr(aug, "_nltk_tag", lambda: None)
    d = tmp_path / "augment"
    log = []
    c = cfg(p_mask=0.3, p_ngram=0.3)
    first = load_or_build_transfer_set(TEXTS, c, "[MASK]", d, log=log.append)
    assert any("POS-guided replacement is off" in x for x in log) and any("building" in x for x in log)
    store = TransferSetStore(d)
    assert json.loads(store.manifest_path.read_text())["stats"]["kept"] == len(first.texts)
    log.clear()
    again = load_or_build_transfer_set(TEXTS, c, "[MASK]", d, log=log.append)
    assert again.texts == first.texts and "reusing" in log[0]
    log.clear()
    load_or_build_transfer_set(TEXTS, cfg(p_mask=0.4, p_ngram=0.3), "[MASK]", d, log=log.append)
    assert any("stale: settings changed" in x for x in log)
    log.clear()
    load_or_build_transfer_set(TEXTS[:-1], cfg(p_mask=0.4, p_ngram=0.3), "[MASK]", d, log=log.append)
    assert any("stale: originals_sha256 changed" in x for x in log)
    log.clear()
    store.data_path.write_text(store.data_path.read_text()[:-30])  # truncated file: detected, rebuilt
    rebuilt = load_or_build_transfer_set(TEXTS[:-1], cfg(p_mask=0.4, p_ngram=0.3), "[MASK]", d, log=log.append)
    assert any("building" in x for x in log) and rebuilt.texts
    assert not list(d.glob("*.tmp*"))


def test_augmented_rows_get_no_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(4, 3, requires_grad=True)
    teacher = torch.randn(4, 3)
    labels = torch.tensor([2, -100, 0, -100])
    loss, _ = DistillLoss(DistillConfig(alpha=1.0, T=0.5, loss="mse"))(logits, labels, teacher)
    per_row_ce = F.cross_entropy(logits[[0, 2]], labels[[0, 2]], reduction="sum") / 4
    expected = per_row_ce + 0.5 * F.mse_loss(logits, teacher)
    assert torch.allclose(loss, expected)
    # an augmented row's gradient comes from the teacher term only
    loss.backward()
    only_d = 0.5 * 2 * (logits[1] - teacher[1]) / 12
    assert torch.allclose(logits.grad[1], only_d.detach(), atol=1e-6)
    # a batch of augmented rows only is finite (no mean over zero gold rows)
    all_aug, _ = DistillLoss(DistillConfig(alpha=1.0, T=1.0))(logits.detach(), torch.full((4,), -100), teacher)
    assert torch.isfinite(all_aug)


def test_distill_on_a_transfer_set_end_to_end(write_config, tmp_path, capsys):
    cfg_path = write_config({"augment": {"enabled": True, "n_samples": 3, "p_mask": 0.2, "p_pos": 0.1}})
    assert main(["distill", "--config", str(cfg_path)]) == 0
    out = capsys.readouterr().out
    root = tmp_path / "out"
    manifest = json.loads((root / "augment" / "manifest.json").read_text())
    kept = manifest["stats"]["kept"]
    assert manifest["stats"]["tagger"] == "jieba" and kept > 100
    assert f"transfer set: 144 originals + {kept} augmented examples" in out
    aug_logits = np.load(root / "logits" / "augment.npy")
    assert aug_logits.shape == (kept, 2) and np.isfinite(aug_logits).all()
    assert json.loads((root / "logits" / "augment.json").read_text())["fingerprint"]["data_sha256"] == manifest["sha256"]
    assert (root / "student" / "report.json").is_file()
    # the alone arm with the same config trains on the originals only
    assert main(["train-student", "--config", str(cfg_path), "--alpha", "1", "--T", "0", "--set", "student.name=alone"]) == 0
    assert "no augmented or data.unlabeled rows" in capsys.readouterr().out
    # kdnlp augment reuses the stored set and prints its stats and examples
    assert main(["augment", "--config", str(cfg_path), "--show", "3"]) == 0
    out = capsys.readouterr().out
    assert "reusing" in out and "dedup rate" in out and out.count(" ->  ") == 3


def test_augment_config_errors(write_config, capsys):
    for override, key in (({"p_mask": 1.5}, "augment.p_mask"), ({"ngram_range": [3, 1]}, "augment.ngram_range"),
                          ({"n_samples": 0}, "augment.n_samples"), ({"p_mask": 0.6, "p_pos": 0.6}, "p_mask + p_pos")):
        assert main(["augment", "--config", str(write_config({"augment": override}))]) == 2
        err = capsys.readouterr().err.strip()
        assert key in err and len(err.splitlines()) == 1
