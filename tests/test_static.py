"""The static student (student.type: static) and its tokenizer, and the load-once predictor (kdnlp.load)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from kdnlp.students.static import StaticConfig, StaticForSequenceClassification, pca
from kdnlp.tokenization.static import StaticTokenizer

ROOT = Path(__file__).resolve().parents[1]
TEXTS = ["A gripping, funny film!", "dull and far too long", "不好看 的 电影", "unseenword gripping"]

STATIC = {"type": "static", "embedding_dim": 16, "mlp_size": 16, "epochs": 6, "batch_size": 16, "lr": 0.01,
          "ngrams": 2, "hash_buckets": 500}


def test_words_tokenizer_ids_and_ngrams(tmp_path):
    tok = StaticTokenizer.build_words(["a gripping film", "a dull film"], ngrams=2, buckets=100)
    ids = tok(["A gripping film"])["input_ids"][0]
    a, g, f = (tok.index[w] for w in ("a", "gripping", "film"))
    assert ids[:3] == [a, g, f]                                # known words, lower-cased
    assert len(ids) == 5 and all(tok.base_size <= i < tok.vocab_size for i in ids[3:])  # two bigrams, in the buckets
    unknown = tok(["zzz gripping"])["input_ids"][0]            # an unknown word: no unigram, but its bigram stays
    assert unknown[0] == g and len(unknown) == 2 and unknown[1] >= tok.base_size
    assert tok([""])["input_ids"] == [[tok.unk_token_id]]      # something to pool over
    assert tok(["a gripping film"], max_length=2)["input_ids"][0][:2] == [a, g]
    assert len(tok(["a gripping film"], max_length=2)["input_ids"][0]) == 3  # max_length counts unigrams
    assert [len(x) for x in tok(["不好看"])["input_ids"]] == [2]  # CJK characters one by one: unknown, so 2 bigrams
    tok.save_pretrained(tmp_path)
    again = StaticTokenizer.from_pretrained(tmp_path)
    assert again(TEXTS)["input_ids"] == tok(TEXTS)["input_ids"]


def test_hashing_is_stable_across_processes(tmp_path):
    """The n-gram ids must not depend on the process (Python's str hash is salted per process)."""
    tok = StaticTokenizer.build_words(TEXTS[:2], ngrams=3, buckets=1009)
    tok.save_pretrained(tmp_path)
    code = ("import json, sys; from kdnlp.tokenization.static import StaticTokenizer; "
            f"print(json.dumps(StaticTokenizer.from_pretrained(sys.argv[1])({TEXTS!r})['input_ids']))")
    outs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        run = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=env, check=True)
        outs.append(json.loads(run.stdout))
    assert outs[0] == outs[1] == tok(TEXTS)["input_ids"]


def test_teacher_wordpiece_tokenizer(tiny_bert, tmp_path):
    from kdnlp.teacher import load_tokenizer
    hf = load_tokenizer(tiny_bert)
    tok = StaticTokenizer.from_teacher(hf, ngrams=2, buckets=50)
    text = "好棒的"
    ids = tok([text])["input_ids"][0]
    assert ids[:3] == hf([text], add_special_tokens=False)["input_ids"][0]  # no [CLS]/[SEP]
    assert tok.vocab_size == len(hf.get_vocab()) + 50
    tok.save_pretrained(tmp_path)
    assert StaticTokenizer.from_pretrained(tmp_path)([text] * 3)["input_ids"] == [ids] * 3


def test_mean_and_sif_pooling_ignore_padding():
    for pooling in ("mean", "sif"):
        model = StaticForSequenceClassification(StaticConfig(vocab_size=20, embedding_dim=8, mlp_size=0, num_labels=3,
                                                             pooling=pooling)).eval()
        model.token_weight.uniform_(0.1, 1.0)
        one = model(input_ids=torch.tensor([[5, 6, 7]]), attention_mask=torch.ones(1, 3, dtype=torch.long)).logits
        padded = model(input_ids=torch.tensor([[5, 6, 7, 0, 0]]), attention_mask=torch.tensor([[1, 1, 1, 0, 0]])).logits
        assert torch.allclose(one, padded, atol=1e-6)
        manual = model.embed.weight[[5, 6, 7]] * (model.token_weight[[5, 6, 7]][:, None] if pooling == "sif" else 1)
        assert torch.allclose(model.pool(torch.tensor([[5, 6, 7]])), manual.mean(0, keepdim=True), atol=1e-6)


def test_pca_keeps_the_top_directions():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2)) @ np.array([[10.0, 0, 0, 0], [0, 3.0, 0, 0]]) + rng.normal(0, 0.01, (200, 4))
    y = pca(x, 2)
    assert y.shape == (200, 2) and y[:, 0].std() > 2 * y[:, 1].std() > 2  # about 10 and 3; the noise dims dropped


