"""NER: IOB1->IOB2, subword alignment and -100 masking, windowing, masked losses, seqeval, end-to-end distill."""
import json
import random

import numpy as np
import pytest
import torch

from kdnlp.cli import main
from kdnlp.config import DataConfig, DistillConfig
from kdnlp.errors import UserError
from kdnlp.losses import DistillLoss
from kdnlp.ner import (IGNORE, EncodedTagSplit, TagExample, TokenLogits, entity_metrics, iob1_to_iob2,
                       load_ner_splits, read_column_file)
from kdnlp.runtime.decode import entities

from conftest import FILLER, NEG_CHARS, POS_CHARS, SHARED_DATA


def test_iob1_to_iob2():
    assert iob1_to_iob2(["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-ORG", "I-MISC"]) == \
        ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "B-ORG", "B-MISC"]
    iob2 = ["B-PER", "I-PER", "O", "B-LOC"]
    assert iob1_to_iob2(iob2) == iob2


def test_column_reader(tmp_path):
    p = tmp_path / "x.conll"
    p.write_text("-DOCSTART- -X- O O\n\nEU NNP I-NP I-ORG\nrejects VBZ I-VP O\n\n张 B-PER\n三 I-PER\n", encoding="utf-8")
    rows = read_column_file(p)
    assert [r[1:] for r in rows] == [(["EU", "rejects"], ["B-ORG", "O"]), (["张", "三"], ["B-PER", "I-PER"])]
    p.write_text("EU NNP I-NP I-ORG\nrejects\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"x.conll line 2: expected 'token ... TAG'"):
        read_column_file(p)
    p.write_text("EU NNP I-NP ORG\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"x.conll line 1: tag 'ORG' is not O"):
        read_column_file(p)


def test_alignment_masks_non_first_subwords_and_windows_round_trip():
    from transformers import BertTokenizer
    import tempfile, os
    d = tempfile.mkdtemp()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "new", "york", "##er", "is", "big"]
    open(os.path.join(d, "vocab.txt"), "w").write("\n".join(vocab) + "\n")
    tok = BertTokenizer(os.path.join(d, "vocab.txt"))
    ex = TagExample(["newyorker", "is", "big"], [1, 0, 0])  # newyorker -> new ##york? no: new, ##er pieces
    data = EncodedTagSplit([ex], tok, max_length=16)
    ids = data.ids[0]
    pieces = tok("newyorker", add_special_tokens=False)["input_ids"]
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    assert data.labels[0] == [IGNORE, 1] + [IGNORE] * (len(pieces) - 1) + [0, 0, IGNORE]
    # Windowing: a 30-word sentence with max_length 8 (6 word slots) -> 5 rows, each labelled word once.
    long = TagExample(["is", "big"] * 15, [i % 3 for i in range(30)])
    data = EncodedTagSplit([ex, long], tok, max_length=8)
    assert max(len(x) for x in data.ids) <= 8 and data.row_example.count(1) == 5
    rows = [np.eye(3, dtype=np.float32)[[t for t in lab if t != IGNORE]] for lab in data.labels]
    assert data.word_predictions(TokenLogits.from_rows(rows, 3)) == [ex.tags, long.tags]


def test_masked_losses_against_hand_computation():
    """Only labelled positions count: logits at -100 positions can be anything."""
    logits = torch.tensor([[[1.0, 2.0], [50.0, -50.0], [0.5, 0.0]]])
    labels = torch.tensor([[1, IGNORE, 0]])
    teacher_rows = TokenLogits.from_rows([np.array([[2.0, 1.0], [0.0, 0.0]], np.float32)], 2)
    valid = labels != IGNORE
    loss = DistillLoss(DistillConfig(alpha=1.0, T=1.0, loss="mse"))
    total, parts = loss(logits[valid], labels[valid], torch.from_numpy(teacher_rows[[0]]))
    ce = (-np.log(np.exp(2) / (np.exp(1) + np.exp(2))) - np.log(np.exp(0.5) / (np.exp(0.5) + 1))) / 2
    mse = ((1 - 2) ** 2 + (2 - 1) ** 2 + 0.5 ** 2 + 0) / 4
    assert np.isclose(parts["ce"], ce) and np.isclose(parts["mse"], mse) and np.isclose(total.item(), ce + mse)


def test_seqeval_report_on_hand_made_example():
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    gold = [[1, 2, 0, 3], [3, 4, 0]]
    pred = [[1, 2, 0, 0], [3, 0, 0]]  # PER right, first LOC missed, second LOC truncated (strict: wrong)
    m = entity_metrics(gold, pred, labels)
    assert m["precision"] == pytest.approx(1 / 2) and m["recall"] == pytest.approx(1 / 3)
    assert m["f1"] == pytest.approx(0.4)
    assert m["per_type"]["PER"]["f1"] == 1.0 and m["per_type"]["LOC"]["f1"] == 0.0
    assert m["macro_f1"] == pytest.approx(0.5)
    assert entities(list("张三去北京"), ["B-PER", "I-PER", "O", "B-LOC", "I-LOC"]) == [
        {"type": "PER", "start": 0, "end": 2, "text": "张三"}, {"type": "LOC", "start": 3, "end": 5, "text": "北京"}]


def _ner_file(path, n, seed):
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        for _ in range(rng.randint(3, 9)):
            kind = rng.random()
            if kind < 0.2:
                for j in range(2):
                    lines.append(f"{rng.choice(POS_CHARS)} {'B' if j == 0 else 'I'}-PER")
            elif kind < 0.35:
                lines.append(f"{rng.choice(NEG_CHARS)} B-LOC")
            else:
                lines.append(f"{rng.choice(FILLER)} O")
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize("student", [{"type": "bert", "num_layers": 2}, {"type": "bilstm"}])
def test_ner_distill_end_to_end(write_config, tmp_path, capsys, student):
    _ner_file(tmp_path / "train.txt", 120, 1)
    _ner_file(tmp_path / "test.txt", 30, 2)
    cfg = write_config({"task": "ner", "data": {"train": str(tmp_path / "train.txt"), "test": str(tmp_path / "test.txt"),
                                                "max_length": 8},  # short windows: exercises windowing end to end
                        "teacher": {"epochs": 5, "lr": 3e-3}, "student": student})
    assert main(["distill", "--config", str(cfg)]) == 0
    out = tmp_path / "out"
    report = json.loads((out / "teacher" / "report.json").read_text())
    for key in ("f1", "precision", "recall", "per_type", "macro_f1"):
        assert key in report
    assert set(report["per_type"]) == {"PER", "LOC"} and report["f1"] > 0.3  # it learned something
    manifest = json.loads((out / "logits" / "train.json").read_text())
    assert manifest["ragged"] and (out / "logits" / "train.offsets.npy").is_file()
    assert (out / "teacher" / "labels.txt").read_text().split() == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    assert "entity F1" in capsys.readouterr().out
    assert main(["predict", "--config", str(cfg), "--model", "teacher", "--json", "的好棒了差是"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["text"] == "的好棒了差是" and all(e["type"] in ("PER", "LOC") for e in result["entities"])
    # From Python, the task (ner: a token classifier) and max_length (8) come from the model's config.json: same
    # entities.
    import kdnlp
    assert kdnlp.predict(out / "teacher", ["的好棒了差是"]) == [result]


@pytest.mark.skipif(not (SHARED_DATA / "conll2003").is_dir(), reason="../shared/data not present")
def test_real_conll2003_and_peoples_daily_files():
    s = load_ner_splits(DataConfig(train=str(SHARED_DATA / "conll2003/eng.train"),
                                   dev=str(SHARED_DATA / "conll2003/eng.testa"),
                                   test=str(SHARED_DATA / "conll2003/eng.testb")), seed=0)
    assert (len(s.train), len(s.dev), len(s.test)) == (14041, 3250, 3453)
    assert s.labels == ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    n_per = sum(t == s.labels.index("B-PER") for ex in s.train for t in ex.tags)
    assert n_per == 6600  # one B- per entity after IOB1 -> IOB2 (README: 6,600 PER in train)
    rows = read_column_file(SHARED_DATA / "peoples_daily_ner/example.dev")
    assert len(rows) == 2318 and max(len(r[1]) for r in rows) == 568
