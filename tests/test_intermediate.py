"""Intermediate-layer distillation: presets, loss values against hand computation, projections, end to end + resume."""
import json

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from kdnlp.cli import main
from kdnlp.config import DistillConfig, config_from_dict
from kdnlp.errors import UserError
from kdnlp.intermediate import IntermediateDistiller, LayerLoss, LayerMatch, layer_matches
from kdnlp.losses import DistillLoss
from kdnlp.students.truncated_bert import truncate


def test_presets_map_k_of_n_layers_uniformly():
    assert [(m.teacher_layer, m.student_layer) for m in layer_matches("uniform", 6, 3)] == [(2, 1), (4, 2), (6, 3)]
    tiny = layer_matches("tinybert", 12, 4)
    assert [m.feature for m in tiny] == ["embedding"] + ["hidden"] * 4 + ["attention"] * 4
    assert [(m.teacher_layer, m.student_layer) for m in tiny if m.feature == "attention"] == [(3, 1), (6, 2), (9, 3), (12, 4)]
    assert layer_matches("distilbert", 6, 2) == [LayerMatch(6, 2, "hidden", "cosine")]
    with pytest.raises(UserError, match="out of range"):
        layer_matches([{"teacher_layer": 7, "student_layer": 1}], 6, 3)


@pytest.mark.parametrize("spec,message", [
    ("tiny", "'tiny' is not a preset"),
    ([{"teacher_layer": 1, "student_layer": 1, "feature": "logits"}], "entry 0: feature 'logits'"),
    ([{"teacher_layer": 1, "student_layr": 1}], "entry 0: unknown key 'student_layr'"),
    ([{"teacher_layer": -1, "student_layer": 1}], "entry 0: teacher_layer must be a layer number"),
])
def test_bad_intermediate_specs_are_one_line(spec, message):
    with pytest.raises(UserError, match=message):
        config_from_dict({"student": {"type": "bert"}, "distill": {"intermediate": spec}})
    with pytest.raises(UserError, match="needs student.type: bert"):
        config_from_dict({"distill": {"intermediate": "uniform"}})


class Out:  # a model output with hidden states and attentions
    def __init__(self, hidden, attentions=None):
        self.hidden_states, self.attentions = hidden, attentions


def test_hidden_mse_and_cosine_against_hand_computation():
    s = torch.tensor([[[1.0, 0.0], [2.0, 2.0], [9.0, 9.0]]])  # position 2 is padding
    t = torch.tensor([[[0.0, 0.0], [1.0, 2.0], [0.0, 0.0]]])
    mask = torch.tensor([[1, 1, 0]])
    loss = LayerLoss([LayerMatch(1, 1, "hidden", "mse", 2.0), LayerMatch(1, 1, "hidden", "cosine", 1.0)], 2, 2)
    total, parts = loss(Out([None, s]), Out([None, t]), mask)
    mse = (1 + 0 + 1 + 0) / 4  # padding excluded
    cos1 = (2 + 4) / (8 ** 0.5 * 5 ** 0.5)
    cosine = ((1 - 0.0) + (1 - cos1)) / 2  # cosine with a zero vector is 0
    assert abs(parts["hidden1-1"] - cosine) < 1e-6  # the later match of the same name wins in parts
    assert abs(total.item() - (2 * mse + cosine)) < 1e-5


def test_attention_mse_masks_padded_queries():
    a = torch.rand(1, 2, 3, 3)
    b = a.clone()
    b[:, :, 2] += 5  # differs only at the padded query position
    loss = LayerLoss([LayerMatch(1, 1, "attention")], 4, 4)
    total, _ = loss(Out(None, [a]), Out(None, [b]), torch.tensor([[1, 1, 0]]))
    assert total.item() == 0
    total, _ = loss(Out(None, [a]), Out(None, [b]), torch.tensor([[1, 1, 1]]))
    assert abs(total.item() - 25 / 3) < 1e-4


def test_projection_only_where_widths_differ():
    assert len(list(LayerLoss([LayerMatch(1, 1)], 8, 8).parameters())) == 0
    proj = LayerLoss([LayerMatch(0, 0, "embedding"), LayerMatch(2, 1), LayerMatch(2, 1, "attention")], 8, 16)
    assert sorted(proj.projections) == ["embedding0-0", "hidden1-2"]
    hidden = [torch.randn(2, 5, 8)] * 2
    total, _ = proj(Out(hidden, [torch.rand(2, 2, 5, 5)]),
                    Out([torch.randn(2, 5, 16)] * 3, [None, torch.rand(2, 2, 5, 5)]), torch.ones(2, 5))
    total.backward()
    assert proj.projections["hidden1-2"].weight.grad is not None


def test_a_student_equal_to_its_teacher_has_zero_tinybert_loss():
    cfg = BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32)
    teacher = BertForSequenceClassification(cfg).eval()
    same = truncate(teacher, [0, 1, 2, 3]).eval()
    half = truncate(teacher, [0, 2]).eval()
    x = {"input_ids": torch.randint(0, 30, (2, 6)), "attention_mask": torch.tensor([[1] * 6, [1] * 4 + [0] * 2])}
    for student, zero in ((same, True), (half, False)):
        d = IntermediateDistiller(DistillLoss(DistillConfig(alpha=0.0, T=0.0)), teacher, student, "tinybert")
        out = student(**x, **d.forward_kwargs)
        assert len(out.attentions) == student.config.num_hidden_layers and out.attentions[0].shape == (2, 2, 6, 6)
        loss, parts = d.batch_loss(out, x, out.logits, torch.tensor([0, 1]), None)
        assert len(parts) == 1 + 2 * student.config.num_hidden_layers
        assert (loss.item() < 1e-10) == zero


def test_tinybert_preset_end_to_end_with_resume(write_config, tmp_path, monkeypatch, capsys):
    import kdnlp.checkpoint as checkpoint_mod
    cfg = str(write_config({"student": {"type": "bert", "num_layers": 2, "epochs": 2},
                            "distill": {"intermediate": "tinybert", "loss": "kl", "temperature": 2.0,
                                        "temperature_end": 1.0},
                            "teacher": {"epochs": 1}, "train": {"patience": 5}}))
    assert main(["distill", "--config", cfg]) == 0
    out = capsys.readouterr().out
    assert "intermediate (tinybert)" in out
    from safetensors.torch import load_file
    from transformers import AutoModelForSequenceClassification
    root = tmp_path / "out"
    student = AutoModelForSequenceClassification.from_pretrained(root / "student")
    assert type(student).__name__ == "BertForSequenceClassification" and student.config.num_hidden_layers == 2
    assert not any("projection" in k for k in load_file(str(root / "student" / "model.safetensors")))
    log = json.loads((root / "student" / "train_log.json").read_text())
    # interrupted after epoch 1 then resumed: the same end state (schedule + teacher-on-the-fly are resumable)
    real, calls = checkpoint_mod.ResumePoint.save, []

    def save(self, *a, **k):
        real(self, *a, **k)
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
    monkeypatch.setattr(checkpoint_mod.ResumePoint, "save", save)
    b = ["train-student", "--config", cfg, "--set", "student.name=again"]
    assert main(b) == 130
    monkeypatch.setattr(checkpoint_mod.ResumePoint, "save", real)
    assert main([*b, "--resume"]) == 0
    again = json.loads((root / "again" / "train_log.json").read_text())
    assert [h.get("train_loss") for h in again["history"]] == [h.get("train_loss") for h in log["history"]]
