"""Sentence pairs (joint encoding, siamese BiLSTM, cache, augmentation, predict/export) and task: multilabel
(loss, thresholds, metrics, stratification, end to end), and the TSV reader on every shared pair/multi-label file."""
import json
import random

import numpy as np
import pytest
import torch

import kdnlp
from kdnlp.cli import main
from kdnlp.config import DataConfig
from kdnlp.data import EncodedSplit, Example, Splits, model_inputs, read_file
from kdnlp.errors import UserError
from kdnlp.multilabel import (MultiLabelDistillLoss, bce_loss, choose_thresholds, iterative_split,
                              load_multilabel_splits, multi_hot, multilabel_metrics, target)
from kdnlp.teacher import load_tokenizer

from conftest import NEG_CHARS, POS_CHARS, SHARED_DATA, make_texts


def write_pairs(path, n, seed):
    """label 'same' when both texts have the same sentiment: only readable from both sides together."""
    rng = random.Random(seed)
    texts = make_texts(2 * n, seed)
    rows = []
    for i in range(n):
        (a, la), (b, lb) = texts[2 * i], texts[rng.randrange(2 * n)]
        rows.append({"sentence1": a, "sentence2": b, "label": "same" if la == lb else "diff"})
    path.write_text("sentence1\tsentence2\tlabel\n" + "".join(f"{r['sentence1']}\t{r['sentence2']}\t{r['label']}\n"
                                                               for r in rows), encoding="utf-8")
    return path


