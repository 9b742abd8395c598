"""distill.*_end schedules (constant / linear) and multi-teacher averaging of logits (distill.teachers)."""
import json
import math

import numpy as np
import pytest
import torch

from kdnlp.cli import main
from kdnlp.config import DistillConfig, config_from_dict
from kdnlp.errors import UserError
from kdnlp.losses import DistillLoss


def test_constant_schedule_keeps_the_values():
    loss = DistillLoss(DistillConfig(alpha=0.3, T=0.7, temperature=2.0))
    for step in (0, 5, 9):
        loss.start_step(step, 10)
        assert (loss.alpha, loss.T, loss.temperature) == (0.3, 0.7, 2.0)


def test_linear_schedule_moves_from_start_to_end():
    loss = DistillLoss(DistillConfig(alpha=0.0, alpha_end=1.0, T=1.0, T_end=0.0, loss="kl",
                                     temperature=4.0, temperature_end=1.0))
    seen = []
    for step in range(5):
        loss.start_step(step, 5)
        seen.append((loss.alpha, loss.T, loss.temperature))
    assert seen[0] == (0.0, 1.0, 4.0) and seen[-1] == (1.0, 0.0, 1.0)
    assert seen[2] == (0.5, 0.5, 2.5)
    # the loss really uses the scheduled temperature: KL at t=2.5 * t^2
    s, t = torch.tensor([[1.0, 2.0]]), torch.tensor([[2.0, 0.0]])
    loss.start_step(2, 5)
    total, parts = loss(s, torch.tensor([1]), t)
    p, q = torch.softmax(t / 2.5, -1), torch.softmax(s / 2.5, -1)
    kl = float((p * (p / q).log()).sum()) * 2.5 ** 2
    ce = float(-torch.log_softmax(s, -1)[0, 1])
    assert math.isclose(parts["kl"], kl, rel_tol=1e-5)
    assert math.isclose(total.item(), 0.5 * ce + 0.5 * kl, rel_tol=1e-5)


def test_teacher_needed_when_T_only_grows_from_zero():
    assert DistillLoss(DistillConfig(alpha=1.0, T=0.0, T_end=1.0)).needs_teacher
    assert not DistillLoss(DistillConfig(alpha=1.0, T=0.0)).needs_teacher


@pytest.mark.parametrize("distill,message", [
    ({"temperature_end": 0}, "distill.temperature_end: must be > 0"),
    ({"T_end": -1}, "distill.T_end: must be >= 0"),
    ({"teachers": []}, "distill.teachers: use a list"),
])
def test_bad_schedule_and_teacher_values(distill, message):
    with pytest.raises(UserError, match=message):
        config_from_dict({"distill": distill})


def test_two_teachers_logits_are_averaged(write_config, tmp_path, monkeypatch):
    import kdnlp.trainer as trainer_mod
    cfg = str(write_config({"teacher": {"epochs": 1}, "student": {"epochs": 1}}))
    other = tmp_path / "other"
    assert main(["train-teacher", "--config", cfg]) == 0
    assert main(["train-teacher", "--config", cfg, "--seed", "7", "--output-dir", str(other)]) == 0
    used = {}
    real_fit = trainer_mod.Trainer.fit

    def fit(self, model, tokenizer, loss_fn, hp, save_dir, name, teacher_logits=None, train_examples=None):
        used["logits"] = teacher_logits
        return real_fit(self, model, tokenizer, loss_fn, hp, save_dir, name, teacher_logits, train_examples)
    monkeypatch.setattr(trainer_mod.Trainer, "fit", fit)
    assert main(["train-student", "--config", cfg, "--set", f"distill.teachers=[teacher, {other / 'teacher'}]"]) == 0
    logits_dir = tmp_path / "out" / "logits"
    own = np.load(logits_dir / "train.npy")
    extra = [np.load(p) for p in logits_dir.glob("train.*.npy")]
    assert len(extra) == 1 and not np.allclose(own, extra[0])  # a second, different teacher
    assert np.allclose(used["logits"], (own + extra[0]) / 2, atol=1e-6)
    assert json.loads((tmp_path / "out" / "student" / "report.json").read_text())["accuracy"] >= 0
