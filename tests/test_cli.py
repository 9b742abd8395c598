"""End-to-end CLI runs on tiny data and a tiny BERT, and bad inputs -> exit 2 with one clear line."""
import json


from kdnlp.cli import main


def test_distill_end_to_end(write_config, tmp_path, capsys):
    cfg = write_config()
    assert main(["distill", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "| CPU examples/s |" in out and "Teacher vs student" in out
    root = tmp_path / "out"
    for name in ("teacher", "student"):
        report = json.loads((root / name / "report.json").read_text())
        for key in ("accuracy", "macro_f1", "per_class", "confusion", "n_params", "eval_seconds", "examples_per_second"):
            assert key in report
        assert sum(map(sum, report["confusion"])) == 40
        assert (root / name / "labels.txt").read_text().split() == ["neg", "pos"]
    assert (root / "logits" / "train.npy").is_file() and (root / "comparison.md").is_file()
    teacher = json.loads((root / "teacher" / "report.json").read_text())
    student = json.loads((root / "student" / "report.json").read_text())
    assert student["n_params"] < teacher["n_params"]

    # A 2-layer BERT student from the same teacher, then evaluate and predict through the CLI.
    assert main(["train-student", "--config", str(cfg), "--set", "student.type=bert", "--set", "student.num_layers=2",
                 "--set", "student.name=bert2"]) == 0
    from transformers import AutoModelForSequenceClassification
    assert AutoModelForSequenceClassification.from_pretrained(root / "bert2").config.num_hidden_layers == 2
    capsys.readouterr()
    assert main(["evaluate", "--config", str(cfg), "--model", "bert2"]) == 0
    assert "accuracy" in capsys.readouterr().out
    (tmp_path / "in.txt").write_text("好棒赞\n\n差烂坏\n", encoding="utf-8")
    assert main(["predict", "--config", str(cfg), "--model", "bert2", "--input", str(tmp_path / "in.txt"), "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    assert [x["text"] for x in lines] == ["好棒赞", "差烂坏"] and all(x["label"] in ("neg", "pos") for x in lines)


def test_student_alone_never_touches_the_teacher(write_config, tmp_path, monkeypatch):
    """alpha=1, T=0: no trained teacher exists, and loading or running one would raise."""
    import kdnlp.trainer as trainer_mod

    def boom(*a, **k):
        raise AssertionError("the teacher was touched")
    monkeypatch.setattr(trainer_mod.Trainer, "fine_tuned_teacher", boom)
    monkeypatch.setattr(trainer_mod.Trainer, "cache_teacher_logits", boom)
    cfg = write_config()
    assert main(["train-student", "--config", str(cfg), "--alpha", "1", "--T", "0", "--epochs", "1"]) == 0
    assert not (tmp_path / "out" / "teacher").exists() and not (tmp_path / "out" / "logits").exists()
    assert json.loads((tmp_path / "out" / "student" / "report.json").read_text())["accuracy"] >= 0


def test_seeded_runs_repeat(write_config, tmp_path):
    cfg = write_config({"distill": {"alpha": 1.0, "T": 0.0}})
    assert main(["train-student", "--config", str(cfg), "--output-dir", str(tmp_path / "a")]) == 0
    assert main(["train-student", "--config", str(cfg), "--output-dir", str(tmp_path / "b")]) == 0
    a = json.loads((tmp_path / "a" / "student" / "train_log.json").read_text())
    b = json.loads((tmp_path / "b" / "student" / "train_log.json").read_text())
    assert [h.get("train_loss") for h in a["history"]] == [h.get("train_loss") for h in b["history"]]


def _run_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kdnlp: error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_bad_inputs_exit_2_with_one_line(write_config, tmp_path, capsys, tiny_data):
    err = _run_error(capsys, ["train-teacher", "--config", str(write_config({"data": {"train": str(tmp_path / "nope.json")}}))])
    assert "nope.json: file not found" in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "label": "pos"}\n{"text": "b", "label": \n', encoding="utf-8")
    err = _run_error(capsys, ["train-teacher", "--config", str(write_config({"data": {"train": str(bad)}}))])
    assert "bad.jsonl line 2: invalid JSON" in err
    unk = tmp_path / "unk.json"
    unk.write_text(json.dumps([{"text": "好", "label": "meh"}]), encoding="utf-8")
    err = _run_error(capsys, ["train-teacher", "--config", str(write_config({"data": {"test": str(unk)}}))])
    assert "unknown label 'meh'" in err
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps([{"text": "", "label": "pos"}]), encoding="utf-8")
    err = _run_error(capsys, ["train-teacher", "--config", str(write_config({"data": {"train": str(empty)}}))])
    assert "record 1: empty text" in err
    err = _run_error(capsys, ["train-teacher", "--config", str(write_config({"distill": {"alhpa": 1}}))])
    assert "unknown key 'alhpa'" in err and "did you mean 'alpha'" in err
    err = _run_error(capsys, ["train-teacher", "--config", str(write_config({"teacher": {"pretrained": str(tmp_path / "bert_pretrain")}}))])
    assert "teacher directory not found" in err and "bert-base-chinese" in err
    err = _run_error(capsys, ["evaluate", "--config", str(write_config()), "--model", "student"])
    assert "no trained model here yet" in err
    err = _run_error(capsys, ["train-student", "--config", str(write_config({"student": {"type": "bert"}}))])
    assert "no trained model here yet" in err


def test_incomplete_teacher_dir_names_missing_files(write_config, tmp_path, capsys):
    d = tmp_path / "bert_pretrain"
    d.mkdir()
    (d / "config.json").write_text("{}")
    err = _run_error(capsys, ["train-teacher", "--config", str(write_config({"teacher": {"pretrained": str(d)}}))])
    assert "missing vocab.txt" in err and "model.safetensors" in err


def test_unwritable_output_dir_is_one_line(write_config, tmp_path, capsys):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the output directory should go")
    err = _run_error(capsys, ["train-student", "--config", str(write_config()), "--T", "0",
                              "--output-dir", str(blocker / "out")])
    assert "not_a_dir" in err


def test_epochs_flag_reaches_every_frontier_student():
    """--epochs on `kdnlp frontier` sets the students' epochs (it used to be dropped silently)."""
    import argparse
    from kdnlp.cli import _overrides
    args = argparse.Namespace(command="frontier", set=[], epochs=3)
    assert "student.epochs=3" in _overrides(args)
