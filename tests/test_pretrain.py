"""kdnlp pretrain: MLM masking statistics, whole-word grouping, from-scratch run whose output the teacher loads."""
import json
import random
import re

import numpy as np
import pytest
import torch
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
    # a corpus where context decides each character: random stretches of one fixed 24-character sequence
    rng, seq = random.Random(0), "天地玄黄宇宙洪荒日月盈昃辰宿列张寒来暑往秋收冬藏" * 3
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(seq[(o := rng.randrange(24)):o + rng.randint(6, 14)] for _ in range(1000)) + "\n",
                      encoding="utf-8")
    cfg = str(write_config({"teacher": {"pretrained": None, "vocab": "build", "epochs": 1,
                                        "config": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                                                   "intermediate_size": 64, "max_position_embeddings": 64}},
                            "pretrain": {"epochs": 20, "batch_size": 16, "lr": 1e-3}, "train": {"patience": 50}}))
    assert main(["pretrain", "--config", cfg, "--corpus", str(corpus)]) == 0
    printed = capsys.readouterr().out
    # progress without a terminal: a line at each tenth of an epoch
    assert len(re.findall(r"pretrain epoch 20: batch \d+/\d+, loss", printed)) == 9 and "held-out MLM loss" in printed
    out = tmp_path / "out" / "pretrained"
    log = json.loads((out / "train_log.json").read_text())  # the same loop (and log) as the teacher's
    assert log["metric"] == "held-out MLM accuracy" and not (out / "labels.txt").exists()
    assert len([h for h in log["history"] if "train_loss" in h]) == 20
    # a constant guess gets ~1/24 of the held-out masked characters right (plus the training texts' characters)
    assert log["best_dev"] > 0.15
    card = (out / "README.md").read_text(encoding="utf-8")  # the masked LM's card says what it is and how to use it
    assert "pipeline_tag: fill-mask" in card and f"held-out masked-token accuracy {log['best_dev']:.4f}" in card
    assert f"--set teacher.pretrained={out}" in card and "not a classifier" in card
    assert main(["pretrain", "--config", cfg, "--corpus", str(corpus), "--resume"]) == 0
    assert "already finished" in capsys.readouterr().out  # resumable like train-teacher: nothing trained again
    assert main(["train-teacher", "--config", cfg, "--set", f"teacher.pretrained={out}"]) == 0
    assert "teacher: " + str(out) in capsys.readouterr().out
    assert main(["pretrain", "--config", cfg, "--corpus", str(tmp_path / "missing.txt")]) == 2
    assert "missing.txt: file not found" in capsys.readouterr().err
    one = tmp_path / "one.txt"
    one.write_text("一行\n", encoding="utf-8")
    assert main(["pretrain", "--config", cfg, "--corpus", str(one), "--set", f"teacher.pretrained={out}"]) == 2
    err = capsys.readouterr().err
    assert "one.txt: 1 line(s) in all, all held out" in err and err.count("\n") == 1


def test_masked_windows_collate_masks_afresh_and_holds_out_fixed_masks(tiny_bert):
    from kdnlp.config import PretrainConfig
    from kdnlp.data import Example
    from kdnlp.pretrain import MaskedLM
    tok = BertTokenizer(str(tiny_bert / "vocab.txt"))
    data = MaskedLM(PretrainConfig(mask_prob=0.3)).encode([Example("我喜欢这个电影" * 3, -100), Example("很好", -100)], tok, 16)
    assert len(data) == 2 + 1  # 21 characters -> two windows of <= 14 tokens, + the short text
    np.random.seed(0)
    index = np.arange(len(data))
    a, b = data.collate(index), data.collate(index)
    for batch in (a, b):
        chosen = batch["labels"] != -100
        assert chosen.any() and not chosen[batch["attention_mask"] == 0].any()  # never a padding position
        assert not chosen[:, 0].any()  # never [CLS]
        original = data.pad_ids(index)["input_ids"]
        assert (batch["labels"][chosen] == original[chosen]).all()  # labels are the original ids
        assert (batch["input_ids"][~chosen] == original[~chosen]).all()  # only chosen positions change
    assert not torch.equal(a["labels"], b["labels"])  # dynamic masking: a new draw every time
    fixed = data.fixed_batches(2)
    assert fixed is data.fixed_batches(2) and len(fixed) == 2
    again = MaskedLM(PretrainConfig(mask_prob=0.3)).encode([Example("我喜欢这个电影" * 3, -100), Example("很好", -100)], tok, 16)
    assert all(torch.equal(x["labels"], y["labels"]) for x, y in zip(fixed, again.fixed_batches(2)))  # seeded
    one = MaskedLM(PretrainConfig(mask_prob=0.01)).encode([Example("很好", -100)], tok, 16)
    assert all((one.collate(np.array([0]))["labels"] != -100).sum() == 1 for _ in range(20))  # never an empty batch


def test_interrupted_pretrain_resumes_to_the_same_weights(write_config, tmp_path, monkeypatch, capsys):
    """Dynamic masks come from numpy's global RNG, which fit's resume state restores: an interrupted and resumed
    pretrain ends bit-identical to an uninterrupted one."""
    import kdnlp.checkpoint as checkpoint_mod
    from safetensors.torch import load_file
    pytest.importorskip("jieba")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(t for t, _ in make_texts(300, 5)) + "\n", encoding="utf-8")
    cfg = str(write_config({"teacher": {"pretrained": None, "vocab": "build",
                                        "config": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                                                   "intermediate_size": 64, "max_position_embeddings": 64}},
                            "pretrain": {"epochs": 3, "batch_size": 16, "lr": 1e-3}}))
    args = ["pretrain", "--config", cfg, "--corpus", str(corpus)]
    a, b = tmp_path / "a", tmp_path / "b"
    assert main([*args, "--output-dir", str(a)]) == 0
    real, calls = checkpoint_mod.ResumePoint.save, []

    def save_then_ctrl_c(self, *x, **k):
        real(self, *x, **k)
        calls.append(1)
        raise KeyboardInterrupt
    with monkeypatch.context() as m:
        m.setattr(checkpoint_mod.ResumePoint, "save", save_then_ctrl_c)
        assert main([*args, "--output-dir", str(b)]) == 130  # Ctrl-C right after epoch 1
    assert "--resume" in capsys.readouterr().err and len(calls) == 1
    assert main([*args, "--output-dir", str(b), "--resume"]) == 0
    assert "continuing from" in capsys.readouterr().out

    def log(root):
        history = json.loads((root / "pretrained" / "train_log.json").read_text())["history"]
        return [(h["epoch"], h.get("dev"), h.get("train_loss")) for h in history]
    assert log(a) == log(b) and len(log(a)) == 6
    wa, wb = (load_file(str(r / "pretrained" / "model.safetensors")) for r in (a, b))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
