import math

import torch

from kdnlp.config import DistillConfig
from kdnlp.losses import DistillLoss


def _softmax(row, t=1.0):
    e = [math.exp(x / t) for x in row]
    return [v / sum(e) for v in e]


S = [[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]
TL = [[2.0, 1.0, 0.0], [0.5, 0.5, 1.0]]
Y = [1, 2]


def test_mse_against_hand_computation():
    loss = DistillLoss(DistillConfig(alpha=0.3, T=0.7, loss="mse"))
    total, parts = loss(torch.tensor(S), torch.tensor(Y), torch.tensor(TL))
    mse = sum((a - b) ** 2 for rs, rt in zip(S, TL) for a, b in zip(rs, rt)) / 6
    ce = -sum(math.log(_softmax(r)[y]) for r, y in zip(S, Y)) / 2
    assert math.isclose(parts["mse"], mse, rel_tol=1e-6)
    assert math.isclose(parts["ce"], ce, rel_tol=1e-6)
    assert math.isclose(total.item(), 0.3 * ce + 0.7 * mse, rel_tol=1e-6)


def test_kl_with_temperature_against_hand_computation():
    t = 2.0
    loss = DistillLoss(DistillConfig(alpha=0.0, T=1.0, loss="kl", temperature=t))
    total, parts = loss(torch.tensor(S), torch.tensor(Y), torch.tensor(TL))
    kl = 0.0
    for rs, rt in zip(S, TL):
        p, q = _softmax(rt, t), _softmax(rs, t)
        kl += sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    expected = kl / 2 * t * t
    assert "ce" not in parts
    assert math.isclose(total.item(), expected, rel_tol=1e-5)


def test_student_alone_needs_no_teacher():
    loss = DistillLoss(DistillConfig(alpha=1.0, T=0.0))
    assert not loss.needs_teacher
    total, parts = loss(torch.tensor(S), torch.tensor(Y), None)
    assert set(parts) == {"ce"} and total.item() > 0
