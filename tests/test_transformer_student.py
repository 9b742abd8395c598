"""student.type: transformer: a BERT of a chosen shape, trained from scratch on the teacher's tokenizer and (copied
or PCA-projected) word embeddings; a plain BertFor<Task> that transformers, kdnlp.load and ONNX all read."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from kdnlp.students.static import pca

# the tiny teacher (conftest) is 4 layers, hidden 32, 2 heads: a student of another width needs a projection
SHAPE = {"num_hidden_layers": 2, "hidden_size": 16, "num_attention_heads": 2, "intermediate_size": 32}
STUDENT = {"type": "transformer", "epochs": 3, "lr": 1e-3, "batch_size": 16}


def make_teacher(tmp_path: Path, tiny_bert: Path, hidden: int) -> Path:
    """A fine-tuned-looking teacher of width `hidden` (random weights, labels.txt), on the tiny vocabulary."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer
    d = tmp_path / f"teacher{hidden}"
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(BertTokenizer(str(tiny_bert / "vocab.txt"))), hidden_size=hidden,
                        num_hidden_layers=2, num_attention_heads=2, intermediate_size=2 * hidden,
                        max_position_embeddings=64, num_labels=2, id2label={0: "neg", 1: "pos"},
                        label2id={"neg": 0, "pos": 1})
    BertForSequenceClassification(config).save_pretrained(d)
    BertTokenizer(str(tiny_bert / "vocab.txt")).save_pretrained(d)
    (d / "labels.txt").write_text("neg\npos\n", encoding="utf-8")
    return d


def test_hidden_32_student_of_a_wider_teacher_distils_saves_loads_predicts_exports(write_config, tmp_path, tiny_bert):
    """2 layers, hidden 32, under a hidden-48 teacher: distilled end to end, loaded by plain transformers,
    kdnlp.load(dir).predict agrees with it, and the ONNX export matches within 1e-4."""
    import kdnlp
    from kdnlp.cli import main
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    teacher = make_teacher(tmp_path, tiny_bert, 48)
    shape = {**SHAPE, "hidden_size": 32, "intermediate_size": 64}
    cfg = write_config({"teacher": {"pretrained": None, "fine_tuned": str(teacher)},
                        "student": {**STUDENT, "config": shape}})
    assert main(["distill", "--config", str(cfg)]) == 0
    mdir = tmp_path / "out" / "student"
    model = AutoModelForSequenceClassification.from_pretrained(mdir).eval()
    assert type(model).__name__ == "BertForSequenceClassification"
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 32
    texts = ["好棒赞爱", "差烂坏恨", "很好的", "的了是"]
    tokenizer = AutoTokenizer.from_pretrained(mdir)
    with torch.no_grad():
        logits = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    predicted = kdnlp.load(mdir).predict(texts)
    assert predicted == kdnlp.predict(mdir, texts)
    labels = [model.config.id2label[i] for i in logits.argmax(1).tolist()]
    assert [p if isinstance(p, str) else p["label"] for p in predicted] == labels
    assert main(["predict", "--config", str(cfg), "好棒赞"]) == 0
    assert main(["export", "--config", str(cfg), "--model", "student", "--format", "onnx"]) == 0
    records = json.loads((mdir / "export" / "export.json").read_text())
    assert records["model.onnx"]["max_abs_logit_diff"] < 1e-4


def load_config_dict(overrides: dict, tmp_path: Path):
    import yaml

    from kdnlp.config import load_config
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"output_dir": str(tmp_path / "o"), **overrides}), encoding="utf-8")
    return load_config(str(path))


@pytest.mark.parametrize("teacher_hidden", [16, 32, 8])  # equal, narrower student, wider student
def test_word_embeddings_are_the_teachers_copied_or_projected(tmp_path, tiny_bert, teacher_hidden):
    from kdnlp.students import StudentContext, transformer
    from kdnlp.teacher import load_tokenizer
    from transformers import AutoModelForSequenceClassification
    tdir = make_teacher(tmp_path, tiny_bert, teacher_hidden)
    teacher = AutoModelForSequenceClassification.from_pretrained(tdir)
    cfg = load_config_dict({"student": {**STUDENT, "config": SHAPE}}, tmp_path)
    ctx = StudentContext(labels=["neg", "pos"], train_texts=[], teacher_tokenizer=lambda: load_tokenizer(tdir),
                         fine_tuned_teacher=lambda: teacher)
    student, _ = transformer.build(cfg, ctx)
    got = student.get_input_embeddings().weight.detach().numpy()
    source = teacher.get_input_embeddings().weight.detach().numpy()
    if teacher_hidden == SHAPE["hidden_size"]:
        np.testing.assert_array_equal(got, source)
    elif teacher_hidden < SHAPE["hidden_size"]:  # all the teacher's components first; the other columns stay random
        np.testing.assert_allclose(got[:, :teacher_hidden], pca(source, teacher_hidden), atol=1e-6)
    else:
        np.testing.assert_allclose(got, pca(source, SHAPE["hidden_size"]), atol=1e-6)
        # one value by hand: token 7's coordinate on the top principal component of the centred teacher matrix
        centred = source - source.mean(0)
        top = np.linalg.eigh(centred.T @ centred)[1][:, -1]
        assert abs(got[7, 0] - float(centred[7] @ top)) < 1e-4