def test_static_student_learns_saves_predicts_exports(write_config, tmp_path):
    """Trained alone on the tiny set it beats chance; saved -> kdnlp predict -> ONNX parity; kdnlp.load == predict."""
    import kdnlp
    from kdnlp.cli import main
    cfg = write_config({"student": {**STATIC, "epochs": 15}, "distill": {"alpha": 1.0, "T": 0.0}})
    assert main(["train-student", "--config", str(cfg)]) == 0
    report = json.loads((tmp_path / "out" / "student" / "report.json").read_text())
    assert report["accuracy"] >= 0.75  # the positive/negative characters decide the label: chance is 0.5
    assert main(["predict", "--config", str(cfg), "好棒赞"]) == 0
    mdir = tmp_path / "out" / "student"
    texts = ["好棒赞爱", "差烂坏恨", "很好的", "的了是"]
    once = kdnlp.predict(mdir, texts)
    predictor = kdnlp.load(mdir)
    assert predictor.predict(texts) == once and predictor.predict(texts[:1]) == once[:1]
    assert predictor.labels == ["neg", "pos"] or sorted(predictor.labels) == ["neg", "pos"]
    for quantize in ([], ["--quantize", "int8"]):
        assert main(["export", "--config", str(cfg), "--model", "student", "--format", "onnx", *quantize]) == 0
    records = json.loads((mdir / "export" / "export.json").read_text())
    assert records["model.onnx"]["max_abs_logit_diff"] < 1e-4
    assert records["model.int8.onnx"]["prediction_agreement"] >= 0.9
    assert main(["bench", "--config", str(cfg), "--models", "student", "--runs", "3", "--examples", "16"]) == 0
    bench = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert any(r.get("throughput_examples_per_second", 0) > 0 for r in bench["rows"])


@pytest.mark.parametrize("tokenize", ["teacher", "words"])
def test_static_student_distilled_with_sif_and_teacher_embeddings(write_config, tmp_path, tokenize):
    """Teacher embeddings (PCA) over the teacher's WordPiece, or mapped onto its own words (mean of the pieces)."""
    from kdnlp.cli import main
    from kdnlp.modeldir import load_model_dir
    cfg = write_config({"student": {**STATIC, "epochs": 1, "embeddings": "teacher", "pooling": "sif",
                                    "embedding_dim": 8, "tokenize": tokenize, "freeze_embeddings": True}})
    assert main(["distill", "--config", str(cfg)]) == 0
    mdir = tmp_path / "out" / "student"
    config = json.loads((mdir / "config.json").read_text())
    assert config["model_type"] == "kdnlp-static" and config["pooling"] == "sif" and config["embedding_dim"] == 8
    model, tok, _ = load_model_dir(mdir)
    assert tok.mode == tokenize and (mdir / "tokenizer.json").is_file() == (tokenize == "teacher")
    weights = model.token_weight[:tok.base_size]
    assert weights.min() < weights.max() <= 1  # SIF: frequent tokens weigh less
    if tokenize == "words":  # a word's vector is the mean of its pieces' (frozen: still the initial vectors)
        assert model.embed.weight[tok.index["好"]].abs().sum() > 0


