"""kdnlp pretrain: MLM masking statistics, whole-word grouping, from-scratch run whose output the teacher loads."""
import json

import numpy as np
import pytest
from transformers import BertTokenizer

from kdnlp.cli import main
from kdnlp.pretrain import encode_chunks, mask_tokens
from tests.conftest import make_texts


def test_masking_statistics():
    rng = np.random.default_rng(0)
    ids = list(range(10, 110))
    groups = [-1] + list(range(98)) + [-1]  # [CLS] and [SEP] are never chosen
    chosen = kept = masked = randomised = 0
    for _ in range(300):
        inputs, labels = mask_tokens(ids, groups, 0.15, False, mask_id=4, vocab_size=200, rng=rng)
        assert labels[0] == labels[-1] == -100 and inputs[0] == ids[0] and inputs[-1] == ids[-1]
        for x, y, orig in zip(inputs, labels, ids):
            if y == -100:
                assert x == orig
                continue
            assert y == orig
            chosen += 1
            masked += x == 4
            kept += x == orig
            randomised += x not in (4, orig)
    assert abs(chosen / (300 * 98) - 0.15) < 0.01
    assert abs(masked / chosen - 0.8) < 0.03 and abs(kept / chosen - 0.1) < 0.03 and abs(randomised / chosen - 0.1) < 0.03


def test_whole_word_masking_masks_all_pieces_of_a_word():
    rng = np.random.default_rng(1)
    groups = [-1, 0, 0, 0, 1, 2, 2, -1]
    seen = set()
    for _ in range(200):
        _, labels = mask_tokens(list(range(8)), groups, 0.5, True, 99, 50, rng)
        words = {}
        for g, y in zip(groups, labels):
            if g >= 0:
                words.setdefault(g, set()).add(y != -100)
        assert all(len(v) == 1 for v in words.values())  # a word is masked entirely or not at all
        seen.add(tuple(sorted(g for g, v in words.items() if True in v)))
    assert len(seen) == 8  # every subset of the 3 words occurs


def test_encode_chunks_groups_words_and_splits_long_lines_into_windows(tiny_bert):
    pytest.importorskip("jieba")
    tok = BertTokenizer(str(tiny_bert / "vocab.txt"))
    [(ids, groups)] = encode_chunks(tok, "我喜欢", 32)
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id and len(ids) == 5
    assert groups[0] == groups[-1] == -1 and groups[2] == groups[3]  # 喜欢 is one jieba word
    text = "我喜欢这个电影，" * 20  # 160 characters: several windows of at most 16 tokens, nothing dropped
    windows = encode_chunks(tok, text, 16)
    assert len(windows) >= 10 and all(len(ids) <= 16 and ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
                                      for ids, _ in windows)
    inner = [i for ids, _ in windows for i in ids[1:-1]]
    assert inner == tok(text, add_special_tokens=False)["input_ids"]
    for _, groups in windows:  # word indices restart per window and a word never spans two windows
        g = groups[1:-1]
        assert g[0] == 0 and all(b - a in (0, 1) for a, b in zip(g, g[1:]))
    words = [tok.tokenize(w) for w in __import__("jieba").lcut(text)]
    assert sum(len(set(g[1:-1])) for _, g in windows) == len([w for w in words if w])


def test_pretrain_from_scratch_then_train_teacher(write_config, tmp_path, capsys):
    pytest.importorskip("jieba")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(t for t, _ in make_texts(300, 5)) + "\n", encoding="utf-8")
    cfg = str(write_config({"teacher": {"pretrained": None, "vocab": "build", "epochs": 1,
                                        "config": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                                                   "intermediate_size": 64, "max_position_embeddings": 64}},
                            "pretrain": {"epochs": 4, "batch_size": 16, "lr": 2e-3, "whole_word_mask": True}}))
    assert main(["pretrain", "--config", cfg, "--corpus", str(corpus)]) == 0
    out = tmp_path / "out" / "pretrained"
    log = json.loads((out / "pretrain_log.json").read_text())
    vocab_size = len((tmp_path / "out" / "pretrain_vocab.txt").read_text().split())
    # better than a uniform guess over the vocabulary: the MLM learned something
    assert len(log["history"]) == 4 and log["history"][-1]["held_out_loss"] < np.log(vocab_size) - 0.3
    assert main(["train-teacher", "--config", cfg, "--set", f"teacher.pretrained={out}"]) == 0
    assert "teacher: " + str(out) in capsys.readouterr().out
    assert main(["pretrain", "--config", cfg, "--corpus", str(tmp_path / "missing.txt")]) == 2
    assert "missing.txt: file not found" in capsys.readouterr().err
