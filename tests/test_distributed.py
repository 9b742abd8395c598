"""Data parallelism (kdnlp/distributed.py): batch sharding and gather-by-index as units, then real 2-process runs
on CPU (gloo) launched with `accelerate launch`, checked against single-process runs of the same checkpoints."""
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kdnlp.cli import main
from kdnlp.data import EncodedSplit
from kdnlp.distributed import gather_rows, shard_batches
from kdnlp.ner import TokenLogits
from kdnlp.teacher import load_tokenizer

from conftest import make_texts
from test_ner import _ner_file

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- units (one process)

def test_shard_batches_equal_counts_and_cover_every_batch():
    batches = [[i] for i in range(9)]
    shards = [shard_batches(batches, r, 2) for r in range(2)]
    assert [len(s) for s in shards] == [5, 5]  # DDP: every rank takes the same number of steps
    flat = [b[0] for s in shards for b in s]
    assert sorted(set(flat)) == list(range(9)) and len(flat) == 10  # one batch wrapped around, none dropped
    assert shard_batches(batches, 0, 1) == batches
    assert [len(shard_batches([[0], [1]], r, 4)) for r in range(4)] == [1, 1, 1, 1]  # fewer batches than ranks


def test_eval_shards_partition_rows_and_gather_restores_order(tiny_bert):
    """3 ranks predict disjoint rows; gathering their (index, logits) pieces rebuilds the single-process array."""
    tok = load_tokenizer(tiny_bert)
    data = EncodedSplit([type("E", (), {"text": t, "label": 0})() for t, _ in make_texts(23)], tok, 32)
    truth = np.random.default_rng(0).normal(size=(23, 3)).astype(np.float32)
    pieces = []
    for rank in range(3):
        for batch in data.eval_batches(4, shard=(rank, 3)):
            index = batch["index"].numpy()
            pieces.append((index, truth[index]))
    assert sorted(i for idx, _ in pieces for i in idx) == list(range(23))
    np.testing.assert_array_equal(gather_rows(pieces, 23, 3), truth)
    with pytest.raises(RuntimeError, match="duplicated"):
        gather_rows(pieces + pieces[:1], 23, 3)
    # NER: ragged rows of valid positions
    rows = [np.full((i % 4 + 1, 2), i, np.float32) for i in range(5)]
    got = gather_rows([(np.array([3, 0]), [rows[3], rows[0]]), (np.array([4, 1, 2]), [rows[4], rows[1], rows[2]])], 5, 2)
    assert isinstance(got, TokenLogits) and all((got.row(i) == rows[i]).all() for i in range(5))


def test_mixed_precision_and_grad_accum_config(write_config, tmp_path, capsys):
    from kdnlp.config import config_from_dict
    from kdnlp.errors import UserError
    data = {"train": "a.json", "test": "b.json"}
    assert config_from_dict({"data": data, "train": {"mixed_precision": False}}).train.mixed_precision == "no"  # YAML `no`
    for bad, msg in (({"mixed_precision": "fp8"}, "use auto|no|fp16|bf16"), ({"grad_accum": 0}, "must be >= 1")):
        with pytest.raises(UserError, match=msg):
            config_from_dict({"data": data, "train": bad})
    cfg = write_config({"train": {"device": "cpu", "seed": 1, "mixed_precision": "fp16"}})
    assert main(["train-teacher", "--config", str(cfg)]) == 2
    assert "train.mixed_precision: fp16 needs a CUDA device" in capsys.readouterr().err
    # grad_accum=2 on one process: 9 batches of 16 in the epoch -> 5 optimizer steps
    cfg = write_config({"train": {"device": "cpu", "seed": 1, "mixed_precision": False, "grad_accum": 2},
                        "data": {"max_train_examples": 141}})
    assert main(["train-student", "--config", str(cfg), "--alpha", "1", "--T", "0", "--epochs", "1"]) == 0
    log = json.loads((tmp_path / "out" / "student" / "train_log.json").read_text())
    assert log["step"] == 5 and all(np.isfinite(h["train_loss"]) for h in log["history"] if "train_loss" in h)


