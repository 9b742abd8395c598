"""SIGKILL a real `kdnlp train-teacher` subprocess at random moments (at most 10 kills, about 2 minutes), check after
every kill that what is on disk loads, and that `--resume` finally ends exactly where an uninterrupted run ends."""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from kdnlp.checkpoint import META_FILE, STATE_FILE
from kdnlp.cli import main
from kdnlp.fileio import check_manifest, recover_dir
from kdnlp.modeldir import load_model_dir

from conftest import make_texts

REPO = Path(__file__).resolve().parents[1]
MAX_KILLS, BUDGET_S = 10, 120


def _history(out: Path):
    log = json.loads((out / "teacher" / "train_log.json").read_text())
    return [(h["epoch"], h.get("step"), h.get("dev"), h.get("train_loss")) for h in log["history"]], log["best_dev"]


def _check_loadable(out: Path) -> None:
    """Whatever a kill left must load: the best checkpoint, and the resume state if there is one."""
    if (out / "teacher").exists() or (out / ".teacher.old").exists():
        model, tokenizer, labels = load_model_dir(out / "teacher")  # recovers a swap cut between its renames
        assert labels == ["neg", "pos"] and model.config.num_labels == 2
    resume = out / "teacher.resume"
    recover_dir(resume)
    if resume.exists():
        assert check_manifest(resume) is None
        meta = json.loads((resume / META_FILE).read_text())
        saved = torch.load(resume / STATE_FILE, map_location="cpu", weights_only=True)
        assert saved["state"]["step"] == meta["step"] and meta["next_epoch"] >= 2


def test_sigkill_at_random_points_then_resume(write_config, tmp_path):
    train = tmp_path / "big_train.json"
    train.write_text(json.dumps([{"text": t, "label": l} for t, l in make_texts(480, seed=5)], ensure_ascii=False),
                     encoding="utf-8")
    cfg = str(write_config({"data": {"train": str(train)}, "teacher": {"epochs": 6, "batch_size": 8},
                            "train": {"threads": 1, "patience": 100, "eval_every": 15}}))
    threads = torch.get_num_threads()
    try:
        assert main(["train-teacher", "--config", cfg, "--output-dir", str(tmp_path / "ref")]) == 0
    finally:
        torch.set_num_threads(threads)  # train.threads applies process-wide; keep it out of other tests
    ref_log = json.loads((tmp_path / "ref" / "teacher" / "train_log.json").read_text())
    train_seconds = sum(h.get("epoch_seconds", 0) for h in ref_log["history"])  # kills land while it trains

    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(REPO), "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "kdnlp", "train-teacher", "--config", cfg, "--output-dir", str(out), "--resume"]
    rng, kills, deadline = random.Random(0), 0, time.monotonic() + BUDGET_S
    finished = False
    while kills < MAX_KILLS and time.monotonic() < deadline and not finished:
        log = tmp_path / f"run{kills}.log"
        with open(log, "w") as f:
            proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
        while proc.poll() is None and "teacher:" not in log.read_text():  # model built: training starts now
            time.sleep(0.05)
        time.sleep(rng.uniform(0, train_seconds))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
            _check_loadable(out)
        else:
            assert proc.returncode == 0, log.read_text()[-2000:]
        finished = (out / "teacher" / "train_log.json").is_file() and not (out / "teacher.resume").exists()
    if not (out / "teacher" / "report.json").is_file() or proc.returncode != 0:  # last run: uninterrupted
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert kills >= 1
    assert not (out / "teacher.resume").exists()
    assert _history(out) == _history(tmp_path / "ref")
    ref = json.loads((tmp_path / "ref" / "teacher" / "report.json").read_text())
    got = json.loads((out / "teacher" / "report.json").read_text())
    assert (got["accuracy"], got["confusion"]) == (ref["accuracy"], ref["confusion"])
