"""The static student's fast text -> logits path (StaticTokenizer.flat + StaticForSequenceClassification.text_logits,
used by kdnlp.load(dir).predict): the same rows and the same logits as the padded forward() path it replaces."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from kdnlp.students.static import StaticConfig, StaticForSequenceClassification
from kdnlp.tokenization.static import StaticTokenizer

TRAIN = ["A gripping, funny film!", "dull and far too long", "不好看 的 电影", "a film , a long film", "ΑΣ ΣΑΣ"]
# unknown words, an empty text, only-unknown text, CJK, Greek final sigma, a NUL, a text longer than max_length
TEXTS = ["A GRIPPING film!!", "", "zzz qqq", "不好看电影", "funny unseen film , dull", "ΑΣ σας", "a\x00film",
         " ".join(["film"] * 9 + ["zzz", "dull"]), "   ", "long"]


def padded_logits(model, tokenizer, texts, max_length):
    rows = tokenizer(texts, max_length=max_length)["input_ids"]
    width = max(map(len, rows))
    ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).logits.numpy()


@pytest.mark.parametrize("ngrams,max_length", list(itertools.product([1, 2, 3], [None, 3])))
def test_flat_rows_are_encode_rows(ngrams, max_length):
    tok = StaticTokenizer.build_words(TRAIN, ngrams, 50)
    ids, offsets = tok.flat(TEXTS, max_length)
    rows = tok(TEXTS, max_length=max_length)["input_ids"]
    assert ids.dtype == np.int64 and offsets.dtype == np.int64
    assert [r.tolist() for r in np.split(ids, offsets[1:])] == rows
    assert tok.flat([], max_length)[0].size == 0 and tok.flat([], max_length)[1].size == 0


@pytest.mark.parametrize("ngrams,pooling,mlp_size", [(1, "mean", 0), (2, "mean", 8), (1, "sif", 8), (2, "sif", 0)])
def test_text_logits_match_the_padded_forward(ngrams, pooling, mlp_size):
    tok = StaticTokenizer.build_words(TRAIN, ngrams, 50)
    torch.manual_seed(0)
    model = StaticForSequenceClassification(StaticConfig(vocab_size=tok.vocab_size, embedding_dim=12,
                                                         mlp_size=mlp_size, num_labels=3, pooling=pooling)).eval()
    with torch.no_grad():
        model.embed.weight.normal_()
        model.token_weight.uniform_(0.1, 1.0)
    for max_length in (None, 3):
        want = padded_logits(model, tok, TEXTS, max_length)
        got = model.text_logits(tok, TEXTS, max_length, batch_size=4)  # several batches, the last one short
        assert got.shape == (len(TEXTS), 3)
        np.testing.assert_allclose(got, want, atol=1e-5)
    assert model.text_logits(tok, [], 8).shape == (0, 3)


def test_load_once_predictor_takes_the_fast_path(tmp_path):
    """kdnlp.load(dir).predict of a saved static student: the fast path's results equal the generic path's."""
    import kdnlp
    from kdnlp.modeldir import save_model_dir
    from kdnlp.pairs import record_input
    tok = StaticTokenizer.build_words(TRAIN, 2, 50)
    model = StaticForSequenceClassification(StaticConfig(vocab_size=tok.vocab_size, embedding_dim=12, mlp_size=8,
                                                         num_labels=2, id2label={0: "neg", 1: "pos"},
                                                         label2id={"neg": 0, "pos": 1}))
    with torch.no_grad():
        model.embed.weight.normal_()
    record_input(model, False, 8)  # the long text has 11 words
    save_model_dir(model, tok, ["neg", "pos"], tmp_path / "student", {})
    predictor = kdnlp.load(tmp_path / "student", device="cpu")
    assert predictor.text_logits is not None and predictor.max_length == 8
    fast = predictor.predict(TEXTS)
    predictor.text_logits = None  # the generic path: encode, pad, Trainer.predict_logits
    slow = predictor.predict(TEXTS)
    assert [r["label"] for r in fast] == [r["label"] for r in slow]
    for a, b in zip(fast, slow):
        assert a["text"] == b["text"] and a["probability"] == pytest.approx(b["probability"], abs=1e-6)


def test_ascii_regex_splits_ascii_text_as_the_full_one():
    """split_words takes ASCII_WORD_RE for ASCII texts: it must give WORD_RE's tokens on every ASCII character."""
    import random

    from kdnlp.tokenization.static import ASCII_WORD_RE, WORD_RE, split_words
    every = "".join(map(chr, range(128)))
    rng = random.Random(0)
    texts = [every, "a\x1cb\x1f c_d9-e's", *("".join(rng.choice(every) for _ in range(30)) for _ in range(200))]
    assert [ASCII_WORD_RE.findall(t) for t in texts] == [WORD_RE.findall(t) for t in texts]
    assert split_words(["Ünïcode ÉTÉ 不好", "ASCII Only!"]) == [["ünïcode", "été", "不", "好"], ["ascii", "only", "!"]]
