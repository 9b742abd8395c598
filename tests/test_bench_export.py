"""kdnlp export (parity on real inputs, int8) and kdnlp bench (bench.json, table, plot) on tiny models.

No test asserts a timing: only that measurements exist, are positive and are consistent with each other."""
import json

import numpy as np
import pytest

from kdnlp.cli import main
from kdnlp.config import load_config
from kdnlp.trainer import Trainer


@pytest.fixture
def trained(write_config, tmp_path):
    """A tiny trained teacher, BiLSTM student and 2-layer BERT student (one epoch each)."""
    cfg = write_config()
    assert main(["train-teacher", "--config", str(cfg), "--epochs", "1"]) == 0
    assert main(["train-student", "--config", str(cfg), "--epochs", "1"]) == 0
    assert main(["train-student", "--config", str(cfg), "--epochs", "1", "--set", "student.type=bert",
                 "--set", "student.num_layers=2", "--set", "student.name=bert2"]) == 0
    return cfg


def _records(root, model):
    return json.loads((root / model / "export" / "export.json").read_text())


def test_fixed_padding_pads_to_max_length_and_keeps_logits(write_config, tmp_path):
    cfg = write_config()
    assert main(["bench", "--config", str(cfg), "--init-untrained"]) == 0
    for name in ("teacher", "student"):  # every saved model folder has a card, and it says what this one is
        card = (tmp_path / "out" / name / "README.md").read_text(encoding="utf-8")
        assert "library_name: kdnlp" in card and "- untrained" in card and "**Untrained**" in card, card
    trainer = Trainer(load_config(cfg))
    from kdnlp.modeldir import load_model_dir
    for name in ("teacher", "student"):
        model, tokenizer, _ = load_model_dir(tmp_path / "out" / name)
        data = trainer.task.encode(trainer.splits.test, tokenizer, 32)
        batches = list(data.eval_batches(16, fixed_length=32))
        assert all(b["input_ids"].shape[1] == 32 for b in batches)
        assert np.concatenate([b["index"].numpy() for b in batches]).tolist() == list(range(len(data)))
        dynamic = trainer.predict_logits(model, data, 16)
        fixed = trainer.predict_logits(model, data, 16, fixed_padding=True)
        assert np.abs(dynamic - fixed).max() < 1e-4  # padding must not change any logit


