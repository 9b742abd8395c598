"""The Python API (kdnlp.load_config / Trainer / predict), `kdnlp config`, config.resolved.yaml and curves.png."""
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import kdnlp
from conftest import make_texts
from kdnlp.cli import main
from kdnlp.config import load_config
from kdnlp.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def distilled(tmp_path_factory, tiny_bert):
    """A tiny distill run from Python alone: (config path, Config, comparison table)."""
    d = tmp_path_factory.mktemp("api")
    for split, n, seed in (("train", 160, 1), ("test", 40, 2)):
        rows = [{"text": t, "label": label} for t, label in make_texts(n, seed)]
        (d / f"{split}.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    path = d / "tiny.yaml"
    path.write_text(yaml.safe_dump({
        "data": {"train": str(d / "train.json"), "test": str(d / "test.json"), "max_length": 32},
        "teacher": {"pretrained": str(tiny_bert), "epochs": 2, "lr": 1e-3, "batch_size": 16},
        "student": {"type": "bilstm", "embedding_dim": 16, "hidden_size": 16, "mlp_size": 16, "epochs": 2, "batch_size": 16},
        "train": {"device": "cpu", "seed": 1, "eval_every": 4},
        "output_dir": str(d / "out"),
    }), encoding="utf-8")
    cfg = kdnlp.load_config(path, ["distill.alpha=0.5"])
    table = kdnlp.Trainer(cfg).run()
    return path, cfg, table


def test_import_kdnlp_is_light():
    code = "import sys, kdnlp; assert 'torch' not in sys.modules and 'transformers' not in sys.modules; " \
           "assert callable(kdnlp.predict) and 'torch' not in sys.modules; print(sorted(kdnlp.__all__))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "'Trainer'" in out.stdout and "'load_config'" in out.stdout and "'predict'" in out.stdout


def test_python_distill_and_predict(distilled, capsys):
    path, cfg, table = distilled
    assert "| accuracy |" in table
    texts = ["好棒赞爱喜欢", "差烂坏恨讨厌"]
    results = kdnlp.predict(cfg.out / "student", texts, batch_size=1)
    assert [r["text"] for r in results] == texts
    for r in results:
        assert set(r["probabilities"]) == {"neg", "pos"} and r["label"] in ("neg", "pos")
        assert r["probability"] == max(r["probabilities"].values())
        assert abs(sum(r["probabilities"].values()) - 1) < 1e-5
    # The CLI prints the same predictions (it runs the same code behind its formatting).
    capsys.readouterr()
    assert main(["predict", "--config", str(path), "--set", "distill.alpha=0.5", "--json", *texts]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [p["label"] for p in printed] == [r["label"] for r in results]
    assert [p["probability"] for p in printed] == [round(r["probability"], 4) for r in results]


def test_pairs_for_a_single_text_model_are_refused(distilled, capsys):
    path, cfg, _ = distilled
    for model in ("teacher", "student"):
        assert main(["predict", "--config", str(path), "--model", model, "--pair", "好棒", "差烂"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "this model classifies single texts, and a sentence pair was given" in err[0]
        with pytest.raises(UserError, match="classifies single texts"):
            kdnlp.predict(cfg.out / model, [("好棒", "差烂")])


def test_predict_takes_max_length_from_the_model_not_a_default(distilled, tmp_path):
    """A model folder moved away from its run's config.resolved.yaml still reads 32 tokens, as in training."""
    import shutil
    _, cfg, _ = distilled
    long_text = "好棒赞爱喜欢" * 4 + "差烂坏恨讨厌" * 12  # 96 characters: what max_length cuts off matters
    shutil.copytree(cfg.out / "student", tmp_path / "moved" / "student")
    assert json.loads((tmp_path / "moved" / "student" / "config.json").read_text())["kdnlp_input"]["max_length"] == 32
    here, moved = kdnlp.predict(cfg.out / "student", long_text), kdnlp.predict(tmp_path / "moved" / "student", long_text)
    assert moved[0]["probabilities"] == pytest.approx(here[0]["probabilities"], abs=1e-6)
    assert kdnlp.predict(cfg.out / "student", long_text, max_length=128)[0]["probabilities"] != \
        pytest.approx(here[0]["probabilities"], abs=1e-6)  # the length is not moot for this text
    # a model that does not record it, away from its run's config: an error that says what to pass, not a guess
    config = tmp_path / "moved" / "student" / "config.json"
    config.write_text(json.dumps({k: v for k, v in json.loads(config.read_text()).items() if k != "kdnlp_input"}))
    (config.parent / "kdnlp_manifest.json").unlink()  # its recorded sizes no longer hold for the edited config
    with pytest.raises(UserError, match="its max_length is not recorded .*; pass max_length="):
        kdnlp.predict(tmp_path / "moved" / "student", long_text)
    assert kdnlp.predict(tmp_path / "moved" / "student", long_text, max_length=32) == here


def test_resolved_config_reproduces_the_run(distilled):
    path, cfg, _ = distilled
    resolved = cfg.out / "config.resolved.yaml"
    again = load_config(resolved)
    assert dataclasses.replace(again, source=cfg.source) == cfg
    assert again.student.lr == 1e-3 and again.distill.alpha == 0.5  # type default and --set, both written out


def test_kdnlp_config_prints_a_loadable_resolved_config(distilled, tmp_path, capsys):
    path, _, _ = distilled
    sets = ["--set", "student.type=bert", "--set", "student.num_layers=2", "--set", "train.mixed_precision=no"]
    assert main(["config", "--config", str(path), *sets]) == 0
    printed = capsys.readouterr().out
    assert "  report_to: none" in printed and "  lr: 5.0e-05" in printed  # defaults filled in
    (tmp_path / "resolved.yaml").write_text(printed, encoding="utf-8")
    want = load_config(path, ["student.type=bert", "student.num_layers=2", "train.mixed_precision=no"])
    assert dataclasses.replace(load_config(tmp_path / "resolved.yaml"), source=want.source) == want


def test_curves_png_after_distill_and_from_kdnlp_plot(distilled, capsys):
    pytest.importorskip("matplotlib")
    from kdnlp.plot import curve_points, find_logs
    path, cfg, _ = distilled
    png = cfg.out / "curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    png.unlink()
    assert main(["plot", "--config", str(path), "--set", "distill.alpha=0.5"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    logs = find_logs(cfg.out)
    assert list(logs) == ["teacher", "student"]
    train, dev = curve_points(logs["teacher"]["history"])
    assert [e for e, _ in train] == [1, 2]
    # eval_every=4 with 9 steps per epoch: evaluations at steps 4 and 8, then at the epoch's end (step 9)
    assert [round(x, 3) for x, _ in dev][:3] == [0.444, 0.889, 1.0]
    assert max(s for _, s in dev) == logs["teacher"]["best_dev"]


def test_curve_points_place_evaluations_by_step():
    from kdnlp.plot import curve_points
    history = [{"epoch": 1, "step": 5, "dev": 0.5}, {"epoch": 1, "train_loss": 0.9}, {"epoch": 1, "step": 10, "dev": 0.6},
               {"epoch": 2, "step": 15, "dev": 0.7}, {"epoch": 2, "train_loss": 0.7}]  # stopped early in epoch 2
    assert curve_points(history) == ([(1, 0.9), (2, 0.7)], [(0.5, 0.5), (1.0, 0.6), (1.5, 0.7)])
    # no epoch completed yet: an epoch's evaluations are spread across it
    assert curve_points([{"epoch": 1, "step": 3, "dev": 0.4}, {"epoch": 1, "step": 6, "dev": 0.5}]) == \
        ([], [(0.5, 0.4), (1.0, 0.5)])


def test_plot_refuses_clearly(tmp_path, write_config, monkeypatch, capsys):
    path = write_config()
    assert main(["plot", "--config", str(path)]) == 2
    assert "no <model>/train_log.json here yet" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    assert main(["plot", "--config", str(path)]) == 2
    assert "matplotlib is not installed" in capsys.readouterr().err
    assert not (tmp_path / "out" / "curves.png").exists()


def test_report_to_is_checked(write_config, monkeypatch, tmp_path, capsys):
    with pytest.raises(UserError, match="train.report_to: use none or tensorboard"):
        load_config(write_config({"train": {"report_to": "wandb"}}))
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed
    path = write_config({"train": {"device": "cpu", "report_to": "tensorboard"}})
    assert main(["train-teacher", "--config", str(path)]) == 2
    assert "tensorboard is not installed (pip install tensorboard)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_tensorboard_logs_match_train_log(write_config, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    cfg = kdnlp.load_config(write_config({"train": {"device": "cpu", "seed": 1, "report_to": "tensorboard"},
                                          "teacher": {"epochs": 2, "lr": 1e-3, "batch_size": 32}}))
    kdnlp.Trainer(cfg).train_teacher()
    log = json.loads((cfg.out / "teacher" / "train_log.json").read_text())
    events = EventAccumulator(str(cfg.out / "tensorboard" / "teacher"))
    events.Reload()
    assert set(events.Tags()["scalars"]) == {"train_loss", "dev/accuracy"}
    losses = [h["train_loss"] for h in log["history"] if "train_loss" in h]
    devs = [(h["step"], h["dev"]) for h in log["history"] if "dev" in h]
    assert [e.value for e in events.Scalars("train_loss")] == pytest.approx(losses, rel=1e-6)
    dev_events = events.Scalars("dev/accuracy")
    assert [e.step for e in dev_events] == [step for step, _ in devs]
    assert [e.value for e in dev_events] == pytest.approx([dev for _, dev in devs], rel=1e-6)