@pytest.mark.parametrize("overrides, message", [
    ({"student": {**STUDENT, "config": {**SHAPE, "hidden_size": 30, "num_attention_heads": 4}}},
     "student.config: hidden_size 30 is not divisible by num_attention_heads 4"),
    ({"student": {**STUDENT, "config": {**SHAPE, "hidden_sise": 16}}}, "student.config: unknown BertConfig field 'hidden_sise'"),
    ({"student": {"type": "bilstm", "config": SHAPE}}, "student.config: only student.type: transformer reads it"),
    ({"student": {**STUDENT, "config": {**SHAPE, "max_position_embeddings": 16}}},
     "student.config: max_position_embeddings 16 is below data.max_length 32"),
    ({"student": {**STUDENT, "config": {**SHAPE, "num_hidden_layers": 4, "num_attention_heads": 4}},
      "distill": {"intermediate": "tinybert"}}, "attention matches need equal head counts"),
])
def test_bad_transformer_configs_exit_2_with_one_line_and_write_nothing(write_config, tmp_path, capsys, overrides,
                                                                        message):
    from kdnlp.cli import main
    cfg = write_config(overrides)
    assert main(["distill", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_teacher_outputs_only_is_refused_in_one_line(write_config, tmp_path, capsys):
    from kdnlp.cli import main
    outputs = tmp_path / "outputs.jsonl"
    cfg_path = write_config({"student": {**STUDENT, "config": SHAPE}})
    import yaml
    cfg = yaml.safe_load(cfg_path.read_text())
    rows = json.loads(Path(cfg["data"]["train"]).read_text())
    outputs.write_text("".join(json.dumps({"text": r["text"], "logits": [0.0, 1.0]}, ensure_ascii=False) + "\n"
                               for r in rows), encoding="utf-8")
    cfg["teacher"] = {"pretrained": None, "outputs": str(outputs)}
    cfg_path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    assert main(["distill", "--config", str(cfg_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "student.type: transformer reads the teacher's tokenizer" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_ner_transformer_student_builds_and_runs_one_epoch(write_config, tmp_path):
    """task: ner gets a BertForTokenClassification of the chosen shape (teacher trained by kdnlp, then distilled)."""
    from kdnlp.cli import main
    from test_ner import _ner_file
    _ner_file(tmp_path / "train.txt", 60, 1)
    _ner_file(tmp_path / "test.txt", 20, 2)
    cfg = write_config({"task": "ner", "data": {"train": str(tmp_path / "train.txt"), "test": str(tmp_path / "test.txt"),
                                                "max_length": 16},
                        "teacher": {"epochs": 1}, "student": {**STUDENT, "epochs": 1, "config": SHAPE}})
    assert main(["distill", "--config", str(cfg)]) == 0
    config = json.loads((tmp_path / "out" / "student" / "config.json").read_text())
    assert config["architectures"] == ["BertForTokenClassification"] and config["hidden_size"] == 16
    assert "f1" in json.loads((tmp_path / "out" / "student" / "report.json").read_text())


def test_pairs_and_intermediate_across_widths(write_config, tmp_path):
    """Sentence pairs as one joint sequence with token types; tinybert layer matches from a hidden-16 student to the
    hidden-32 teacher go through intermediate.py's width projections."""
    from kdnlp.cli import main
    from conftest import make_texts
    rows = [{"sentence1": a, "sentence2": b, "label": label}
            for (a, label), (b, _) in zip(make_texts(80, 1), make_texts(80, 3))]
    train = tmp_path / "pairs.json"
    train.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    cfg = write_config({"data": {"train": str(train), "test": str(train), "max_length": 32},
                        "teacher": {"epochs": 1}, "student": {**STUDENT, "epochs": 1, "config": SHAPE},
                        "distill": {"alpha": 0.5, "T": 0.5, "intermediate": "tinybert"}})
    assert main(["distill", "--config", str(cfg)]) == 0
    from transformers import AutoModelForSequenceClassification

    from kdnlp.pairs import JOINT, input_kind
    student = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out" / "student")
    assert input_kind(student) == JOINT and student.config.type_vocab_size == 2  # the teacher's token types