# ---------------------------------------------------------------- real 2-process runs (gloo on CPU)

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch_2(argv: list[str]) -> str:
    """`accelerate launch --multi_gpu --num_processes 2 -m kdnlp ...` on CPU; returns stdout."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), "-m", "kdnlp", *argv]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _single_process_copy(out: Path, dest: Path, *names: str) -> Path:
    for name in names:
        shutil.copytree(out / name, dest / name)
    return dest


def _metrics(report: dict) -> dict:
    return {k: v for k, v in report.items() if k in ("accuracy", "macro_f1", "per_class", "confusion", "f1",
                                                      "precision", "recall", "per_type", "token_accuracy")}


def test_two_process_distill_matches_single_process(write_config, tmp_path, capsys):
    # 141 train rows: odd, so the logit cache's shards are uneven (71 + 70) and 9 batches wrap to 10
    cfg = write_config({"data": {"max_train_examples": 141}, "train": {"device": "cpu", "seed": 1, "grad_accum": 2}})
    out, single = tmp_path / "out", tmp_path / "single"
    stdout = _launch_2(["distill", "--config", str(cfg), "--epochs", "1"])
    assert stdout.count("Teacher vs student") == 1 and stdout.count("data: 141 train") == 1  # main prints, once
    for name in ("teacher", "student"):
        report = json.loads((out / name / "report.json").read_text())
        assert report["processes"] == 2
        # per rank 5 batches (9 wrapped to 10, halved) in windows of 2, 2, 1 -> 3 optimizer steps in the epoch
        assert json.loads((out / name / "train_log.json").read_text())["step"] == 3
    assert not [p.name for p in out.rglob("*.tmp")]  # every write finished (atomic, by one process)

    # The same teacher's logits, computed by one process: identical rows in the same order, no padding rows.
    _single_process_copy(out, single, "teacher", "student")
    assert main(["cache-logits", "--config", str(cfg), "--output-dir", str(single)]) == 0
    dist_logits, one_logits = np.load(out / "logits" / "train.npy"), np.load(single / "logits" / "train.npy")
    assert dist_logits.shape == one_logits.shape == (141, 2)
    np.testing.assert_allclose(dist_logits, one_logits, atol=1e-5)
    fp = lambda d: json.loads((d / "logits" / "train.json").read_text())["fingerprint"]
    assert fp(out) == fp(single)
    # Test metrics of the 2-process evaluation = a single-process evaluation of the same checkpoints.
    for name in ("teacher", "student"):
        assert main(["evaluate", "--config", str(cfg), "--output-dir", str(single), "--model", name]) == 0
        one = json.loads((single / name / "report.json").read_text())
        assert _metrics(json.loads((out / name / "report.json").read_text())) == _metrics(one) and one["processes"] == 1


def test_two_process_ner_student(write_config, tmp_path):
    """Ragged token logits: a single-process NER teacher; 2 processes cache its logits, train and evaluate a student."""
    _ner_file(tmp_path / "train.txt", 61, 1)
    _ner_file(tmp_path / "test.txt", 21, 2)
    cfg = write_config({"task": "ner", "data": {"train": str(tmp_path / "train.txt"), "test": str(tmp_path / "test.txt"),
                                                "max_length": 8},  # windows: more rows than sentences
                        "teacher": {"epochs": 1, "lr": 3e-3}, "student": {"type": "bert", "num_layers": 2, "epochs": 1}})
    single, dist = tmp_path / "out", tmp_path / "dist"
    assert main(["train-teacher", "--config", str(cfg)]) == 0
    assert main(["cache-logits", "--config", str(cfg)]) == 0
    _single_process_copy(single, dist, "teacher")
    _launch_2(["train-student", "--config", str(cfg), "--output-dir", str(dist)])
    np.testing.assert_array_equal(np.load(dist / "logits" / "train.offsets.npy"), np.load(single / "logits" / "train.offsets.npy"))
    np.testing.assert_allclose(np.load(dist / "logits" / "train.npy"), np.load(single / "logits" / "train.npy"), atol=1e-5)
    _single_process_copy(dist, single, "student")
    assert main(["evaluate", "--config", str(cfg), "--model", "student"]) == 0
    one, two = (json.loads((d / "student" / "report.json").read_text()) for d in (single, dist))
    assert two["processes"] == 2 and _metrics(two) == _metrics(one)


def test_two_process_pretrain(write_config, tmp_path):
    """kdnlp pretrain runs through the same fit: under 2 processes each trains on half the batches, one writes."""
    pytest.importorskip("jieba")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(t for t, _ in make_texts(300, 5)) + "\n", encoding="utf-8")
    cfg = write_config({"teacher": {"pretrained": None, "vocab": "build",
                                    "config": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                                               "intermediate_size": 64, "max_position_embeddings": 64}},
                        "pretrain": {"epochs": 1, "batch_size": 16, "lr": 1e-3}, "train": {"device": "cpu"}})
    stdout = _launch_2(["pretrain", "--config", str(cfg), "--corpus", str(corpus)])
    assert stdout.count("pretrain: saved") == 1 and stdout.count("vocab: built") == 1  # main prints, once
    out = tmp_path / "out"
    log = json.loads((out / "pretrained" / "train_log.json").read_text())
    assert main(["pretrain", "--config", str(cfg), "--corpus", str(corpus), "--output-dir", str(tmp_path / "one")]) == 0
    single = json.loads((tmp_path / "one" / "pretrained" / "train_log.json").read_text())  # one process, all batches
    assert log["step"] == (single["step"] + 1) // 2 and log["step"] > 1  # each process took half the batches
    from transformers import BertForMaskedLM
    assert BertForMaskedLM.from_pretrained(str(out / "pretrained")).config.num_hidden_layers == 2
    assert not [p.name for p in out.rglob("*.tmp")]