@pytest.mark.parametrize("overrides, message", [
    ({"student": {"type": "static", "pooling": "max"}}, "student.pooling: 'max' is unknown"),
    ({"student": {"type": "static", "ngrams": 0}}, "student.ngrams: use 1"),
    ({"student": {"type": "static", "hash_buckets": 0}}, "student.hash_buckets: must be >= 1"),
    ({"student": {"type": "static", "tokenize": "bpe"}}, "student.tokenize: 'bpe' is unknown"),
    ({"student": {"type": "static", "tokenize": "teacher", "embeddings": "vectors.txt"}}, "need the words tokenizer"),
    ({"student": {"type": "bilstm", "embeddings": "model2vec"}}, "model2vec is for student.type: static"),
    ({"student": {"type": "static", "mlp_size": -1}}, "student.mlp_size: must be >= 0"),
    ({"task": "ner", "student": {"type": "static"}}, "no per-token output for task: ner"),
])
def test_bad_static_values_exit_2_with_one_line(write_config, capsys, overrides, message):
    from kdnlp.cli import main
    cfg = write_config(overrides)
    assert main(["distill", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_static_pairs_and_multilabel_build_and_run():
    from kdnlp.data import model_inputs
    pairs = StaticForSequenceClassification(StaticConfig(vocab_size=30, embedding_dim=8, mlp_size=4, num_labels=2,
                                                         siamese=True)).eval()
    batch = {"input_ids": torch.tensor([[3, 4, 5]]), "attention_mask": torch.ones(1, 3, dtype=torch.long),
             "input_ids_b": torch.tensor([[6, 7]]), "attention_mask_b": torch.ones(1, 2, dtype=torch.long)}
    logits = pairs(**model_inputs(pairs, batch, torch.device("cpu"))).logits
    u, v = pairs.pool(batch["input_ids"]), pairs.pool(batch["input_ids_b"])
    assert torch.allclose(logits, pairs.mlp(torch.cat([u, v, u * v, (u - v).abs()], -1)), atol=1e-6)
    multi = StaticForSequenceClassification(StaticConfig(vocab_size=30, embedding_dim=8, mlp_size=4, num_labels=5))
    assert multi(input_ids=torch.tensor([[1, 2]])).logits.shape == (1, 5)


def test_static_siamese_pairs_end_to_end(tmp_path, tiny_bert):
    """Sentence pairs through train-student, predict --pair and kdnlp.load."""
    import random

    import yaml

    import kdnlp
    from kdnlp.cli import main
    rng = random.Random(0)
    words = ["red", "blue", "green", "cat", "dog", "big"]
    for split, n in (("train", 160), ("test", 30)):
        rows = ["sentence1\tsentence2\tlabel"]
        for i in range(n):
            a = " ".join(rng.sample(words, 3))
            b = a if i % 2 == 0 else " ".join(rng.sample(words, 3))
            rows.append(f"{a}\t{b}\t{'same' if i % 2 == 0 else 'diff'}")
        (tmp_path / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    cfg = {"data": {"train": str(tmp_path / "train.tsv"), "test": str(tmp_path / "test.tsv"), "max_length": 16},
           "teacher": {"pretrained": str(tiny_bert)}, "student": {**STATIC, "siamese": True, "epochs": 2},
           "distill": {"alpha": 1.0, "T": 0.0}, "train": {"device": "cpu"}, "output_dir": str(tmp_path / "out")}
    path = tmp_path / "pairs.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train-student", "--config", str(path)]) == 0
    assert main(["predict", "--config", str(path), "--pair", "red cat", "red cat"]) == 0
    got = kdnlp.load(tmp_path / "out" / "student").predict([("red cat big", "red cat big"), ("dog", "blue green")])
    assert [set(r) >= {"text", "text_b", "label"} for r in got] == [True, True]


def test_multilabel_static_student(tmp_path, tiny_bert):
    import yaml

    import kdnlp
    from kdnlp.cli import main
    rows = [{"text": t, "labels": ls} for t, ls in [("好棒", ["pos"]), ("差烂", ["neg"]), ("好差", ["pos", "neg"]),
                                                       ("的了", [])] * 20]
    (tmp_path / "train.json").write_text(json.dumps(rows, ensure_ascii=False))
    (tmp_path / "test.json").write_text(json.dumps(rows[:8], ensure_ascii=False))
    cfg = {"task": "multilabel",
           "data": {"train": str(tmp_path / "train.json"), "test": str(tmp_path / "test.json"), "label_field": "labels",
                    "allow_empty_labels": True, "max_length": 16},
           "teacher": {"pretrained": str(tiny_bert)}, "student": {**STATIC, "epochs": 2},
           "distill": {"alpha": 1.0, "T": 0.0}, "train": {"device": "cpu"}, "output_dir": str(tmp_path / "out")}
    path = tmp_path / "ml.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train-student", "--config", str(path)]) == 0
    mdir = tmp_path / "out" / "student"
    assert kdnlp.load(mdir).predict(["好棒"]) == kdnlp.predict(mdir, ["好棒"])
    assert "labels" in kdnlp.predict(mdir, ["好棒"])[0]


def test_load_once_predictor_for_ner_matches_predict(write_config, tmp_path):
    """kdnlp.load covers NER too (through Trainer.predict_logits): the same entities as kdnlp.predict."""
    import kdnlp
    from kdnlp.cli import main
    from tests.test_ner import _ner_file
    _ner_file(tmp_path / "train.txt", 60, 1)
    _ner_file(tmp_path / "test.txt", 10, 2)
    cfg = write_config({"task": "ner", "data": {"train": str(tmp_path / "train.txt"), "test": str(tmp_path / "test.txt"),
                                                "max_length": 8}, "teacher": {"epochs": 1, "lr": 3e-3}})
    assert main(["train-teacher", "--config", str(cfg)]) == 0
    mdir = tmp_path / "out" / "teacher"
    texts = ["的好棒了差是", "好棒的差"]
    predictor = kdnlp.load(mdir)
    assert predictor.task_name == "ner" and predictor.max_length == 8
    assert predictor.predict(texts) == kdnlp.predict(mdir, texts)
    assert all("entities" in r for r in predictor.predict(texts))


def test_model2vec_embeddings_or_one_line_without_it(write_config, tmp_path, capsys, monkeypatch):
    """With model2vec[distill]: the vectors come from its distillation of the teacher. Without: exit 2, one line."""
    from kdnlp import preflight
    from kdnlp.cli import main
    cfg = write_config({"student": {**STATIC, "epochs": 1, "embeddings": "model2vec", "embedding_dim": 8}})
    if not preflight._model2vec_distill_importable():
        pytest.skip("model2vec[distill] not installed")
    assert main(["distill", "--config", str(cfg)]) == 0
    assert "static embeddings: model2vec distilled from" in capsys.readouterr().out
    monkeypatch.setattr(preflight, "_model2vec_distill_importable", lambda: False)
    assert main(["train-student", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert "model2vec needs the optional model2vec package" in err and len(err.splitlines()) == 1
