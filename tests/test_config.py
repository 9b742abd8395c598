import pytest

from kdnlp.config import config_from_dict, load_config
from kdnlp.errors import UserError


def test_defaults_and_output_dir(tmp_path):
    p = tmp_path / "exp1.yaml"
    p.write_text("data: {train: a.json, test: b.json}\n")
    cfg = load_config(p)
    assert cfg.output_dir == "saved_dict/exp1"
    assert cfg.student.type == "bilstm" and cfg.student.hidden_size == 300 and cfg.student.num_layers == 6
    assert cfg.distill.loss == "mse" and cfg.teacher.pretrained == "bert_pretrain"


def test_unknown_key_names_closest(tmp_path):
    with pytest.raises(UserError, match=r"unknown key 'alpah'.*did you mean 'alpha'"):
        config_from_dict({"distill": {"alpah": 1}})
    with pytest.raises(UserError, match=r"unknown key 'studnet'.*'student'"):
        config_from_dict({"studnet": {}})


def test_wrong_type_and_range():
    with pytest.raises(UserError, match=r"student.epochs: expected int"):
        config_from_dict({"student": {"epochs": "three"}})
    with pytest.raises(UserError, match=r"distill.temperature"):
        config_from_dict({"distill": {"temperature": 0}})
    with pytest.raises(UserError, match=r"distill.alpha"):
        config_from_dict({"distill": {"alpha": -1}})
    with pytest.raises(UserError, match=r"layer_selection"):
        config_from_dict({"student": {"layer_selection": "every"}})
    assert config_from_dict({"distill": {"T": 2}}).distill.T == 2.0  # int accepted for float
    assert config_from_dict({"teacher": {"lr": "5e-4"}}).teacher.lr == 5e-4  # YAML 1.1 reads 5e-4 as a string


def test_overrides_and_yaml_errors(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data: {train: a.json, test: b.json}\nstudent: {type: bert}\n")
    cfg = load_config(p, ["student.num_layers=3", "student.layer_selection=[0, 5]", "distill.T=0", "output_dir=x"])
    assert cfg.student.num_layers == 3 and cfg.student.layer_selection == [0, 5]
    assert cfg.distill.T == 0.0 and cfg.output_dir == "x"
    with pytest.raises(UserError, match="unknown key 'nope'"):
        load_config(p, ["student.nope=1"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  train: [unclosed\n")
    with pytest.raises(UserError, match=r"bad.yaml line \d+: invalid YAML"):
        load_config(bad)
    with pytest.raises(UserError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
