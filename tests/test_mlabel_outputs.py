"""Issue 23 item 3: multi-label teacher outputs — kdnlp label marks the task, teacher.outputs reads per-label logits
or independent probabilities for task: multilabel, and a file of the other task is refused in one line."""
import json

import numpy as np
import pytest
import torch

from conftest import NEG_CHARS, POS_CHARS
from kdnlp.cli import main
from kdnlp.errors import UserError
from kdnlp.multilabel import multi_hot, multilabel_metrics, sigmoid
from kdnlp.teacher_outputs import read_outputs

LABELS = ["neg", "none", "pos"]  # the data's (sorted) label order


def _rows(n: int, seed: int) -> list[dict]:
    """Unique texts labelled pos / neg by the characters they hold (both, or 'none' for neither)."""
    rng = np.random.default_rng(seed)
    chars, filler = POS_CHARS + NEG_CHARS + list("的了是我这"), list("的了是我这很也都在有")
    rows, seen = [], set()
    while len(rows) < n:
        text = "".join(rng.choice(filler if len(rows) % 4 == 0 else chars, rng.integers(3, 9)))
        if text in seen:
            continue
        seen.add(text)
        labs = [lab for lab, cs in (("pos", POS_CHARS), ("neg", NEG_CHARS)) if any(c in cs for c in text)] or ["none"]
        rows.append({"text": text, "label": labs})
    return rows


@pytest.fixture
def ml_data(tmp_path):
    paths = {}
    for split, n, seed in (("train", 60, 1), ("test", 20, 2)):
        paths[split] = tmp_path / f"ml_{split}.json"
        paths[split].write_text(json.dumps(_rows(n, seed), ensure_ascii=False), encoding="utf-8")
    return paths


@pytest.fixture(scope="module")
def ml_teacher(tmp_path_factory, tiny_bert):
    """A multi-label classifier saved with save_pretrained, its labels in another order than the data's, with a
    spread-out head bias so that the three logits differ clearly."""
    from transformers import BertForSequenceClassification, BertTokenizer
    d = tmp_path_factory.mktemp("ml_teacher")
    names = ["pos", "neg", "none"]
    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(
        str(tiny_bert), num_labels=3, problem_type="multi_label_classification", ignore_mismatched_sizes=True,
        id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})
    with torch.no_grad():
        model.classifier.bias.copy_(torch.tensor([1.5, -2.0, 0.3]))
    model.save_pretrained(d)
    BertTokenizer.from_pretrained(str(tiny_bert)).save_pretrained(d)
    return d


def _config(write_config, ml_data, outputs, **distill):
    return write_config({"task": "multilabel",
                         "data": {"train": str(ml_data["train"]), "test": str(ml_data["test"])},
                         "teacher": {"pretrained": None, "outputs": str(outputs)},
                         "student": {"epochs": 1},
                         "distill": {"alpha": 0.5, "T": 1.0, "loss": "bce", "temperature": 2.0, **distill}},
                        name="ml.yaml")


def _err(capsys, argv) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("kdnlp: error:") and "epoch" not in captured.out
    return err


