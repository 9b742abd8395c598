"""Issue 21 item 6: thresholds with a global fallback, the prior-initialised multi-label head, and the teacher head
over mean pooling (kdnlp/pooling.py) where the checkpoint declares it."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from kdnlp.errors import UserError
from kdnlp.multilabel import GRID, choose_thresholds, init_prior_bias
from kdnlp.pooling import (MeanPooledBertForSequenceClassification, apply_pooling, choose_pooling, declared_pooling,
                           to_mean_pooled)


def test_per_label_thresholds_fall_back_to_global_for_labels_with_few_dev_positives():
    rng = np.random.default_rng(0)
    n = 200
    gold = np.zeros((n, 3), dtype=int)
    gold[:60, 0] = 1          # label 0: 60 dev positives -> its own threshold
    gold[[0, 1], 1] = 1       # label 1: 2 positives -> the global threshold
    probs = rng.uniform(0.0, 0.3, (n, 3))
    probs[:60, 0] = rng.uniform(0.75, 0.95, 60)   # label 0 separates best at a high threshold
    probs[60:, 0] = rng.uniform(0.0, 0.7, n - 60)
    probs[[0, 1], 1] = [0.05, 0.06]               # label 1's two positives sit low: alone it would pick ~0.05
    glob = choose_thresholds(probs, gold, "global")[0]
    per = choose_thresholds(probs, gold, "per_label")
    fall = choose_thresholds(probs, gold, "per_label", min_positives=5)
    assert per[1] <= 0.06 and glob > 0.06          # the unguarded rule fits label 1 to its two rows
    assert fall[1] == glob and fall[2] == glob     # 2 positives and none: the global threshold
    assert fall[0] == per[0] and 0.6 < fall[0] <= 0.75
    assert per[2] == glob                          # no dev positives at all: global even without min_positives
    assert glob in GRID


def test_prior_bias_starts_the_head_at_the_label_frequencies(tiny_bert):
    from transformers import AutoModelForSequenceClassification
    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_bert), num_labels=3, ignore_mismatched_sizes=True)
    sets = [(0,), (0, 1), (0,), (1,)] * 5 + [()] * 80   # 100 rows: label 0 in 15, label 1 in 10, label 2 in none
    bias = init_prior_bias(model, sets, 3)
    got = torch.sigmoid(model.classifier.bias).detach().numpy()
    assert got[:2] == pytest.approx([0.15, 0.10], abs=1e-6)
    assert got[2] == pytest.approx(0.5 / 100, abs=1e-6) and np.isfinite(bias).all()  # absent label: clipped


def _batch():
    ids = torch.tensor([[2, 7, 9, 11, 3, 0, 0], [2, 8, 3, 0, 0, 0, 0]])
    return ids, (ids != 0).long()


def test_mean_pooled_head_is_the_masked_token_mean_through_the_head(tiny_bert):
    from transformers import AutoModelForSequenceClassification
    cls_model = AutoModelForSequenceClassification.from_pretrained(str(tiny_bert), num_labels=3, ignore_mismatched_sizes=True).eval()
    model = to_mean_pooled(cls_model).eval()
    assert isinstance(model, MeanPooledBertForSequenceClassification) and model.bert.pooler is None
    ids, mask = _batch()
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits
        h = cls_model.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        by_hand = torch.stack([h[i, :int(mask[i].sum())].mean(0) for i in range(2)]) @ cls_model.classifier.weight.T \
            + cls_model.classifier.bias
        assert torch.allclose(logits, by_hand, atol=1e-5)
        # padding does not move a row: row 1 alone, unpadded, gives the same logits
        alone = model(input_ids=ids[1:, :3], attention_mask=mask[1:, :3]).logits
        assert torch.allclose(alone, logits[1:], atol=1e-5)
        assert not torch.allclose(cls_model(input_ids=ids, attention_mask=mask).logits, logits, atol=1e-3)


def test_mean_pooled_teacher_saves_and_loads_through_kdnlp_with_identical_logits(tiny_bert, tmp_path):
    from transformers import AutoModelForSequenceClassification

    from kdnlp.modeldir import load_model_dir, save_model_dir
    from kdnlp.teacher import load_tokenizer
    model = to_mean_pooled(AutoModelForSequenceClassification.from_pretrained(str(tiny_bert), num_labels=2)).eval()
    model.config.problem_type = "multi_label_classification"
    save_model_dir(model, load_tokenizer(tiny_bert), ["a", "b"], tmp_path / "teacher", {})
    assert json.loads((tmp_path / "teacher" / "config.json").read_text())["model_type"] == "kdnlp-bert-mean"
    back, _, labels = load_model_dir(tmp_path / "teacher", "multilabel")
    assert type(back) is MeanPooledBertForSequenceClassification and labels == ["a", "b"]
    ids, mask = _batch()
    with torch.no_grad():
        assert torch.equal(back.eval()(input_ids=ids, attention_mask=mask).logits, model(input_ids=ids, attention_mask=mask).logits)


def _declare(d, **modes):
    (d / "1_Pooling").mkdir()
    (d / "modules.json").write_text(json.dumps([{"idx": 0, "path": "", "type": "sentence_transformers.models.Transformer"},
                                                {"idx": 1, "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
    (d / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 32, **modes}))


def test_pooling_follows_the_checkpoints_declaration(tiny_bert, tmp_path):
    from transformers import AutoModelForSequenceClassification
    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_bert), num_labels=2)
    assert declared_pooling(tiny_bert) is None and choose_pooling("auto", None, model, "x") == "cls"
    mean_dir, cls_dir = tmp_path / "mean", tmp_path / "cls"
    for d in (mean_dir, cls_dir):
        d.mkdir()
    _declare(mean_dir, pooling_mode_cls_token=False, pooling_mode_mean_tokens=True)
    _declare(cls_dir, pooling_mode_cls_token=True, pooling_mode_mean_tokens=False)
    assert declared_pooling(mean_dir) == "mean" and declared_pooling(cls_dir) == "cls"
    assert apply_pooling(model, "auto", mean_dir, "m") is model  # a checkpoint saved as a classifier keeps its head
    model.config.architectures = ["BertModel"]                    # a bare encoder (as sentence-transformers ship)
    assert type(apply_pooling(model, "auto", mean_dir, "m")) is MeanPooledBertForSequenceClassification
    assert apply_pooling(model, "auto", cls_dir, "c") is model and apply_pooling(model, "cls", mean_dir, "m") is model
    assert type(apply_pooling(model, "mean", None, "x")) is MeanPooledBertForSequenceClassification
    with pytest.raises(UserError, match="BERT-architecture"):
        choose_pooling("mean", None, torch.nn.Linear(2, 2), "x")


def test_multilabel_distill_with_a_mean_pooling_checkpoint(tmp_path, tiny_bert, write_config, capsys):
    """A checkpoint declaring mean pooling: the teacher trains and saves mean-pooled, the truncated BERT student
    inherits it, and predict / export read both."""
    from kdnlp.cli import main

    from test_shapes import multilabel_config
    ckpt = tmp_path / "st_bert"
    shutil.copytree(tiny_bert, ckpt)
    _declare(ckpt, pooling_mode_cls_token=False, pooling_mode_mean_tokens=True)
    config = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps({**config, "architectures": ["BertModel"]}))
    cfg = multilabel_config(write_config, tmp_path, 120, 30, distill={"alpha": 1.0, "T": 1.0, "loss": "bce"},
                            teacher={"pretrained": str(ckpt), "epochs": 1},
                            student={"epochs": 1, "type": "bert", "num_layers": 2})
    assert main(["distill", "--config", str(cfg)]) == 0
    assert "the head reads the mean of the last layer's tokens" in capsys.readouterr().out
    for name in ("teacher", "student"):
        config = json.loads((tmp_path / "out" / name / "config.json").read_text())
        assert config["model_type"] == "kdnlp-bert-mean" and len(config["multilabel_thresholds"]) == 3
    assert main(["predict", "--config", str(cfg), "--model", "teacher", "--json", "好棒"]) == 0
    assert set(json.loads(capsys.readouterr().out.splitlines()[0])["probabilities"]) == {"pos", "neg", "none"}
    assert main(["export", "--config", str(cfg), "--model", "teacher", "--format", "onnx"]) == 0
    record = json.loads((tmp_path / "out" / "teacher" / "export" / "export.json").read_text())["model.onnx"]
    assert record["max_abs_logit_diff"] < 1e-4 and record["prediction_agreement"] == 1.0


def test_fastbert_refuses_a_mean_pooled_teacher_in_one_line(tiny_bert):
    from transformers import AutoModelForSequenceClassification

    from kdnlp.students.fastbert import from_bert
    cls_model = AutoModelForSequenceClassification.from_pretrained(str(tiny_bert), num_labels=2)
    assert from_bert(cls_model) is not None
    with pytest.raises(UserError, match="teacher.pooling: cls"):
        from_bert(to_mean_pooled(cls_model))
