"""kdnlp frontier (kdnlp/frontier.py, kdnlp/frontier_report.py): several students against one cached teacher."""
from __future__ import annotations

import json

import pytest

from kdnlp.cli import main
from kdnlp.frontier_report import pareto, recommend

VARIANTS = {
    "static": {"student.type": "static", "student.embedding_dim": 16, "student.mlp_size": 0, "student.epochs": 2},
    "bilstm": {"student.type": "bilstm", "student.epochs": 1},
    "bert1": {"student.type": "bert", "student.num_layers": 1, "student.epochs": 1},
}
FAST = ["--examples", "40", "--runs", "3"]


def row(name, dev, test, speed):
    return {"name": name, "dev_metric": dev, "test_metric": test, "examples_per_second": speed}


def test_pareto_and_recommendation_on_given_numbers():
    teacher = row("teacher", 0.90, 0.88, 100)
    students = [row("bert3", 0.89, 0.87, 300), row("bert1", 0.875, 0.86, 900), row("bilstm", 0.86, 0.85, 800),
                row("static", 0.80, 0.81, 50000), row("slow_bad", 0.70, 0.70, 90)]
    # bilstm is beaten by bert1 on both; slow_bad by everything
    assert pareto([teacher] + students) == ["static", "bert1", "bert3", "teacher"]
    assert recommend(students, teacher["dev_metric"], 0.97)["name"] == "bert1"   # 0.873 needed: bert1 0.875 passes
    assert recommend(students, teacher["dev_metric"], 0.98)["name"] == "bert3"   # 0.882 needed
    assert recommend(students, teacher["dev_metric"], 1.0) is None
    assert recommend(students, teacher["dev_metric"], 0.5)["name"] == "static"
    # selection reads dev, never test: a student best on test but below the bar on dev is not chosen
    assert recommend([row("lucky", 0.5, 0.99, 1e6)], 0.9, 0.97) is None


def test_frontier_writes_files_and_reuses_on_rerun(write_config, capsys):
    path = write_config({"frontier": {"variants": VARIANTS, "retain": 0.5}})
    out = path.parent / "out"
    assert main(["frontier", "--config", str(path), *FAST]) == 0
    result = json.loads((out / "frontier.json").read_text())
    assert sorted(s["name"] for s in result["students"]) == ["bert1", "bilstm", "static"]
    for r in [result["teacher"]] + result["students"]:
        assert 0 <= r["dev_metric"] <= 1 and 0 <= r["test_metric"] <= 1
        assert r["examples_per_second"] > 0 and r["latency_ms_p50"] > 0 and r["params"] > 0 and r["size_bytes"] > 0
        assert r["onnx_int8_bytes"] or r["onnx_note"]
    assert result["pareto"] and set(result["pareto"]) <= {"teacher", "static", "bilstm", "bert1"}
    assert result["recommendation"] == recommend(result["students"], result["teacher"]["dev_metric"], 0.5)["name"]
    md = (out / "frontier.md").read_text()
    assert "Recommendation" in md and "| bert1 |" in md
    assert (out / "frontier.png").stat().st_size > 1000
    trained = {n: (out / n / "train_log.json").stat().st_mtime_ns for n in VARIANTS}
    capsys.readouterr()

    # rerun: nothing retrained (train logs untouched), measurements reused; a changed variant alone is retrained
    assert main(["frontier", "--config", str(path), *FAST]) == 0
    log = capsys.readouterr().out
    assert log.count("reused") == 3 and "frontier: training" not in log
    assert {n: (out / n / "train_log.json").stat().st_mtime_ns for n in VARIANTS} == trained
    changed = write_config({"frontier": {"variants": {**VARIANTS, "static": {**VARIANTS["static"], "student.epochs": 1}},
                                         "retain": 0.5}})
    assert main(["frontier", "--config", str(changed), *FAST, "--students", "static,bert1"]) == 0
    log = capsys.readouterr().out
    assert "frontier: training static" in log and "frontier: training bert1" not in log
    assert (out / "bert1" / "train_log.json").stat().st_mtime_ns == trained["bert1"]


@pytest.mark.parametrize("frontier_cfg, args, message", [
    ({"variants": {"v": {"student.type": "static", "student.embeding_dim": 8}}}, [], "unknown key 'embeding_dim'"),
    ({"variants": {"v": {"data.max_length": 16}}}, [], "the data and the teacher are shared"),
    ({"variants": {"v": {"student.type": "bert", "student.num_layers": 9}}}, [], "student.num_layers"),
    ({"variants": VARIANTS}, ["--students", "static,nope"], "no variant named nope"),
    ({"variants": VARIANTS}, ["--retain", "0"], "--retain 0: must be in (0, 1]"),
    ({"variants": VARIANTS}, ["--retain", "1.5"], "must be in (0, 1]"),
    ({"variants": VARIANTS, "retain": 2}, [], "frontier.retain"),
])
def test_bad_input_one_line_exit_2_before_training(write_config, capsys, frontier_cfg, args, message):
    path = write_config({"frontier": frontier_cfg})
    assert main(["frontier", "--config", str(path), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (path.parent / "out" / "teacher").exists()  # nothing trained, nothing imported


def test_default_preset_spans_the_frontier_within_the_teachers_depth():
    from kdnlp.frontier import default_preset
    names = list(default_preset({}, teacher_layers=4))
    assert names == ["static", "bilstm", "bert1", "bert2", "bert3", "transformer"]  # bert6 needs > 6 layers
    assert "bert6" in default_preset({}, teacher_layers=12)
    assert "pretrained" in default_preset({"student": {"pretrained": "some/dir"}}, teacher_layers=12)
