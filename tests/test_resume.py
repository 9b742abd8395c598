"""--resume: an interrupted run continues from its last completed epoch and ends exactly where an uninterrupted run
ends (same dev history, same test metrics, same weights); config changes are refused; Ctrl-C exits 130."""
import json

import pytest
import torch

import kdnlp.checkpoint as checkpoint_mod
from kdnlp.cli import main
from kdnlp.fileio import atomic_dir, recover_dir


def _log(root, name):
    log = json.loads((root / name / "train_log.json").read_text())
    return [(h["epoch"], h.get("dev"), h.get("train_loss")) for h in log["history"]], log["best_dev"], log["step"]


def _report(root, name):
    r = json.loads((root / name / "report.json").read_text())
    return r["accuracy"], r["macro_f1"], r["confusion"]


def _weights(root, name):
    from safetensors.torch import load_file
    return load_file(str(root / name / "model.safetensors"))


def _interrupt_after_saves(monkeypatch, n):
    """Let the n-th resume save complete, then raise KeyboardInterrupt (Ctrl-C right after an epoch ends)."""
    real, calls = checkpoint_mod.ResumePoint.save, []

    def save(self, *a, **k):
        real(self, *a, **k)
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
    monkeypatch.setattr(checkpoint_mod.ResumePoint, "save", save)


@pytest.mark.parametrize("command,name,extra", [
    ("train-student", "student", ["--T", "0", "--epochs", "3"]),
    ("train-teacher", "teacher", ["--epochs", "2"]),
])
def test_resumed_run_equals_uninterrupted_run(write_config, tmp_path, monkeypatch, capsys, command, name, extra):
    cfg = str(write_config({"train": {"seed": 3, "patience": 5}}))
    a, b = tmp_path / "a", tmp_path / "b"
    assert main([command, "--config", cfg, "--output-dir", str(a), *extra]) == 0
    assert not (a / f"{name}.resume").exists()  # a finished run leaves no resume state

    with monkeypatch.context() as m:
        _interrupt_after_saves(m, 1)
        assert main([command, "--config", cfg, "--output-dir", str(b), *extra]) == 130
    assert "--resume" in capsys.readouterr().err
    meta = json.loads((b / f"{name}.resume" / "resume.json").read_text())
    assert meta["next_epoch"] == 2
    assert main([command, "--config", cfg, "--output-dir", str(b), *extra, "--resume"]) == 0
    assert "continuing from" in capsys.readouterr().out
    assert not (b / f"{name}.resume").exists()

    assert _log(a, name) == _log(b, name)
    assert _report(a, name) == _report(b, name)
    wa, wb = _weights(a, name), _weights(b, name)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_resume_refuses_a_changed_config_and_skips_a_finished_run(write_config, tmp_path, monkeypatch, capsys):
    cfg = str(write_config())
    args = ["train-student", "--config", cfg, "--T", "0", "--epochs", "2"]
    with monkeypatch.context() as m:
        _interrupt_after_saves(m, 1)
        assert main(args) == 130
    capsys.readouterr()
    assert main([*args, "--set", "student.lr=0.01", "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kdnlp: error: ") and "\n" not in err
    assert "student.resume: the config or data changed" in err and "student.lr: 0.001 -> 0.01" in err
    assert main([*args, "--device", "cpu", "--resume"]) == 0  # where it runs is not part of the fingerprint
    capsys.readouterr()
    before = (tmp_path / "out" / "student" / "train_log.json").read_text()
    assert main([*args, "--resume"]) == 0
    assert "already finished" in capsys.readouterr().out
    assert (tmp_path / "out" / "student" / "train_log.json").read_text() == before


def test_resume_without_state_starts_over(write_config, tmp_path, capsys):
    assert main(["train-student", "--config", str(write_config()), "--T", "0", "--epochs", "1", "--resume"]) == 0
    assert "no resume state" in capsys.readouterr().out
    assert (tmp_path / "out" / "student" / "report.json").is_file()


def test_damaged_resume_state_is_refused(write_config, tmp_path, monkeypatch, capsys):
    args = ["train-student", "--config", str(write_config()), "--T", "0", "--epochs", "2"]
    with monkeypatch.context() as m:
        _interrupt_after_saves(m, 1)
        assert main(args) == 130
    capsys.readouterr()
    state = tmp_path / "out" / "student.resume" / "state.pt"
    state.write_bytes(state.read_bytes()[:100])
    assert main([*args, "--resume"]) == 2
    assert "resume state is damaged (state.pt has 100 bytes" in capsys.readouterr().err


def test_swap_killed_between_renames_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    """atomic_dir swaps with two renames; a kill between them leaves only .ckpt.old, which recover_dir puts back."""
    path = tmp_path / "ckpt"
    with atomic_dir(path) as tmp:
        (tmp / "weights").write_text("v1")
    import kdnlp.fileio as fileio
    real, calls = fileio.os.replace, []

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # path -> .old done; die before tmp -> path
            raise SystemExit("killed")
        real(src, dst)
    monkeypatch.setattr(fileio.os, "replace", replace)
    with pytest.raises(SystemExit):
        with atomic_dir(path) as tmp:
            (tmp / "weights").write_text("v2")
    monkeypatch.setattr(fileio.os, "replace", real)
    assert not path.exists() and (tmp_path / ".ckpt.old").is_dir()
    (tmp_path / ".ckpt.abcd1234.tmp").mkdir()  # what a SIGKILL (no finally) leaves behind
    assert recover_dir(path)
    assert (path / "weights").read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    with atomic_dir(path) as tmp:  # and the next save works normally
        (tmp / "weights").write_text("v3")
    assert (path / "weights").read_text() == "v3" and json.loads((path / "kdnlp_manifest.json").read_text())["files"] == {"weights": 2}


def test_truncated_checkpoint_is_detected(write_config, tmp_path, capsys):
    cfg = str(write_config())
    assert main(["train-student", "--config", cfg, "--T", "0", "--epochs", "1"]) == 0
    weights = tmp_path / "out" / "student" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    assert main(["evaluate", "--config", cfg, "--model", "student"]) == 2
    err = capsys.readouterr().err
    assert "student: checkpoint is damaged (model.safetensors has" in err and "retrain it" in err


def test_two_seeded_distill_runs_give_identical_metrics(write_config, tmp_path):
    """Determinism on CPU: teacher, logit cache and distilled student are the same to the last bit."""
    cfg = str(write_config({"teacher": {"epochs": 1}, "student": {"epochs": 1}}))
    for run in ("a", "b"):
        assert main(["distill", "--config", cfg, "--output-dir", str(tmp_path / run)]) == 0
    for name in ("teacher", "student"):
        assert _log(tmp_path / "a", name) == _log(tmp_path / "b", name)
        assert _report(tmp_path / "a", name) == _report(tmp_path / "b", name)
        wa, wb = _weights(tmp_path / "a", name), _weights(tmp_path / "b", name)
        assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert (tmp_path / "a" / "logits" / "train.npy").read_bytes() == (tmp_path / "b" / "logits" / "train.npy").read_bytes()