def write_multilabel(path, n, seed):
    """labels pos / neg (a text may have both or, as 'none', neither), header-less TSV with a separator."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        k = rng.randint(2, 8)
        text = "".join(rng.choice(POS_CHARS + NEG_CHARS + list("的了是我这")) for _ in range(k))
        labs = [lab for lab, chars in (("0", POS_CHARS), ("1", NEG_CHARS)) if any(c in chars for c in text)] or ["2"]
        lines.append(f"{text}\t{','.join(labs)}\tid{rng.random():.6f}\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path


def multilabel_config(write_config, tmp_path, n_train: int = 160, n_test: int = 40, **sections):
    """A multi-label config on write_multilabel's data (labels pos / neg / none), distilled with bce at temperature
    2; `sections` adds (or, for distill, replaces) top-level sections (teacher, student, ...)."""
    (tmp_path / "labels.txt").write_text("pos\nneg\nnone\n", encoding="utf-8")
    return write_config({"task": "multilabel",
                         "data": {"train": str(write_multilabel(tmp_path / "train.tsv", n_train, 1)),
                                  "test": str(write_multilabel(tmp_path / "test.tsv", n_test, 2)),
                                  "labels": str(tmp_path / "labels.txt"), "columns": ["text", "label", "id"]},
                         "distill": {"alpha": 0.5, "T": 1.0, "loss": "bce", "temperature": 2.0}, **sections})


# ---------------------------------------------------------------- reading

def test_tsv_quoting_auto_reads_glue_and_csv_quoted_files(tmp_path):
    glue = tmp_path / "glue.tsv"  # a field starting with `"` that is not CSV-quoted: CSV quoting would merge rows
    glue.write_text('sentence1\tsentence2\tlabel\n" Hi , " he said .\tHe said hi .\t1\nA "b" c\td\t0\n', encoding="utf-8")
    rows = read_file(glue, DataConfig())
    assert [r[1] for r in rows] == ['" Hi , " he said .', 'A "b" c'] and rows[0][4] == "He said hi ."
    quoted = tmp_path / "q.tsv"
    quoted.write_text('"She said ""hi"""\t1,2\tx\nplain\t3\ty\n', encoding="utf-8")
    rows = read_file(quoted, DataConfig(columns=["text", "label", "id"]))
    assert [r[1:] for r in rows] == [('She said "hi"', "1,2", "x"), ("plain", "3", "y")]  # id: data.id_field
    literal = read_file(quoted, DataConfig(columns=["text", "label", "id"], quoting="none"))
    assert literal[0][1] == '"She said ""hi"""'
    forced = tmp_path / "bad.tsv"  # CSV quoting forced on a GLUE file: the merged row is caught, not kept
    forced.write_text('sentence\tlabel\n"a\t1\nb"\t0\nc\t1\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"bad.tsv line 3: a quoted field runs over several lines"):
        read_file(forced, DataConfig(quoting="csv"))
    split = tmp_path / "split.tsv"
    split.write_text('sentence\tlabel\na\tb\t1\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"split.tsv line 2: expected 2 TSV columns, got 3 \(columns: sentence, label\)"):
        read_file(split, DataConfig())


@pytest.mark.skipif(not (SHARED_DATA / "goemotions").is_dir(), reason="../shared/data not present")
@pytest.mark.parametrize("name,files,quoted_texts", [
    ("rte", {"train": 2490, "dev": 277}, 0), ("mrpc", {"train": 3668, "dev": 408, "test": 1725}, 0),
    ("afqmc", {"train": 34334, "dev": 4316}, 0), ("sst2", {"train": 67349, "dev": 872}, 0),
    ("goemotions", {"train": 43410, "dev": 5426, "test": 5427}, 0)])
def test_shared_files_row_counts_match_their_readmes(name, files, quoted_texts):
    cfg = DataConfig(columns=["text", "label", "id"]) if name == "goemotions" else DataConfig()
    if name == "afqmc":
        cfg = DataConfig(quoting="none")  # README: one train text literally holds CSV-style quotes
    for split, n in files.items():
        rows = read_file(SHARED_DATA / name / f"{split}.tsv", cfg)
        assert len(rows) == n, (name, split)
        assert len(rows[0]) == (5 if name in ("rte", "mrpc", "afqmc") else 4)  # (where, text, label, id[, text_b])
    if name == "goemotions":  # quoted texts are unquoted; no text keeps a CSV-doubled quote
        texts = [r[1] for r in read_file(SHARED_DATA / name / "train.tsv", cfg)]
        assert sum('"' in t for t in texts) == 1097 and not any(t.startswith('"') and '""' in t for t in texts)
    if name == "afqmc":
        texts = [r[4] for r in read_file(SHARED_DATA / name / "train.tsv", cfg)]
        assert '"在""管理""页点击""信用卡""和""花呗""，怎么回复不能开通"' in texts


def test_pair_field_auto_and_errors(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text('{"question1": "a", "question2": "b", "label": 1}\n{"question1": "c", "label": 0}\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"p.jsonl line 2: missing field 'question2' \(data.text_pair_field\)"):
        read_file(p, DataConfig())
    assert read_file(p, DataConfig(text_pair_field="none"))[1][1:] == ("c", 0, None)
    p.write_text('{"premise": "a", "hypothesis": " ", "label": 1}\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"p.jsonl line 1: empty text"):
        read_file(p, DataConfig())
    # auto-detection ignores case: a Sentence1 / Sentence2 header is a pair, a Text header a text
    capital = tmp_path / "capital.tsv"
    capital.write_text("Sentence1\tSentence2\tlabel\nthe cat\ta cat\t1\n", encoding="utf-8")
    assert read_file(capital, DataConfig())[0][1:] == ("the cat", "1", None, "a cat")
    capital.write_text("Text\tlabel\nthe cat\t1\n", encoding="utf-8")
    assert read_file(capital, DataConfig())[0][1:] == ("the cat", "1", None)


# ---------------------------------------------------------------- pairs

def test_pair_encoding_token_types_and_truncation(tiny_bert):
    tok = load_tokenizer(tiny_bert)
    ex = [Example("好" * 20, 0, text_b="差差差"), Example("好好", 1, text_b="差" * 3)]
    data = EncodedSplit(ex, tok, max_length=12)
    cls, sep = tok.cls_token_id, tok.sep_token_id
    good, bad = tok.convert_tokens_to_ids(["好", "差"])
    # longest_first: the 20-character side is cut to fit, the short side is kept whole
    assert data.ids[0] == [cls] + [good] * 6 + [sep] + [bad] * 3 + [sep]
    assert data.types[0] == [0] * 8 + [1] * 4
    assert data.ids[1] == [cls, good, good, sep, bad, bad, bad, sep]
    batch = data.collate(np.array([0, 1]))
    assert batch["token_type_ids"].tolist()[1] == [0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0]
    assert "input_ids_b" not in batch  # joint only: a transformer never needed the per-side encoding
    # per side (the siamese BiLSTM): each text alone, [CLS] x [SEP], cut at max_length on its own
    sides = EncodedSplit(ex, tok, max_length=12, pair_input="sides")
    batch = sides.collate(np.array([0, 1]))
    assert set(batch) == {"input_ids", "attention_mask", "input_ids_b", "attention_mask_b", "index", "labels"}
    assert batch["input_ids"][0].tolist() == [cls] + [good] * 10 + [sep]
    assert batch["input_ids"][1].tolist() == [cls, good, good, sep] + [0] * 8
    assert batch["input_ids_b"][1].tolist() == [cls, bad, bad, bad, sep]
    assert batch["attention_mask_b"][0].tolist() == [1, 1, 1, 1, 1]
    assert sides.lengths.tolist() == [12 + 5, 4 + 5]  # batches are sorted by both sides together


class CountingTokenizer:
    """Wraps a tokenizer and records every call: (number of first texts, whether second texts were given)."""

    def __init__(self, tokenizer):
        self.tokenizer, self.calls = tokenizer, []

    def __call__(self, text, text_pair=None, **kw):
        self.calls.append((len(text), text_pair is not None))
        return self.tokenizer(text, text_pair, **kw)

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)


def test_pairs_are_tokenised_once_for_the_reading_models_kind(tiny_bert, monkeypatch):
    ex = [Example(f"好{'差' * i}", i % 2, text_b=f"差{'好' * i}") for i in range(7)]
    for kind, expected in (("joint", [(7, True)]), ("sides", [(14, False)])):
        tok = CountingTokenizer(load_tokenizer(tiny_bert))
        EncodedSplit(ex, tok, max_length=16, pair_input=kind)
        assert tok.calls == expected  # one pass: joint pairs, or both sides' texts together; nothing else
    # model_inputs refuses a batch of the other kind instead of feeding a siamese model the first text only
    from kdnlp.students.bilstm import BiLSTMConfig, BiLSTMForSequenceClassification
    siamese = BiLSTMForSequenceClassification(BiLSTMConfig(vocab_size=10, embedding_dim=4, hidden_size=3, mlp_size=5,
                                                           num_labels=2, siamese=True, pad_token_id=0))
    joint = EncodedSplit(ex, load_tokenizer(tiny_bert), max_length=16).collate(np.arange(3))
    with pytest.raises(ValueError, match="joint pair input given to a model that reads each side on its own"):
        model_inputs(siamese, joint, "cpu")


def test_siamese_features_by_hand():
    from kdnlp.students.bilstm import BiLSTMConfig, BiLSTMForSequenceClassification
    torch.manual_seed(0)
    model = BiLSTMForSequenceClassification(BiLSTMConfig(vocab_size=10, embedding_dim=4, hidden_size=3, mlp_size=5,
                                                         num_labels=2, siamese=True, pad_token_id=0)).eval()
    a, b = torch.tensor([[1, 2, 3]]), torch.tensor([[4, 5, 0]])
    mask_a, mask_b = torch.ones_like(a), torch.tensor([[1, 1, 0]])
    with torch.no_grad():
        # each side alone through the shared embedding + BiLSTM, max-pooled over its real tokens
        h1 = model.lstm(model.embed(a))[0].max(1).values
        h2 = model.lstm(model.embed(b[:, :2]))[0].max(1).values
        by_hand = model.mlp(torch.cat([h1, h2, h1 * h2, (h1 - h2).abs()], -1))
        out = model(input_ids=a, attention_mask=mask_a, input_ids_b=b, attention_mask_b=mask_b).logits
        swapped = model(input_ids=b, attention_mask=mask_b, input_ids_b=a, attention_mask_b=mask_a).logits
    assert model.mlp[1].in_features == 4 * 2 * 3
    assert torch.allclose(out, by_hand, atol=1e-6)
    assert not torch.allclose(out, swapped)  # [h1, h2] is ordered: the sides are not interchangeable
    cfg_inputs = model_inputs(model, {"input_ids": a, "attention_mask": mask_a, "input_ids_b": b,
                                      "attention_mask_b": mask_b, "index": a}, "cpu")
    assert set(cfg_inputs) == {"input_ids", "attention_mask", "input_ids_b", "attention_mask_b"}


def test_cache_fingerprint_changes_with_the_second_text():
    one = Splits([Example("a", 0, text_b="b")], [], [], ["x"], "file")
    other = Splits([Example("a", 0, text_b="c")], [], [], ["x"], "file")
    single = Splits([Example("a", 0)], [], [], ["x"], "file")
    # all three differ pairwise (a chained != would not compare the first with the last)
    assert len({one.fingerprint("train"), other.fingerprint("train"), single.fingerprint("train")}) == 3
    # single texts hash as before pairs existed: [text, label] only, so older caches stay valid
    import hashlib
    assert single.fingerprint("train") == hashlib.sha256(b'["a", 0]\n').hexdigest()


@pytest.fixture
def pair_config(tmp_path, write_config):
    train = write_pairs(tmp_path / "train.tsv", 120, 1)
    test = write_pairs(tmp_path / "test.tsv", 30, 2)
    return write_config({"data": {"train": str(train), "test": str(test)},
                         "student": {"siamese": True, "epochs": 1}, "teacher": {"epochs": 1}})


def test_pair_distill_end_to_end_and_cache_invalidation(pair_config, tmp_path, capsys, monkeypatch):
    assert main(["distill", "--config", str(pair_config)]) == 0
    report = json.loads((tmp_path / "out" / "student" / "report.json").read_text())
    # the report's accuracy is the siamese student's, on these 30 test pairs: recomputed from its predictions
    rows = [line.split("\t") for line in (tmp_path / "test.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    predicted = kdnlp.predict(tmp_path / "out" / "student", [(a, b) for a, b, _ in rows])
    assert report["n_examples"] == 30
    assert report["accuracy"] == pytest.approx(np.mean([p["label"] == lab for p, (_, _, lab) in zip(predicted, rows)]))
    config = json.loads((tmp_path / "out" / "student" / "config.json").read_text())
    assert config["siamese"] is True and config["kdnlp_input"] == {"text_pairs": True, "max_length": 32}
    capsys.readouterr()
    # the teacher's logit cache is reused for the same pairs ...
    from kdnlp import data as data_module
    calls = {"joint": [], "sides": []}  # texts per tokenizer pass, through the two encoders EncodedSplit uses
    for name, kind in (("encode_pairs", "joint"), ("encode", "sides")):
        real = getattr(data_module, name)
        monkeypatch.setattr(data_module, name, lambda tok, a, *rest, real=real, kind=kind:
                            calls[kind].append(len(a)) or real(tok, a, *rest))
    assert main(["train-student", "--config", str(pair_config), "--set", "student.name=again"]) == 0
    assert "logit cache: reusing" in capsys.readouterr().out
    # ... and the siamese student's run tokenises each split once, both sides in one pass (108 train, 12 dev
    # carved from the 120, 30 test pairs), never jointly: that encoding is for the teacher
    assert calls == {"joint": [], "sides": [2 * 108, 2 * 12, 2 * 30]}
    monkeypatch.undo()
    # ... and recomputed when only a second text changes
    path = tmp_path / "train.tsv"
    lines = path.read_text(encoding="utf-8").splitlines()
    a, b, lab = lines[1].split("\t")
    lines[1] = "\t".join([a, b + "好", lab])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["train-student", "--config", str(pair_config), "--set", "student.name=changed"]) == 0
    assert "logit cache: computing teacher logits for train (stale" in capsys.readouterr().out
    # predict: --pair A B, and a two-column --input TSV; the joint-encoding teacher and the siamese student
    (tmp_path / "in.tsv").write_text("好好\t好棒\n差差\t好好\n", encoding="utf-8")
    for model in ("teacher", "student"):
        assert main(["predict", "--config", str(pair_config), "--model", model, "--pair", "好好", "好棒",
                     "--input", str(tmp_path / "in.tsv"), "--json"]) == 0
        out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [o["text_b"] for o in out] == ["好棒", "好棒", "好好"] and {o["label"] for o in out} <= {"same", "diff"}
    # a pair model given a single text refuses (CLI: one line, exit 2; Python: UserError), teacher and student alike
    for model in ("teacher", "student"):
        assert main(["predict", "--config", str(pair_config), "--model", model, "好好"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "this model classifies sentence pairs, and a single text was given" in err[0]
        with pytest.raises(UserError, match="classifies sentence pairs"):
            kdnlp.predict(tmp_path / "out" / model, "好好")
    # export: the teacher takes token_type_ids, the siamese student input_ids_b / attention_mask_b
    assert main(["export", "--config", str(pair_config), "--model", "student", "--format", "onnx"]) == 0
    assert main(["export", "--config", str(pair_config), "--model", "teacher", "--format", "torchscript"]) == 0
    for model, file in (("student", "model.onnx"), ("teacher", "model.pt")):
        record = json.loads((tmp_path / "out" / model / "export" / "export.json").read_text())[file]
        assert record["max_abs_logit_diff"] < 1e-4 and record["prediction_agreement"] == 1.0
    import onnx
    names = [i.name for i in onnx.load(str(tmp_path / "out" / "student" / "export" / "model.onnx")).graph.input]
    assert names == ["input_ids", "attention_mask", "input_ids_b", "attention_mask_b"]
    assert main(["bench", "--config", str(pair_config), "--models", "teacher,student", "--runs", "2",
                 "--examples", "16"]) == 0
    rows = json.loads((tmp_path / "out" / "bench.json").read_text())["rows"]
    assert [(r["model"], r["runtime"]) for r in rows] == [("teacher", "pytorch fp32"), ("teacher", "torchscript fp32"),
                                                          ("student", "pytorch fp32"), ("student", "onnxruntime fp32")]
    assert all(r["throughput_examples_per_second"] > 0 for r in rows)
    # each row's test metric is its model's test accuracy on all 30 pairs; the exports agreed on every prediction
    # above, so theirs is the same number
    for r in rows:
        accuracy = json.loads((tmp_path / "out" / r["model"] / "report.json").read_text())["accuracy"]
        assert (r["test_metric"], r["test_metric_rows"]) == (pytest.approx(accuracy), 30)


# ---------------------------------------------------------------- multi-label

def test_multilabel_loss_by_hand():
    logits = torch.tensor([[2.0, -1.0, 0.0]])
    labels = torch.tensor([[0, 2]])  # ids, padded with -1 in batches
    assert target(torch.tensor([[0, 2], [1, -1]]), 3).tolist() == [[1, 0, 1], [0, 1, 0]]
    sp = lambda x: np.log1p(np.exp(x))  # noqa: E731  softplus: BCE(z, 1) = sp(-z), BCE(z, 0) = sp(z)
    expected = (sp(-2.0) + sp(-1.0) + sp(-0.0)) / 3
    assert bce_loss(logits, labels)[0].item() == pytest.approx(expected, rel=1e-5)
    from kdnlp.config import DistillConfig
    teacher = torch.tensor([[1.0, 1.0, -2.0]])
    mse = MultiLabelDistillLoss(DistillConfig(alpha=0.5, T=2.0, loss="mse"))(logits, labels, teacher)[0].item()
    assert mse == pytest.approx(0.5 * expected + 2.0 * (1 + 4 + 4) / 3, rel=1e-5)
    t = 2.0  # bce: student logits/t against the teacher's sigmoid(logits/t), x t^2
    q = 1 / (1 + np.exp(-teacher.numpy()[0] / t))
    z = logits.numpy()[0] / t
    soft = np.mean(q * sp(-z) + (1 - q) * sp(z)) * t * t
    bce = MultiLabelDistillLoss(DistillConfig(alpha=0.0, T=1.0, loss="bce", temperature=t))(logits, labels, teacher)[0]
    assert bce.item() == pytest.approx(soft, rel=1e-5)


def test_threshold_selection_by_hand():
    probs = np.array([[0.9, 0.30], [0.6, 0.35], [0.4, 0.10], [0.2, 0.32]])
    gold = np.array([[1, 1], [1, 0], [0, 0], [0, 1]])
    per = choose_thresholds(probs, gold, "per_label")
    # label 0: any threshold in (0.4, 0.6] separates it perfectly -> the one nearest 0.5; label 1: F1 is best
    # (0.8) with both positives in, i.e. at or below 0.30, which also admits 0.35: nearest 0.5 is 0.30
    assert per[0] == pytest.approx(0.5) and per[1] == pytest.approx(0.30)
    glob = choose_thresholds(probs, gold, "global")
    assert len(set(glob)) == 1
    pred = (probs >= glob[0]).astype(int)
    f1_glob = multilabel_metrics(gold, pred, ["a", "b"])["micro_f1"]
    for t in np.arange(0.02, 0.99, 0.01):  # no other global threshold does better
        assert multilabel_metrics(gold, (probs >= t).astype(int), ["a", "b"])["micro_f1"] <= f1_glob + 1e-12
    m = multilabel_metrics(gold, np.array([[1, 1], [1, 0], [0, 1], [0, 0]]), ["a", "b"])
    assert m["subset_accuracy"] == 0.5 and m["per_label"]["b"]["precision"] == 0.5
    assert m["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 1)) and m["samples_f1"] == pytest.approx(0.5)


def test_iterative_stratification_keeps_rare_labels_in_both_parts():
    rng = random.Random(0)
    sets = [tuple(sorted(rng.sample(range(6), rng.randint(1, 2)))) for _ in range(400)] + [(6,)] * 10
    first, rest = iterative_split(sets, 100, seed=3)
    assert len(first) == 100 and sorted(first + rest) == list(range(410))
    a, b = multi_hot([sets[i] for i in first], 7).sum(0), multi_hot([sets[i] for i in rest], 7).sum(0)
    total = a + b
    assert np.all(np.abs(a - total * 100 / 410) <= 2)  # every label within 2 of its share (rare label 6 too)
    assert iterative_split(sets, 100, seed=3) == (first, rest)


def test_multilabel_label_errors(tmp_path):
    (tmp_path / "labels.txt").write_text("pos\nneg\nnone\n", encoding="utf-8")
    train = write_multilabel(tmp_path / "train.tsv", 40, 1)
    base = dict(train=str(train), test=str(train), labels=str(tmp_path / "labels.txt"), columns=["text", "label", "id"])
    s = load_multilabel_splits(DataConfig(**base), 0)
    assert all(isinstance(e.label, tuple) and e.label for e in s.train)
    bad = tmp_path / "bad.tsv"
    bad.write_text("好\t0,3\tx\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"bad.tsv line 1: label id 3 is outside data.labels \(3 labels"):
        load_multilabel_splits(DataConfig(**{**base, "test": str(bad)}), 0)
    bad.write_text("好\t\tx\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"bad.tsv line 1: empty label list; .*data.allow_empty_labels: true"):
        load_multilabel_splits(DataConfig(**{**base, "test": str(bad)}), 0)
    assert load_multilabel_splits(DataConfig(**{**base, "test": str(bad), "allow_empty_labels": True}), 0).test[0].label == ()
    bad.write_text("好\tjoy\tx\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"bad.tsv line 1: label 'joy' is not in data.labels"):
        load_multilabel_splits(DataConfig(**{**base, "test": str(bad)}), 0)


def test_multilabel_distill_end_to_end(tmp_path, write_config, capsys):
    cfg = multilabel_config(write_config, tmp_path, teacher={"epochs": 2},
                            student={"epochs": 2, "type": "bert", "num_layers": 2})
    assert main(["distill", "--config", str(cfg)]) == 0
    rows = [line.split("\t") for line in (tmp_path / "test.tsv").read_text(encoding="utf-8").splitlines()]
    gold = multi_hot([[int(i) for i in labs.split(",")] for _, labs, _ in rows], 3)
    for name in ("teacher", "student"):
        report = json.loads((tmp_path / "out" / name / "report.json").read_text())
        config = json.loads((tmp_path / "out" / name / "config.json").read_text())
        assert config["problem_type"] == "multi_label_classification"
        assert len(config["multilabel_thresholds"]) == 3 and report["thresholds"] == config["multilabel_thresholds"]
        # the report's metrics are those of the model's predictions at its saved thresholds, on the 40 test texts
        predicted = kdnlp.predict(tmp_path / "out" / name, [text for text, _, _ in rows])
        pred = np.array([[lab in p["labels"] for lab in ("pos", "neg", "none")] for p in predicted], dtype=int)
        assert report == {**report, **multilabel_metrics(gold, pred, ["pos", "neg", "none"])}
        assert report["n_examples"] == 40 and report["per_label"]["neg"]["support"] == gold[:, 1].sum()
    capsys.readouterr()
    assert main(["predict", "--config", str(cfg), "--model", "student", "--json", "好棒", "差的"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(out) == 2 and all(set(o["labels"]) <= {"pos", "neg", "none"} for o in out)
    assert set(out[0]["probabilities"]) == {"pos", "neg", "none"}
    # kdnlp.predict on a copy of the model without the run's config.resolved.yaml: the model's own config.json
    # (problem_type, thresholds, recorded max_length) still makes it multi-label, scored with sigmoids
    import shutil
    shutil.copytree(tmp_path / "out" / "student", tmp_path / "moved" / "student")
    moved = kdnlp.predict(tmp_path / "moved" / "student", ["好棒", "差的"])
    assert [(m["labels"], m["probabilities"]) for m in moved] == \
        [(o["labels"], pytest.approx(o["probabilities"], abs=1e-4)) for o in out]


def test_augmentation_perturbs_each_side_of_a_pair_independently(tmp_path):
    from kdnlp.augment import load_or_build_transfer_set
    from kdnlp.config import AugmentConfig
    originals = [("the cat sat on the mat", "a dog ran in the park"), ("red green blue", "one two three four")]
    cfg = AugmentConfig(enabled=True, n_samples=30, p_mask=0.3, p_pos=0.0, p_ngram=0.0, tagger="none")
    ts = load_or_build_transfer_set(originals, cfg, "[MASK]", tmp_path / "augment", log=lambda _: None)
    assert ts.texts_b is not None and len(ts.texts) == len(ts.texts_b) > 10
    for a, b, src, ops in zip(ts.texts, ts.texts_b, ts.sources, ts.ops):
        first, second = ops.split("|")
        # a side without an operation is its original; a masked side keeps its own words in place
        assert (a == originals[src][0]) == (first == "") and (b == originals[src][1]) == (second == "")
        assert all(w in ("[MASK]", o) for w, o in zip(b.split(), originals[src][1].split()))
    assert {tuple(o.split("|")) != ("mask", "mask") for o in ts.ops} == {True, False}  # sides change separately
    again = load_or_build_transfer_set(originals, cfg, "[MASK]", tmp_path / "augment", log=lambda _: None)
    assert again.texts_b == ts.texts_b  # stored with the second texts and reused
    changed = [originals[0], ("red green blue", "one two three five")]
    other = load_or_build_transfer_set(changed, cfg, "[MASK]", tmp_path / "augment", log=lambda _: None)
    assert any(b.endswith("five") for b in other.texts_b)  # a changed second text rebuilds the set


@pytest.mark.parametrize("case", ["pair_missing", "empty_labels", "label_outside_file", "bce_for_single_label"])
def test_shape_config_errors_are_one_line_before_training(case, tmp_path, write_config, capsys):
    (tmp_path / "labels.txt").write_text("pos\nneg\nnone\n", encoding="utf-8")
    train = write_multilabel(tmp_path / "train.tsv", 40, 1)
    multi = {"task": "multilabel", "data": {"train": str(train), "test": str(train), "labels": str(tmp_path / "labels.txt"),
                                            "columns": ["text", "label", "id"]}}
    bad = tmp_path / "bad.jsonl"
    if case == "pair_missing":
        bad.write_text('{"premise": "好", "hypothesis": "差", "label": "x"}\n{"premise": "好", "label": "y"}\n', encoding="utf-8")
        cfg, expected = write_config({"data": {"train": str(bad), "test": str(bad)}}), "bad.jsonl line 2: missing field 'hypothesis'"
    elif case == "empty_labels":
        bad.write_text('{"text": "好", "label": []}\n', encoding="utf-8")
        cfg = write_config({**multi, "data": {**multi["data"], "test": str(bad)}})
        expected = "bad.jsonl line 1: empty label list"
    elif case == "label_outside_file":
        bad.write_text('{"text": "好", "label": ["pos", "joy"]}\n', encoding="utf-8")
        cfg = write_config({**multi, "data": {**multi["data"], "test": str(bad)}})
        expected = "bad.jsonl line 1: label 'joy' is not in data.labels"
    else:
        cfg, expected = write_config({"distill": {"loss": "bce"}}), "distill.loss: bce is for task: multilabel"
    assert main(["distill", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kdnlp: error:") and expected in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()  # nothing trained, nothing written