def test_label_multilabel_teacher_then_distill_on_its_outputs(write_config, ml_teacher, ml_data, tmp_path, capsys):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from kdnlp.config import load_config
    from kdnlp.trainer import Trainer
    texts = tmp_path / "texts.txt"
    texts.write_text("".join(r["text"] + "\n" for split in ("train", "test")
                             for r in json.loads(ml_data[split].read_text(encoding="utf-8"))), encoding="utf-8")
    out = tmp_path / "ml_outputs.jsonl"
    assert main(["label", "--input", str(texts), "--teacher", str(ml_teacher), "--output", str(out)]) == 0
    assert "multilabel" in capsys.readouterr().out
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows[0] == {"labels": ["pos", "neg", "none"], "task": "multilabel"} and len(rows) == 81
    cfg = _config(write_config, ml_data, out)
    assert main(["distill", "--config", str(cfg)]) == 0
    printed = capsys.readouterr().out
    assert "teacher outputs: " in printed and "micro F1" in printed  # the file covers test: a multi-label report
    root = tmp_path / "out"
    report = json.loads((root / "teacher_outputs_report.json").read_text())
    assert len(report["thresholds"]) == 3 and set(report["per_label"]) == set(LABELS)
    assert json.loads((root / "student" / "config.json").read_text())["problem_type"] == "multi_label_classification"
    # the student's teacher logits are the teacher's own, columns matched to the data's labels by name
    trainer = Trainer(load_config(cfg))
    supplied = trainer.teacher_logits("train")
    model = AutoModelForSequenceClassification.from_pretrained(ml_teacher).eval()
    tok = AutoTokenizer.from_pretrained(ml_teacher)
    with torch.no_grad():
        own = model(**tok([e.text for e in trainer.splits.train], padding=True, truncation=True, max_length=128,
                          return_tensors="pt")).logits.numpy()
    assert supplied.shape == (len(trainer.splits.train), 3)
    np.testing.assert_allclose(supplied, own[:, [1, 2, 0]], rtol=0, atol=1e-5)
    # the teacher report is the teacher's own predictions on test at the report's (dev-chosen) thresholds
    test = trainer.splits.test
    with torch.no_grad():
        test_logits = model(**tok([e.text for e in test], padding=True, return_tensors="pt")).logits.numpy()[:, [1, 2, 0]]
    pred = (sigmoid(test_logits) >= np.array(report["thresholds"])[None, :]).astype(int)
    assert report == {**report, **multilabel_metrics(multi_hot([e.label for e in test], 3), pred, LABELS)}
    # the same file under a classification config: one line naming the task, before anything is trained
    single = write_config({"teacher": {"pretrained": None, "outputs": str(out)}}, name="single.yaml")
    err = _err(capsys, ["distill", "--config", str(single)])
    assert "line 1" in err and "multilabel outputs" in err and "task is classification" in err


def test_multilabel_probs_become_logits_by_the_logit_transform(tmp_path):
    path = tmp_path / "probs.jsonl"
    path.write_text('{"labels": ["pos", "neg", "none"]}\n'  # no task marker: accepted as before
                    '{"text": "a", "probs": [0.9, 0.8, 0.0]}\n'
                    '{"text": "b", "probs": {"neg": 0.25, "none": 1.0, "pos": 0.5}}\n', encoding="utf-8")
    out = read_outputs(str(path), LABELS, task="multilabel")
    p = np.array([[0.8, 1e-7, 0.9], [0.25, 1 - 1e-7, 0.5]])  # data order neg, none, pos; 0 and 1 clipped
    assert out.kind == "probs" and out.task == "multilabel"
    np.testing.assert_allclose(out.logits, np.log(p / (1 - p)), rtol=1e-5)
    assert out.logits[1, 2] == 0.0 and np.isclose(out.logits[0, 2], np.log(9), rtol=1e-6)
    # distill.loss: bce at temperature 1 trains against exactly the given probabilities (sigmoid inverts the logit)
    from kdnlp.losses import teacher_term
    student = torch.tensor([[0.3, -1.0, 2.0], [0.0, 0.5, -0.5]])
    by_hand = torch.nn.functional.binary_cross_entropy_with_logits(student, torch.tensor(p, dtype=torch.float32))
    assert float(teacher_term(student, torch.from_numpy(out.logits), "bce", 1.0)) == pytest.approx(float(by_hand), rel=1e-5)
    # independent per-label probabilities (summing to 1.7) would be refused under softmax
    with pytest.raises(UserError, match="sum to 1"):
        read_outputs(str(path), LABELS)
    # .npy: values all in [0, 1] are read as probabilities under multilabel
    np.save(tmp_path / "p.npy", np.array([[0.1, 0.2, 0.3]]))
    (tmp_path / "ids.txt").write_text("a\n", encoding="utf-8")
    npy = read_outputs(str(tmp_path / "p.npy"), LABELS, ids_path=str(tmp_path / "ids.txt"), task="multilabel")
    np.testing.assert_allclose(npy.logits[0], np.log([0.1 / 0.9, 0.2 / 0.8, 0.3 / 0.7]), rtol=1e-5)


