"""FastBERT: the layer loop equals BERT's, early exit really skips layers (counted), two-stage training, speeds CLI."""
import json

import pytest
import torch
from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

from kdnlp.cli import main
from kdnlp.students.fastbert import FastBertForSequenceClassification, from_bert, normalized_entropy


@pytest.fixture
def fast():
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32,
                     num_labels=3)
    bert = BertForSequenceClassification(cfg).eval()
    model = from_bert(bert).eval()
    for b in model.branches:  # sharper branches: a spread of entropies so that some examples exit, some not
        torch.nn.init.normal_(b.out.weight, std=3.0)
    return bert, model


def _inputs():
    g = torch.Generator().manual_seed(1)
    mask = torch.ones(12, 7, dtype=torch.long)
    mask[::3, 4:] = 0  # some padded rows
    return {"input_ids": torch.randint(0, 30, (12, 7), generator=g), "attention_mask": mask}


def _count_rows(model):
    """Rows each encoder layer processed (a forward hook per layer)."""
    counts = [0] * len(model.bert.encoder.layer)
    for i, layer in enumerate(model.bert.encoder.layer):
        layer.register_forward_hook(lambda mod, args, out, i=i: counts.__setitem__(i, counts[i] + args[0].shape[0]))
    return counts


def test_speed_0_equals_the_bert_it_came_from(fast):
    bert, model = fast
    x = _inputs()
    assert torch.allclose(model(**x).logits, bert(**x).logits, atol=1e-5)


def test_early_exit_skips_layers_and_keeps_predictions(fast):
    bert, model = fast
    x = _inputs()
    with torch.no_grad():
        full = model(**x, output_branch_logits=True)  # every branch for every example
    counts = _count_rows(model)
    entropies = torch.stack([normalized_entropy(b) for b in full.branch_logits], 1)  # (batch, k-1)
    speed = float(entropies[:, 0].median())  # about half exit after layer 1
    model.config.speed = speed
    counts[:] = [0] * 4
    out = model(**x)
    # expected exit layer: the first branch below speed, else the last layer
    below = entropies < speed
    expected = torch.where(below.any(1), below.int().argmax(1) + 1, torch.tensor(4))
    assert torch.equal(out.exit_layers, expected)
    assert 0 < (expected == 1).sum() < 12
    # layer i ran only on the examples still in the batch: fewer layer calls than 4 x 12 rows
    assert counts == [int((expected > i).sum()) for i in range(4)]
    assert sum(counts) < 4 * 12
    for row, layer in enumerate(expected.tolist()):  # each example got the prediction of where it exited
        ref = full.logits[row] if layer == 4 else full.branch_logits[layer - 1][row]
        assert torch.allclose(out.logits[row], ref, atol=1e-5)
    model.config.speed = 1.0  # everything exits after layer 1 (normalized entropy < 1 unless uniform)
    counts[:] = [0] * 4
    assert model(**x).exit_layers.tolist() == [1] * 12 and counts == [12, 0, 0, 0]


def test_branches_pool_real_tokens_only(fast):
    """A branch reads the mean of the real tokens' states, so padding a sentence does not change its exit decision."""
    _, model = fast
    ids = torch.tensor([[2, 5, 7, 9, 3]])
    padded = {"input_ids": torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], 1),
              "attention_mask": torch.tensor([[1] * 5 + [0] * 4])}
    with torch.no_grad():
        a = model(input_ids=ids, attention_mask=torch.ones_like(ids), output_branch_logits=True).branch_logits
        b = model(**padded, output_branch_logits=True).branch_logits
    assert all(torch.allclose(x, y, atol=1e-5) for x, y in zip(a, b))


def test_normalized_entropy_range():
    assert torch.allclose(normalized_entropy(torch.zeros(2, 5)), torch.ones(2))
    assert normalized_entropy(torch.tensor([[100.0, 0.0, 0.0]])).item() < 1e-6


def test_fastbert_two_stages_and_speeds_cli(write_config, tmp_path, capsys):
    cfg = str(write_config({"student": {"type": "fastbert", "num_layers": 4, "epochs": 1, "branch_epochs": 2,
                                        "speed": 0.3, "lr": 1e-3}, "teacher": {"epochs": 2}}))
    assert main(["distill", "--config", cfg]) == 0
    out = capsys.readouterr().out
    assert "fastbert stage 1/2" in out and "fastbert stage 2/2" in out
    root = tmp_path / "out"
    backbone = AutoModelForSequenceClassification.from_pretrained(root / "student_backbone")
    student = AutoModelForSequenceClassification.from_pretrained(root / "student")
    assert isinstance(student, FastBertForSequenceClassification) and student.config.speed == 0.3
    sb, ss = backbone.state_dict(), student.state_dict()
    assert all(torch.equal(sb[k], ss[k]) for k in sb if not k.startswith("branches."))  # stage 2: backbone frozen
    assert any(not torch.equal(sb[k], ss[k]) for k in sb if k.startswith("branches."))  # branches trained
    assert main(["fastbert-speeds", "--config", cfg, "--speeds", "0,1"]) == 0
    assert "| mean layers |" in capsys.readouterr().out
    rows = json.loads((root / "student" / "speeds.json").read_text())["rows"]
    assert [r["mean_layers"] for r in rows] == [4.0, 1.0]
    assert main(["fastbert-speeds", "--config", cfg, "--speeds", "0", "--split", "dev"]) == 0  # choose the speed on dev
    assert "student on dev (" in capsys.readouterr().out
    dev = json.loads((root / "student" / "speeds_dev.json").read_text())
    assert dev["split"] == "dev" and dev["rows"][0]["mean_layers"] == 4.0
    # kdnlp bench: the FastBERT row at its saved speed, plus the sweep over --speeds on the whole test split
    assert main(["bench", "--config", cfg, "--models", "student", "--speeds", "0,1", "--runs", "1", "--examples", "8"]) == 0
    bench = json.loads((root / "bench.json").read_text())
    assert [r["mean_layers"] for r in bench["fastbert_speeds"]["student"]["rows"]] == [4.0, 1.0]
    assert "student: early exit per speed" in (root / "bench.md").read_text()
    assert main(["fastbert-speeds", "--config", cfg, "--speeds", "2"]) == 2
    assert "--speeds 2: use comma-separated numbers" in capsys.readouterr().err
    assert main(["fastbert-speeds", "--config", cfg, "--model", "teacher"]) == 2
    assert "not a FastBERT model" in capsys.readouterr().err
