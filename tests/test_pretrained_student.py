"""student.type: pretrained: a separately pretrained encoder as the student, with its own tokenizer.

The student here is a tiny RoBERTa whose byte-level BPE tokenizer is trained in the test (tokenizers library), under
the tiny WordPiece BERT teachers of conftest: the two tokenizers split every text differently, so these tests fail
if a student batch were encoded with the teacher's tokenizer, or NER's per-word teacher vectors were not re-cut to
the student's windows."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import FILLER, NEG_CHARS, POS_CHARS, make_texts
from test_ner import _ner_file
from test_transformer_student import make_teacher

STUDENT = {"type": "pretrained", "epochs": 2, "lr": 2e-3, "batch_size": 16}
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def make_roberta(d: Path, fp16: bool = False, with_tokenizer: bool = True) -> Path:
    """A 2-layer, hidden-24 RoBERTa encoder (no head) + a byte-level BPE tokenizer trained on the tiny texts."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizerFast
    d.mkdir(parents=True, exist_ok=True)
    corpus = [t for t, _ in make_texts(200, 7)] + ["".join(POS_CHARS), "".join(NEG_CHARS), "".join(FILLER)]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(corpus, vocab_size=300, min_frequency=2, special_tokens=SPECIALS, show_progress=False)
    bpe.save_model(str(d))  # vocab.json + merges.txt
    tokenizer = RobertaTokenizerFast.from_pretrained(str(d))  # reads the vocab.json + merges.txt just written
    config = RobertaConfig(vocab_size=len(tokenizer), hidden_size=24, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=48, max_position_embeddings=72, type_vocab_size=1,
                           pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                           eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    model = RobertaModel(config)
    (model.half() if fp16 else model).save_pretrained(d)
    if with_tokenizer:
        tokenizer.save_pretrained(d)
    else:
        for f in ("vocab.json", "merges.txt"):
            (d / f).unlink()
    return d


@pytest.fixture(scope="module")
def roberta(tmp_path_factory) -> Path:
    return make_roberta(tmp_path_factory.mktemp("roberta"))


def run(args: list[str]) -> int:
    from kdnlp.cli import main
    return main(args)


def check_predict_and_export(cfg: Path, mdir: Path, inputs: list, export_examples: int | None = None) -> dict:
    """kdnlp.load(dir).predict == kdnlp.predict, `kdnlp predict` exits 0, the ONNX export's logits match PyTorch."""
    import kdnlp
    predicted = kdnlp.load(mdir).predict(inputs)
    assert predicted == kdnlp.predict(mdir, inputs)
    args = ["export", "--config", str(cfg), "--model", "student", "--format", "onnx"]
    assert run(args + (["--examples", str(export_examples)] if export_examples else [])) == 0
    records = json.loads((mdir / "export" / "export.json").read_text())
    assert records["model.onnx"]["max_abs_logit_diff"] < 1e-4
    return predicted


def test_classification_roberta_student_under_a_wordpiece_teacher(write_config, tmp_path, tiny_bert, roberta):
    """Distilled end to end; the saved student is a plain RobertaForSequenceClassification with the student's BPE
    tokenizer, whose predictions kdnlp.load, `kdnlp predict` and the ONNX export all agree with."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    cfg = write_config({"student": {**STUDENT, "epochs": 4, "pretrained": str(roberta)}})  # teacher: tiny_bert, trained
    assert run(["distill", "--config", str(cfg)]) == 0
    teacher = tmp_path / "out" / "teacher"
    mdir = tmp_path / "out" / "student"
    saved = json.loads((mdir / "tokenizer.json").read_text(encoding="utf-8"))  # its own tokenizer, saved with it
    assert saved["model"]["type"] == "BPE" and saved["pre_tokenizer"]["type"] == "ByteLevel"
    model = AutoModelForSequenceClassification.from_pretrained(mdir).eval()
    assert type(model).__name__ == "RobertaForSequenceClassification" and model.config.hidden_size == 24
    texts = ["好棒赞爱", "差烂坏恨", "很好的", "的了是"]
    tokenizer = AutoTokenizer.from_pretrained(mdir)
    teacher_ids = AutoTokenizer.from_pretrained(teacher)(texts)["input_ids"]
    assert tokenizer(texts)["input_ids"] != teacher_ids  # the two tokenizers really differ on these texts
    with torch.no_grad():
        logits = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    labels = [model.config.id2label[i] for i in logits.argmax(1).tolist()]
    predicted = check_predict_and_export(cfg, mdir, texts)
    assert [p if isinstance(p, str) else p["label"] for p in predicted] == labels
    assert run(["predict", "--config", str(cfg), "好棒赞"]) == 0
    assert run(["bench", "--config", str(cfg), "--models", "student", "--runs", "2", "--examples", "16",
                "--threads", "1"]) == 0
    rows = json.loads((tmp_path / "out" / "bench.json").read_text())["rows"]
    assert [r["runtime"] for r in rows] == ["pytorch fp32", "onnxruntime fp32"]  # and the exported file
    assert all(r["throughput_examples_per_second"] > 0 for r in rows)
    report = json.loads((mdir / "report.json").read_text())
    assert report["accuracy"] >= 0.75, report  # learnable from the characters: the student did learn


def test_sentence_pairs_with_the_students_own_tokenizer(write_config, tmp_path, tiny_bert, roberta):
    """Pairs are one joint sequence in the student's format (<s> a </s></s> b </s>); predict takes (a, b)."""
    rows = [{"sentence1": a, "sentence2": b, "label": label}
            for (a, label), (b, _) in zip(make_texts(80, 1), make_texts(80, 3))]
    train = tmp_path / "pairs.json"
    train.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    teacher = make_teacher(tmp_path, tiny_bert, 32)
    cfg = write_config({"data": {"train": str(train), "test": str(train), "max_length": 32},
                        "teacher": {"pretrained": None, "fine_tuned": str(teacher)},
                        "student": {**STUDENT, "epochs": 1, "pretrained": str(roberta)}})
    assert run(["distill", "--config", str(cfg)]) == 0
    mdir = tmp_path / "out" / "student"
    config = json.loads((mdir / "config.json").read_text())
    assert config["model_type"] == "roberta" and config["kdnlp_input"]["text_pairs"] is True
    predicted = check_predict_and_export(cfg, mdir, [("好棒", "差烂"), ("很好", "的了")], export_examples=24)
    assert all((p if isinstance(p, str) else p["label"]) in ("neg", "pos") for p in predicted)


def test_multilabel_roberta_student_uses_the_per_example_cache(write_config, tmp_path, roberta):
    from test_shapes import multilabel_config

    import kdnlp
    cfg = multilabel_config(write_config, tmp_path, 120, 30, teacher={"epochs": 1},
                            student={**STUDENT, "epochs": 1, "pretrained": str(roberta)})
    assert run(["distill", "--config", str(cfg)]) == 0
    mdir = tmp_path / "out" / "student"
    config = json.loads((mdir / "config.json").read_text())
    assert config["model_type"] == "roberta" and config["problem_type"] == "multi_label_classification"
    predicted = kdnlp.load(mdir).predict(["好棒差烂", "的了是"])
    assert len(predicted) == 2 and all(set(p["labels"]) <= {"pos", "neg", "none"} for p in predicted), predicted


def test_ner_roberta_student_gets_the_teachers_per_word_vectors(write_config, tmp_path, roberta):
    """Windows of 8 sub-tokens: the BPE student cuts the sentences into other windows than the WordPiece teacher,
    so the cache must be re-cut per word to train at all (a mismatch raises in the loss)."""
    _ner_file(tmp_path / "train.txt", 60, 1)
    _ner_file(tmp_path / "test.txt", 20, 2)
    cfg = write_config({"task": "ner", "data": {"train": str(tmp_path / "train.txt"), "test": str(tmp_path / "test.txt"),
                                                "max_length": 8},
                        "teacher": {"epochs": 1}, "student": {**STUDENT, "epochs": 1, "pretrained": str(roberta)}})
    assert run(["distill", "--config", str(cfg)]) == 0
    mdir = tmp_path / "out" / "student"
    assert json.loads((mdir / "config.json").read_text())["architectures"] == ["RobertaForTokenClassification"]
    assert "f1" in json.loads((mdir / "report.json").read_text())
    predicted = check_predict_and_export(cfg, mdir, ["好 棒 的 差", "了 是"])
    assert all(set(p) == {"text", "entities"} for p in predicted)


def test_each_word_keeps_its_own_teacher_vector_across_tokenizers(tiny_bert, roberta):
    """A word that the two tokenizers split into different numbers of pieces still gets its own vector, whatever
    windows either one cuts."""
    from kdnlp.ner import EncodedTagSplit, TagExample, TokenLogits, realign_word_logits, word_prefix
    from kdnlp.teacher import load_tokenizer
    teacher_tok, student_tok = load_tokenizer(tiny_bert), load_tokenizer(roberta)
    words = ["好棒赞", "的", "差烂坏恨", "很", "满意开心", "了", "讨厌"]
    counts = [(len(teacher_tok(w, add_special_tokens=False)["input_ids"]),
               len(student_tok(word_prefix(student_tok) + w, add_special_tokens=False)["input_ids"])) for w in words]
    assert any(t != s for t, s in counts), counts  # the test means something only if the splits differ
    examples = [TagExample(words[k:] + words[:k], [0] * len(words)) for k in range(4)] + [TagExample(["很"], [0])]
    teacher, student = EncodedTagSplit(examples, teacher_tok, 8), EncodedTagSplit(examples, student_tok, 8)
    assert teacher.row_example != student.row_example  # different windows
    # the teacher's vector for word w of example e is (e, w), stored in the teacher's rows
    rows = [np.array([[teacher.row_example[r], teacher.row_word[r] + i]
                      for i in range(sum(lab != -100 for lab in teacher.labels[r]))], np.float32)
            for r in range(len(teacher.ids))]
    aligned = realign_word_logits(TokenLogits.from_rows(rows, 2), student)
    assert len(aligned) == len(student.ids)
    for r in range(len(student.ids)):
        n = sum(lab != -100 for lab in student.labels[r])  # the student's labelled positions in this row
        expected = [[student.row_example[r], student.row_word[r] + i] for i in range(n)]
        np.testing.assert_array_equal(aligned.row(r), np.array(expected, np.float32).reshape(-1, 2))
    again = realign_word_logits(aligned, student)  # the same windows: nothing changes
    np.testing.assert_array_equal(again.flat, aligned.flat)
    np.testing.assert_array_equal(again.offsets, aligned.offsets)


def test_an_fp16_checkpoint_loads_in_fp32(tmp_path):
    from kdnlp.students.pretrained import load
    d = make_roberta(tmp_path / "fp16", fp16=True)
    assert json.loads((d / "config.json").read_text())["dtype"] == "float16"
    model, tokenizer = load(str(d), ["neg", "pos"], "classification")
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert len(tokenizer) == model.config.vocab_size


def test_same_tokenizer_student_may_match_intermediate_layers(write_config, tmp_path, tiny_bert):
    """A pretrained student with the teacher's tokenizer (the tiny BERT itself) under a wider teacher: hidden-state
    matches go through intermediate.py's width projection."""
    teacher = make_teacher(tmp_path, tiny_bert, 48)
    cfg = write_config({"teacher": {"pretrained": None, "fine_tuned": str(teacher)},
                        "student": {**STUDENT, "epochs": 1, "pretrained": str(tiny_bert)},
                        "distill": {"alpha": 0.5, "T": 0.5, "intermediate": "uniform"}})
    assert run(["distill", "--config", str(cfg)]) == 0
    log = json.loads((tmp_path / "out" / "student" / "train_log.json").read_text())
    assert any("hidden" in k for k in log["history"][0]["train_parts"])


@pytest.mark.parametrize("case, message", [
    ("no_tokenizer", "student directory is missing vocab.txt (or another tokenizer"),
    ("intermediate", "distill.intermediate: the pretrained student's tokenizer is not the teacher's"),
    ("missing_key", "student.pretrained: student.type: pretrained needs the checkpoint"),
    ("other_type", "student.pretrained: only student.type: pretrained reads it (student.type is bilstm)"),
    ("not_found", "student directory not found (student.pretrained)"),
    ("too_long", "reads at most 70 tokens (max_position_embeddings), below data.max_length 100"),
])
def test_bad_pretrained_configs_exit_2_with_one_line_and_write_nothing(write_config, tmp_path, tiny_bert, roberta,
                                                                        capsys, case, message):
    student = {**STUDENT, "pretrained": str(roberta)}
    distill, data = {"alpha": 0.5, "T": 0.5}, {}
    if case == "no_tokenizer":
        student["pretrained"] = str(make_roberta(tmp_path / "bare", with_tokenizer=False))
    elif case == "intermediate":
        distill["intermediate"] = "uniform"
    elif case == "missing_key":
        del student["pretrained"]
    elif case == "other_type":
        student["type"] = "bilstm"
    elif case == "too_long":  # the tiny RoBERTa: 72 positions, of which 2 precede the first token's
        data["max_length"] = 100
    else:
        student["pretrained"] = str(tmp_path / "nowhere")
    teacher = make_teacher(tmp_path, tiny_bert, 32)
    cfg = write_config({"teacher": {"pretrained": None, "fine_tuned": str(teacher)}, "student": student,
                        "distill": distill, "data": data})
    assert run(["distill", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    if case == "no_tokenizer":
        assert "tokenizer saved next to the model" in err
    assert not (tmp_path / "out").exists()