def test_torchscript_export_parity_and_int8(trained, tmp_path, capsys):
    root = tmp_path / "out"
    for model in ("teacher", "student", "bert2"):
        assert main(["export", "--config", str(trained), "--model", model, "--format", "torchscript"]) == 0
        rec = _records(root, model)["model.pt"]
        assert (root / model / "export" / "model.pt").is_file()
        assert rec["n_test"] == 40 and rec["prediction_agreement"] == 1.0 and rec["max_abs_logit_diff"] < 1e-4
        assert rec["test_metric_exported"] == pytest.approx(rec["test_metric_pytorch"])
        report = json.loads((root / model / "report.json").read_text())
        assert rec["test_metric_pytorch"] == pytest.approx(report["accuracy"])
    assert "predictions agree 100.00%" in capsys.readouterr().out
    # int8: a BERT quantizes, loads back and predicts; its accuracy is recorded next to fp32
    assert main(["export", "--config", str(trained), "--model", "bert2", "--format", "torchscript", "--quantize", "int8"]) == 0
    rec = _records(root, "bert2")
    assert set(rec) == {"model.pt", "model.int8.pt"}
    assert 0 <= rec["model.int8.pt"]["test_metric_exported"] <= 1 and rec["model.int8.pt"]["prediction_agreement"] > 0.5
    from kdnlp.export import ExportedModel
    from kdnlp.modeldir import load_model_dir
    model, tokenizer, _ = load_model_dir(root / "bert2")
    enc = tokenizer(["好棒赞", "差烂坏糟糕"], padding=True, return_tensors="pt")
    logits = ExportedModel(root / "bert2" / "export" / "model.int8.pt", model.config)(
        input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
    assert logits.shape == (2, 2) and np.isfinite(logits.numpy()).all()
    # the BiLSTM's quantized LSTM cannot go through TorchScript: one clear line, nothing written
    capsys.readouterr()
    assert main(["export", "--config", str(trained), "--model", "student", "--format", "torchscript", "--quantize", "int8"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kdnlp: error:") and "--format onnx" in err and err.count("\n") == 1
    assert not (root / "student" / "export" / "model.int8.pt").exists()
    assert [p.name for p in (root / "student" / "export").iterdir() if p.name.startswith(".")] == []


def test_onnx_export_parity_int8_and_bench(trained, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    root = tmp_path / "out"
    for model in ("teacher", "student"):
        for extra in ([], ["--quantize", "int8"]):
            assert main(["export", "--config", str(trained), "--model", model, "--format", "onnx", *extra]) == 0
        rec = _records(root, model)
        fp32, int8 = rec["model.onnx"], rec["model.int8.onnx"]
        assert fp32["prediction_agreement"] == 1.0 and fp32["max_abs_logit_diff"] < 1e-4
        assert int8["size_bytes"] < fp32["size_bytes"]  # int8 weights
        assert 0 <= int8["test_metric_exported"] <= 1 and int8["n_test"] == 40
    # bench: every model, and every exported file of it, one row each
    capsys.readouterr()
    assert main(["bench", "--config", str(trained), "--models", "teacher,student", "--runs", "3",
                 "--examples", "40", "--cache-pass", "48", "--threads", "1"]) == 0
    result = json.loads((root / "bench.json").read_text())
    got = [(r["model"], r["runtime"]) for r in result["rows"]]
    assert got == [("teacher", "pytorch fp32"), ("teacher", "onnxruntime fp32"), ("teacher", "onnxruntime int8"),
                   ("student", "pytorch fp32"), ("student", "onnxruntime fp32"), ("student", "onnxruntime int8")]
    for r in result["rows"]:
        assert r["latency_ms_p90"] >= r["latency_ms_p50"] > 0 and r["throughput_examples_per_second"] > 0
        assert r["peak_rss_mb"] >= r["model_rss_mb"] >= 0 and r["size_bytes"] > 0 and r["params"] > 0
        assert 0 <= r["test_metric"] <= 1
    teacher = result["rows"][0]
    assert teacher["speedup_throughput"] == 1.0 and teacher["speedup_latency_p50"] == 1.0
    report = json.loads((root / "student" / "report.json").read_text())
    assert result["rows"][3]["test_metric"] == report["accuracy"]
    assert result["rows"][5]["test_metric"] == _records(root, "student")["model.int8.onnx"]["test_metric_exported"]
    assert result["threads"] == 1 and result["settings"]["throughput_examples"] == 40 and result["complete"] is True
    card = (root / "student" / "README.md").read_text()  # the model card now quotes the measured speed
    assert "## Speed (kdnlp bench" in card and "| onnxruntime int8 |" in card and "library_name: kdnlp" in card
    cache = result["cache_pass"]
    assert cache["examples"] == 48 and cache["fixed_padded_tokens"] == 48 * 32
    assert cache["sorted_dynamic_padded_tokens"] < cache["fixed_padded_tokens"] and cache["max_abs_logit_diff"] < 1e-4
    table = (root / "bench.md").read_text()
    assert table.count("\n| ") == 6 and "onnxruntime int8" in table and "cache pass over 48" in table
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "bench.png skipped" in capsys.readouterr().out
    else:
        assert (root / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_untrained_models_have_no_metric(write_config, tmp_path, capsys):
    cfg = write_config({"student": {"name": "lstm"}})
    assert main(["bench", "--config", str(cfg), "--init-untrained"]) == 0
    state = json.loads((tmp_path / "out" / "lstm" / "train_state.json").read_text())
    assert state == {"untrained": True}
    assert main(["bench", "--config", str(cfg), "--runs", "2", "--examples", "16"]) == 0
    result = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert [r["model"] for r in result["rows"]] == ["teacher", "lstm"]
    assert all(r["test_metric"] is None for r in result["rows"])
    assert "| untrained |" in (tmp_path / "out" / "bench.md").read_text()
    capsys.readouterr()
    assert main(["bench", "--config", str(cfg), "--models", "teacher,nope"]) == 2
    assert "nope: no trained model here" in capsys.readouterr().err