@pytest.mark.parametrize("body, message", [
    ('{"labels": ["neg", "none", "pos"], "task": "classification"}\n{"text": "a", "logits": [1, 2, 3]}\n',
     "holds classification outputs (softmax over the labels) but the config's task is multilabel"),
    ('{"text": "a", "probs": [0.5, 1.2, 0.1]}\n', "must each be in [0, 1]"),
    ('{"labels": ["neg", "none", "pos"], "task": "regression"}\n{"text": "a", "logits": [1, 2, 3]}\n',
     "is not one of classification, multilabel"),
])
def test_multilabel_outputs_refusals_are_one_line(write_config, ml_data, tmp_path, capsys, body, message):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(body, encoding="utf-8")
    err = _err(capsys, ["distill", "--config", str(_config(write_config, ml_data, bad))])
    assert message in err and str(bad) in err
    assert not (tmp_path / "out" / "student").exists()


def test_multilabel_probs_with_mse_refused_for_bce(write_config, ml_data, tmp_path, capsys):
    rows = [r["text"] for r in json.loads(ml_data["train"].read_text(encoding="utf-8"))]
    path = tmp_path / "probs.jsonl"
    path.write_text("".join(json.dumps({"text": t, "probs": [0.2, 0.3, 0.9]}, ensure_ascii=False) + "\n" for t in rows),
                    encoding="utf-8")
    err = _err(capsys, ["distill", "--config", str(_config(write_config, ml_data, path, loss="mse"))])
    assert "set distill.loss: bce" in err
    ner = write_config({"task": "ner", "teacher": {"outputs": str(path)}}, name="ner.yaml")
    assert "classification or multilabel" in _err(capsys, ["distill", "--config", str(ner)])


def test_list_labels_under_classification_are_one_line(write_config, ml_data, capsys):
    cfg = write_config({"data": {"train": str(ml_data["train"]), "test": str(ml_data["test"])}}, name="cls.yaml")
    err = _err(capsys, ["train-teacher", "--config", str(cfg)])
    assert "ml_train.json" in err and "task: multilabel" in err


def test_multilabel_distill_with_an_unlabeled_pile(write_config, ml_teacher, ml_data, tmp_path, capsys):
    """data.unlabeled under task: multilabel: the fine-tuned teacher labels the pile once, pile rows carry the
    teacher term only (their row in a batch is [UNLABELLED], which the BCE gold term skips but counts in its mean)."""
    from kdnlp.data import UNLABELLED
    from kdnlp.multilabel import MultiLabelDistillLoss, target
    pile = tmp_path / "pile.txt"
    pile.write_text("".join(r["text"] + "\n" for r in _rows(90, 7)), encoding="utf-8")
    cfg = write_config({"task": "multilabel", "data": {"train": str(ml_data["train"]), "test": str(ml_data["test"]),
                                                       "unlabeled": str(pile), "unlabeled_shard_rows": 40},
                        "teacher": {"pretrained": None, "fine_tuned": str(ml_teacher)},
                        "student": {"epochs": 1, "batch_size": 16},
                        "distill": {"alpha": 0.5, "T": 1.0, "loss": "bce"}}, name="ml_pile.yaml")
    assert main(["distill", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    n_train = int(out.split("data: ")[1].split(" train")[0])
    dropped = int(out.split(" rows dropped as equal")[0].rsplit("; ", 1)[1])
    assert f"transfer set: {n_train} rows + {90 - dropped} unlabelled rows" in out and "micro F1" in out
    log = json.loads((tmp_path / "out" / "student" / "train_log.json").read_text())
    assert log["step"] == -(-(n_train + 90 - dropped) // 16)  # one epoch over labelled + pile rows
    # the gold term: BCE over the gold rows only, divided by all rows x labels
    logits = torch.tensor([[0.3, -1.0, 2.0], [1.0, 1.0, 1.0], [-2.0, 0.5, 0.0]])
    labels = torch.tensor([[0, 2], [UNLABELLED, -1], [1, -1]])
    gold = torch.nn.functional.binary_cross_entropy_with_logits(
        logits[[0, 2]], target(labels[[0, 2]], 3), reduction="sum") / 9
    assert torch.allclose(MultiLabelDistillLoss.gold_term(logits, labels), gold)
    assert torch.allclose(MultiLabelDistillLoss.gold_term(logits[[0, 2]], labels[[0, 2]]),
                          torch.nn.functional.binary_cross_entropy_with_logits(logits[[0, 2]], target(labels[[0, 2]], 3)))
