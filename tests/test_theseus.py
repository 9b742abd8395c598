"""BERT-of-Theseus: replacement probability, p schedule, p=0 is the teacher, frozen predecessor, plain k-layer output."""
import json

import torch
from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

from kdnlp.cli import main
from kdnlp.config import DistillConfig
from kdnlp.losses import DistillLoss
from kdnlp.students.theseus import ReplacementSchedule, TheseusLayers, blocks
from kdnlp.students.truncated_bert import truncate


def _theseus(dropout=0.0):
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32,
                     hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    teacher = BertForSequenceClassification(cfg).eval()
    model = truncate(teacher, [0, 2])
    model.bert.encoder.layer = TheseusLayers(model.bert.encoder.layer,
                                             [[teacher.bert.encoder.layer[j] for j in b] for b in blocks(4, 2)])
    return teacher, model


def test_blocks():
    assert [list(b) for b in blocks(12, 6)] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9], [10, 11]]
    assert [list(b) for b in blocks(6, 4)] == [[0], [1, 2], [3], [4, 5]]


def test_replacement_probability():
    teacher, model = _theseus()
    layers = model.bert.encoder.layer.train()
    successor = set(map(id, layers._modules.values()))
    for p in (0.0, 0.3, 1.0):
        layers.p = p
        replaced = [sum(id(m) in successor for m in layers) for _ in range(2000)]  # successor layers used of 2
        assert abs(sum(replaced) / 4000 - p) < 0.04
    layers.eval()
    layers.p = 0.0
    assert [id(m) for m in layers] == [id(m) for m in layers._modules.values()]  # eval: the successor alone


def test_p0_is_the_teacher_and_only_successor_weights_are_saved():
    teacher, model = _theseus()
    x = torch.randint(0, 30, (3, 6))
    model.train()
    model.bert.encoder.layer.p = 0.0
    assert torch.allclose(model(input_ids=x).logits, teacher(input_ids=x).logits, atol=1e-5)
    keys = model.state_dict().keys()
    assert any(k.startswith("bert.encoder.layer.1.") for k in keys) and not any("layer.2." in k for k in keys)


def test_linear_schedule_reaches_one():
    _, model = _theseus()
    s = ReplacementSchedule(DistillLoss(DistillConfig()), model.bert.encoder.layer, 0.5, "linear")
    assert [s.rate(step, 5) for step in range(5)] == [0.5, 0.625, 0.75, 0.875, 1.0]
    s.start_step(2, 5)
    assert model.bert.encoder.layer.p == 0.75
    assert ReplacementSchedule(DistillLoss(DistillConfig()), model.bert.encoder.layer, 0.3, "constant").rate(4, 5) == 0.3


def test_theseus_end_to_end(write_config, tmp_path, capsys):
    cfg = str(write_config({"student": {"type": "theseus", "num_layers": 2, "epochs": 1, "successor_epochs": 1,
                                        "replacing_schedule": "linear", "replacing_rate": 0.5},
                            "teacher": {"epochs": 1}}))
    assert main(["distill", "--config", cfg]) == 0
    assert "theseus stage 2/2" in capsys.readouterr().out
    root = tmp_path / "out"
    teacher = AutoModelForSequenceClassification.from_pretrained(root / "teacher")
    replacing = AutoModelForSequenceClassification.from_pretrained(root / "student_replacing")
    final = AutoModelForSequenceClassification.from_pretrained(root / "student")
    for m in (replacing, final):
        assert type(m) is BertForSequenceClassification and m.config.num_hidden_layers == 2
    # stage 1 trained only successor layers: embeddings and classifier are still the teacher's
    assert torch.equal(replacing.bert.embeddings.word_embeddings.weight, teacher.bert.embeddings.word_embeddings.weight)
    assert torch.equal(replacing.classifier.weight, teacher.classifier.weight)
    assert not torch.equal(replacing.bert.encoder.layer[0].intermediate.dense.weight,
                           teacher.bert.encoder.layer[0].intermediate.dense.weight)
    # stage 2 fine-tunes all of the successor
    assert not torch.equal(final.classifier.weight, teacher.classifier.weight)
    assert json.loads((root / "student" / "report.json").read_text())["n_params"] < \
        json.loads((root / "teacher" / "report.json").read_text())["n_params"]


def test_a_step_without_any_successor_layer_still_backpropagates():
    _, model = _theseus()
    model.requires_grad_(False)
    model.bert.encoder.layer.requires_grad_(True)
    s = ReplacementSchedule(DistillLoss(DistillConfig(alpha=1.0, T=0.0)), model.bert.encoder.layer, 0.0, "constant")
    s.start_step(0, 1)
    model.train()
    loss, _ = s(model(input_ids=torch.randint(0, 30, (2, 5))).logits, torch.tensor([0, 1]), None)
    loss.backward()  # zero gradient rather than an error
    assert all(p.grad is not None and not p.grad.any() for p in model.bert.encoder.layer.parameters())
