"""Bring your own teacher: teacher.fine_tuned, teacher.outputs, kdnlp label, fp16 checkpoints, fail-fast checks."""
import json

import numpy as np
import pytest
import torch

from kdnlp.cli import main


@pytest.fixture(scope="module")
def hf_teacher(tmp_path_factory):
    """A classifier fine-tuned outside kdnlp (here: briefly, with plain torch), labels in the opposite order of the
    data's sorted ["neg", "pos"], saved with save_pretrained (no labels.txt)."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    from conftest import FILLER, NEG_CHARS, POS_CHARS, make_texts
    d = tmp_path_factory.mktemp("hf_teacher")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(POS_CHARS + NEG_CHARS + FILLER))
    (d / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tok = BertTokenizer(str(d / "vocab.txt"))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=2,
                        id2label={0: "pos", 1: "neg"}, label2id={"pos": 0, "neg": 1})
    model = BertForSequenceClassification(config)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    rows = make_texts(160, 1)
    for _ in range(2):
        for i in range(0, len(rows), 16):
            enc = tok([t for t, _ in rows[i:i + 16]], padding=True, return_tensors="pt")
            loss = model(**enc, labels=torch.tensor([0 if y == "pos" else 1 for _, y in rows[i:i + 16]])).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


def _err(capsys, argv) -> str:
    """The one-line error of a run refused before any training (no epoch printed)."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("kdnlp: error:")
    assert "epoch" not in captured.out
    return err


def test_fine_tuned_teacher_is_used_as_is(write_config, hf_teacher, tiny_data, tmp_path, capsys):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    cfg = write_config({"teacher": {"fine_tuned": str(hf_teacher)}})
    assert main(["distill", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "teacher epoch" not in out and "used as it is" in out
    root = tmp_path / "out"
    assert not (root / "teacher" / "train_log.json").exists()  # never trained
    report = json.loads((root / "teacher" / "report.json").read_text())
    # the same accuracy measured with transformers alone, on the original checkpoint and its own label names
    tok = AutoTokenizer.from_pretrained(hf_teacher)
    model = AutoModelForSequenceClassification.from_pretrained(hf_teacher).eval()
    test = json.loads(tiny_data["test"].read_text())
    with torch.no_grad():
        pred = [model.config.id2label[int(model(**tok(r["text"], return_tensors="pt")).logits.argmax())] for r in test]
    assert report["accuracy"] == pytest.approx(np.mean([p == r["label"] for p, r in zip(pred, test)]))
    assert report["accuracy"] > 0.8  # the brief fine-tune learned the task: a reordering bug would give ~0.2
    # the imported teacher's outputs are in the data's order: column 0 = neg = the original's column 1
    imported = AutoModelForSequenceClassification.from_pretrained(root / "teacher").eval()
    enc = tok([r["text"] for r in test[:5]], padding=True, return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(imported(**enc).logits, model(**enc).logits[:, [1, 0]], atol=1e-5)
    assert (root / "teacher" / "labels.txt").read_text().split() == ["neg", "pos"]
    assert (root / "student" / "report.json").is_file()


def test_fine_tuned_labels_must_match(write_config, hf_teacher, tmp_path, capsys):
    labels = tmp_path / "labels.txt"
    labels.write_text("neg\npositive\n", encoding="utf-8")
    other = tmp_path / "other.json"
    other.write_text(json.dumps([{"text": "好棒", "label": "positive"}, {"text": "差烂", "label": "neg"}] * 10,
                                ensure_ascii=False), encoding="utf-8")
    cfg = write_config({"teacher": {"fine_tuned": str(hf_teacher)}, "data": {"train": str(other), "test": str(other)}})
    err = _err(capsys, ["distill", "--config", str(cfg)])
    assert "['pos', 'neg']" in err and "['neg', 'positive']" in err and "missing in the teacher: ['positive']" in err
    assert not (tmp_path / "out").exists()


def test_generic_label_names_need_data_labels(write_config, tiny_bert, tiny_data, tmp_path, capsys):
    """tiny_bert has LABEL_0/LABEL_1: mapped by index only when data.labels gives the order."""
    cfg = write_config({"teacher": {"fine_tuned": str(tiny_bert)}})
    assert "generic" in _err(capsys, ["train-teacher", "--config", str(cfg)])
    (tmp_path / "classes.txt").write_text("neg\npos\n", encoding="utf-8")
    cfg = write_config({"teacher": {"fine_tuned": str(tiny_bert)}, "data": {"labels": str(tmp_path / "classes.txt")}})
    assert main(["train-teacher", "--config", str(cfg)]) == 0
    assert (tmp_path / "out" / "teacher" / "report.json").is_file()


def test_fp16_checkpoint_trains_in_fp32(write_config, tiny_bert, tmp_path):
    from safetensors.torch import load_file
    from transformers import BertForSequenceClassification
    half = tmp_path / "half"
    BertForSequenceClassification.from_pretrained(tiny_bert).half().save_pretrained(half)
    for f in ("vocab.txt", "tokenizer_config.json", "tokenizer.json"):
        if (tiny_bert / f).exists():
            (half / f).write_bytes((tiny_bert / f).read_bytes())
    assert json.loads((half / "config.json").read_text())["dtype"] == "float16"
    cfg = write_config({"teacher": {"pretrained": str(half), "epochs": 3}})
    assert main(["train-teacher", "--config", str(cfg)]) == 0
    saved = load_file(tmp_path / "out" / "teacher" / "model.safetensors")
    assert {t.dtype for t in saved.values()} == {torch.float32}
    losses = [h["train_loss"] for h in json.loads((tmp_path / "out" / "teacher" / "train_log.json").read_text())["history"]
              if "train_loss" in h]
    assert losses[-1] < losses[0] and all(np.isfinite(losses))


def _label(hf_teacher, texts_file, out, capsys):
    assert main(["label", "--input", str(texts_file), "--teacher", str(hf_teacher), "--output", str(out)]) == 0
    capsys.readouterr()
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def test_outputs_from_kdnlp_label_equal_cached_logits(write_config, hf_teacher, tiny_data, tmp_path, capsys):
    """The teacher as a JSONL written by kdnlp label gives the student the cached logits, row for row, and so the
    same training."""
    from kdnlp.config import load_config
    from kdnlp.teacher_outputs import align, read_outputs
    from kdnlp.trainer import Trainer
    cached = write_config({"teacher": {"fine_tuned": str(hf_teacher)}, "student": {"tokenizer": None}})
    assert main(["distill", "--config", str(cached)]) == 0
    out = tmp_path / "outputs.jsonl"
    rows = _label(hf_teacher, tiny_data["train"], out, capsys)
    assert rows[0] == {"labels": ["pos", "neg"], "task": "classification"} and len(rows) == 161 and len(rows[1]["logits"]) == 2
    given = write_config({"teacher": {"outputs": str(out)},
                          "student": {"tokenizer": str(hf_teacher), "name": "from_outputs"}}, name="outputs.yaml")
    assert main(["distill", "--config", str(given)]) == 0
    root = tmp_path / "out"
    splits = Trainer(load_config(given)).splits
    supplied = align(read_outputs(str(out), splits.labels), splits.train, splits.dev + splits.test)
    # the same rows: only float noise from batching (the cache pads batches of 32, kdnlp label of 64)
    np.testing.assert_allclose(supplied, np.load(root / "logits" / "train.npy"), rtol=0, atol=1e-5)
    history = lambda name: [h["train_loss"] for h in json.loads((root / name / "train_log.json").read_text())["history"]
                            if "train_loss" in h]
    assert history("from_outputs") == pytest.approx(history("student"), rel=1e-4)
    a = json.loads((root / "student" / "report.json").read_text())
    b = json.loads((root / "from_outputs" / "report.json").read_text())
    assert a["accuracy"] == b["accuracy"]
    # the supplied outputs also cover the test texts? No (train only): no teacher report, the table says so
    assert "teacher (supplied outputs)" in capsys.readouterr().out


def test_outputs_alone_word_vocabulary_probs_unlabelled_and_npy(write_config, tiny_data, tmp_path, capsys):
    """No teacher model anywhere: probabilities with KL, unlabelled train texts, a word vocabulary; and a .npy."""
    train = json.loads(tiny_data["train"].read_text())
    extra = [{"text": "好棒好棒赞"}, {"text": "差差烂烂"}]  # no gold label: only the teacher term trains on them
    data = tmp_path / "with_unlabelled.json"
    data.write_text(json.dumps(train + extra, ensure_ascii=False), encoding="utf-8")
    probs = lambda t: {"pos": 0.9, "neg": 0.1} if any(c in t for c in "好棒赞爱喜欢优秀满意开心") else {"pos": 0.2, "neg": 0.8}
    out = tmp_path / "llm.jsonl"
    out.write_text("".join(json.dumps({"text": r["text"], "probs": probs(r["text"])}, ensure_ascii=False) + "\n"
                           for r in train + extra), encoding="utf-8")
    cfg = write_config({"teacher": {"outputs": str(out)}, "data": {"train": str(data)},
                        "distill": {"loss": "kl", "temperature": 2.0}, "student": {"epochs": 6, "lr": 5e-3}})
    assert main(["distill", "--config", str(cfg)]) == 0
    printed = capsys.readouterr().out
    assert "student vocabulary:" in printed and "teacher outputs: 146 training rows" in printed  # 144 + 2 unlabelled
    assert (tmp_path / "out" / "student" / "word_vocab.txt").is_file()
    assert json.loads((tmp_path / "out" / "student" / "report.json").read_text())["accuracy"] > 0.6
    # the same targets as a .npy (data label order: neg, pos) with one text per line
    np.save(tmp_path / "t.npy", np.array([[probs(r["text"])["neg"], probs(r["text"])["pos"]] for r in train]))
    (tmp_path / "ids.txt").write_text("".join(r["text"] + "\n" for r in train), encoding="utf-8")
    cfg = write_config({"teacher": {"outputs": str(tmp_path / "t.npy"), "outputs_ids": str(tmp_path / "ids.txt"),
                                    "outputs_type": "probs"}, "distill": {"loss": "kl"}, "student": {"name": "npy"}})
    assert main(["train-student", "--config", str(cfg)]) == 0


def _bad_outputs(tmp_path, tiny_data, lines: list) -> str:
    train = [r["text"] for r in json.loads(tiny_data["train"].read_text())]
    p = tmp_path / "bad.jsonl"
    rows = [{"text": t, "logits": [0.0, 1.0]} for t in train]
    for i, row in lines:
        if i is None:
            rows.append(row)
        else:
            rows[i] = row
    rows = [r for r in rows if r is not None]
    p.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(p)


@pytest.mark.parametrize("change, message", [
    ([(None, {"text": "不在数据里", "logits": [0.0, 1.0]})], "line 161: text '不在数据里' is not in the data"),
    ([(3, None)], "no teacher output for 1 of 144 training examples"),
    ([(4, {"text": "x", "logits": [1.0]})], "line 5: 1 values but the data has 2 labels"),
    ([(5, {"text": "x", "logits": [float("nan"), 1.0]})], "line 6: logits contain NaN"),
    ([(6, {"text": "x", "probs": [0.5, 0.6]})], "line 7: probs must be >= 0 and sum to 1"),
    ([(7, {"text": "x", "scores": [0.5, 0.5]})], "line 8: give exactly one of"),
])
def test_bad_outputs_fail_before_training(write_config, tiny_data, tmp_path, capsys, change, message):
    cfg = write_config({"teacher": {"outputs": _bad_outputs(tmp_path, tiny_data, change)}})
    err = _err(capsys, ["distill", "--config", str(cfg)])
    assert message in err, err
    assert not (tmp_path / "out").exists()


def test_probs_with_mse_is_refused(write_config, tiny_data, tmp_path, capsys):
    train = [r["text"] for r in json.loads(tiny_data["train"].read_text())]
    p = tmp_path / "p.jsonl"
    p.write_text("".join(json.dumps({"text": t, "probs": [0.5, 0.5]}, ensure_ascii=False) + "\n" for t in train))
    assert "set distill.loss: kl" in _err(capsys, ["distill", "--config", str(write_config({"teacher": {"outputs": str(p)}}))])


@pytest.mark.parametrize("overrides, message", [
    ({"student": {"type": "bert", "num_layers": 6}}, "6 is more than the teacher's 4 layers"),
    ({"student": {"type": "bert", "layer_selection": [0, 7]}}, "layer 7 is out of range for a 4-layer teacher"),
    ({"student": {"type": "theseus", "num_layers": 4}}, "theseus needs fewer layers than the teacher's 4"),
    ({"student": {"type": "bert", "num_layers": 2}, "distill": {"intermediate": [{"teacher_layer": 9, "student_layer": 1}]}},
     "teacher layer 9 is out of range"),
    ({"student": {"embeddings": "nope.vec"}}, "student.embeddings: nope.vec not found"),
    ({"student": {"tokenizer": "no/such/dir"}}, "student.tokenizer: no/such/dir not found"),
    ({"teacher": {"pretrained": None, "config": {"num_hidden_layers": 2}, "vocab": "missing_vocab.txt"}},
     "teacher.vocab: missing_vocab.txt not found"),
    ({"teacher": {"fine_tuned": "./no_such_teacher"}}, "directory not found"),
])
def test_config_errors_before_any_training(write_config, tmp_path, capsys, overrides, message):
    """Each is found in the first seconds of distill: one line, exit 2, no epoch, nothing written."""
    cfg = write_config(overrides)
    err = _err(capsys, ["distill", "--config", str(cfg)])  # _err: and no epoch printed
    assert message in err, err
    assert not (tmp_path / "out").exists()


def test_teacher_dir_without_weights_and_outputs_only_model_students(write_config, tiny_bert, tiny_data, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((tiny_bert / "config.json").read_text())
    err = _err(capsys, ["distill", "--config", str(write_config({"teacher": {"pretrained": str(broken)}}))])
    assert "missing" in err and "model.safetensors" in err and "vocab.txt" in err
    train = [r["text"] for r in json.loads(tiny_data["train"].read_text())]
    p = tmp_path / "o.jsonl"
    p.write_text("".join(json.dumps({"text": t, "logits": [0.0, 1.0]}, ensure_ascii=False) + "\n" for t in train))
    err = _err(capsys, ["distill", "--config", str(write_config({"teacher": {"outputs": str(p)}, "student": {"type": "bert"}}))])
    assert "only teacher.outputs is given" in err
    assert not (tmp_path / "out").exists()


def test_small_things(write_config, tmp_path):
    from kdnlp.config import config_from_dict
    cfg = config_from_dict({"task": "ner", "data": {"format": "conll"}})
    assert cfg.data.format == "conll"
    assert config_from_dict({"student": {"type": "fastbert"}}).student.num_layers is None  # = the teacher's depth
    assert config_from_dict({"student": {"type": "bert"}}).student.num_layers == 6
    from kdnlp.students.truncated_bert import student_layers
    assert student_layers(config_from_dict({"student": {"type": "fastbert"}}).student, 12) == list(range(12))


def test_fine_tuned_ner_tagger_with_its_own_tag_order(write_config, tmp_path, capsys):
    """A token classifier whose tags are in another order (and named only in config.id2label) gives the same entity
    F1 as the kdnlp-trained tagger it was made from."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from test_ner import _ner_file
    _ner_file(tmp_path / "train.txt", 120, 1)
    _ner_file(tmp_path / "test.txt", 30, 2)
    data = {"train": str(tmp_path / "train.txt"), "test": str(tmp_path / "test.txt"), "max_length": 16, "format": "conll"}
    cfg = write_config({"task": "ner", "data": data, "teacher": {"epochs": 3, "lr": 3e-3}})
    assert main(["train-teacher", "--config", str(cfg)]) == 0
    trained = tmp_path / "out" / "teacher"
    tags = (trained / "labels.txt").read_text().split()
    order = [3, 0, 4, 2, 1]  # the foreign checkpoint's output i = tags[order[i]]
    model = AutoModelForTokenClassification.from_pretrained(trained)
    with torch.no_grad():
        model.classifier.weight.copy_(model.classifier.weight[order])
        model.classifier.bias.copy_(model.classifier.bias[order])
    model.config.id2label = {i: tags[j] for i, j in enumerate(order)}
    model.config.label2id = {tags[j]: i for i, j in enumerate(order)}
    foreign = tmp_path / "foreign"
    model.save_pretrained(foreign)
    AutoTokenizer.from_pretrained(trained).save_pretrained(foreign)
    cfg2 = write_config({"task": "ner", "data": data, "teacher": {"fine_tuned": str(foreign)},
                         "output_dir": str(tmp_path / "out2")}, name="ft.yaml")
    assert main(["train-teacher", "--config", str(cfg2)]) == 0
    a = json.loads((trained / "report.json").read_text())
    b = json.loads((tmp_path / "out2" / "teacher" / "report.json").read_text())
    assert a["f1"] > 0.3 and b["f1"] == pytest.approx(a["f1"]) and b["per_type"] == a["per_type"]


def test_outputs_for_a_whole_file_with_a_subsample(write_config, tiny_data, tmp_path, capsys):
    """Outputs for every row of the train file, training on a max_train_examples subsample: the rows left out are
    data too (not 'not in the data')."""
    train = [r["text"] for r in json.loads(tiny_data["train"].read_text())]
    p = tmp_path / "all.jsonl"
    p.write_text("".join(json.dumps({"text": t, "logits": [0.0, 1.0]}, ensure_ascii=False) + "\n" for t in train))
    cfg = write_config({"teacher": {"outputs": str(p)}, "data": {"max_train_examples": 50}, "student": {"epochs": 1}})
    assert main(["train-student", "--config", str(cfg)]) == 0
    assert "teacher outputs: 50 training rows" in capsys.readouterr().out


# ---------------------------------------------------------------- teacher.pretrained with a head already (issue 21)

def _logits(model, tok, texts):
    with torch.no_grad():
        return model.eval()(**tok(texts, padding=True, return_tensors="pt")).logits


def test_pretrained_with_a_head_reordered_by_name_or_fresh(hf_teacher, tmp_path, capsys):
    """hf_teacher's head is (pos, neg); the data's labels are (neg, pos). Fine-tuned again as teacher.pretrained,
    row 0 must still mean neg: the rows are reordered by name. Names that are not the data's get a fresh head,
    generic LABEL_i names keep their rows by index only when data.labels gives the order."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from kdnlp.config import TeacherConfig
    from kdnlp.teacher import load_pretrained_teacher
    original = AutoModelForSequenceClassification.from_pretrained(hf_teacher)
    tok = AutoTokenizer.from_pretrained(hf_teacher)
    texts = ["好棒好棒", "差烂差烂", "我很开心"]
    model, _ = load_pretrained_teacher(TeacherConfig(pretrained=str(hf_teacher)), ["neg", "pos"])
    assert torch.allclose(_logits(model, tok, texts), _logits(original, tok, texts)[:, [1, 0]], atol=1e-5)
    assert model.config.id2label == {0: "neg", 1: "pos"}
    line = capsys.readouterr().out.strip()
    assert len(line.splitlines()) == 1 and "rows reordered by name" in line, line
    saved = original.classifier.weight
    fresh, _ = load_pretrained_teacher(TeacherConfig(pretrained=str(hf_teacher)), ["bad", "good"])
    assert "with a fresh head (its names are not the data's" in capsys.readouterr().out
    assert not torch.allclose(fresh.classifier.weight, saved) and not torch.allclose(fresh.classifier.weight, saved[[1, 0]])
    # the same checkpoint with generic names: rows by index with data.labels, a fresh head without
    generic = tmp_path / "generic"
    original.config.id2label, original.config.label2id = {0: "LABEL_0", 1: "LABEL_1"}, {"LABEL_0": 0, "LABEL_1": 1}
    original.save_pretrained(generic)
    tok.save_pretrained(generic)
    kept, _ = load_pretrained_teacher(TeacherConfig(pretrained=str(generic)), ["pos", "neg"], by_index=True)
    assert torch.equal(kept.classifier.weight, saved) and "keeping its rows" in capsys.readouterr().out
    redrawn, _ = load_pretrained_teacher(TeacherConfig(pretrained=str(generic)), ["pos", "neg"])
    assert not torch.allclose(redrawn.classifier.weight, saved)
    assert "fresh head (generic names; set data.labels" in capsys.readouterr().out


# ---------------------------------------------------------------- teacher.outputs: repeats, Unicode, pairs, .npy (issue 21)

def _rows_file(path, rows) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def test_repeated_text_same_values_accepted_different_values_refused(tmp_path):
    from kdnlp.errors import UserError
    from kdnlp.teacher_outputs import read_outputs
    same = _rows_file(tmp_path / "same.jsonl", [{"text": "a", "logits": [1.0, 0.0]}, {"text": "b", "logits": [0.0, 1.0]},
                                                {"text": "a ", "logits": [1.0, 0.0]}])
    assert read_outputs(same, ["neg", "pos"]).lookup() == {"a": 0, "b": 1}
    # kdnlp label over a text that occurs twice: two batches, two paddings, the last float bits differ
    noisy = _rows_file(tmp_path / "noisy.jsonl", [{"text": "a", "logits": [1.0, 0.0]}, {"text": "a", "logits": [1.0000004, -3e-7]}])
    assert read_outputs(noisy, ["neg", "pos"]).lookup() == {"a": 0}
    differ = _rows_file(tmp_path / "differ.jsonl", [{"text": "a", "logits": [1.0, 0.0]}, {"text": "b", "logits": [0.0, 1.0]},
                                                    {"text": "a", "logits": [0.0, 1.0]}])
    with pytest.raises(UserError, match=r"differ.jsonl line 3: text 'a' was already given different values at .*differ.jsonl line 1"):
        read_outputs(differ, ["neg", "pos"])


def test_outputs_text_matched_after_nfc(tmp_path):
    """'café' with a combining accent (NFD, as some APIs and macOS tools write it) is the data's 'café' (NFC)."""
    import unicodedata

    from kdnlp.data import Example
    from kdnlp.teacher_outputs import align, read_outputs
    nfc, nfd = "un café noir", unicodedata.normalize("NFD", "un café noir")
    assert nfc != nfd
    p = _rows_file(tmp_path / "o.jsonl", [{"text": nfd, "logits": [2.0, 0.0]}, {"text": "thé", "logits": [0.0, 3.0]}])
    got = align(read_outputs(p, ["neg", "pos"]), [Example(nfc, 0), Example(unicodedata.normalize("NFD", "thé"), 1)], [])
    assert got.tolist() == [[2.0, 0.0], [0.0, 3.0]]


def test_outputs_for_pairs_keyed_by_both_texts(tmp_path):
    """Two pairs sharing their first sentence each get their own row (RTE has 210 such train rows)."""
    from kdnlp.data import Example
    from kdnlp.errors import UserError
    from kdnlp.teacher_outputs import align, read_outputs
    train = [Example("the cat sat", 0, text_b="a cat sat"), Example("the cat sat", 1, text_b="no cat anywhere")]
    p = _rows_file(tmp_path / "pairs.jsonl", [{"text": "the cat sat", "text_b": "no cat anywhere", "logits": [0.0, 4.0]},
                                               {"text": "the cat sat", "text_b": "a cat sat", "logits": [4.0, 0.0]}])
    assert align(read_outputs(p, ["a", "b"]), train, []).tolist() == [[4.0, 0.0], [0.0, 4.0]]
    np.save(tmp_path / "pairs.npy", np.array([[4.0, 0.0], [0.0, 4.0]]))
    (tmp_path / "ids.txt").write_text("the cat sat\ta cat sat\nthe cat sat\tno cat anywhere\n", encoding="utf-8")
    npy = read_outputs(str(tmp_path / "pairs.npy"), ["a", "b"], ids_path=str(tmp_path / "ids.txt"))
    assert align(npy, train, []).tolist() == [[4.0, 0.0], [0.0, 4.0]]
    single = _rows_file(tmp_path / "one.jsonl", [{"text": "the cat sat", "logits": [0.0, 4.0]}])
    with pytest.raises(UserError, match="the data are sentence pairs but its rows give one text"):
        align(read_outputs(single, ["a", "b"]), train, [])


def test_npy_of_probabilities_is_said_and_refused_with_mse(write_config, tiny_data, tmp_path, capsys):
    """outputs_type auto: rows >= 0 summing to 1 are probabilities; regressing them as logits (mse) is refused."""
    train = [r["text"] for r in json.loads(tiny_data["train"].read_text())]
    np.save(tmp_path / "p.npy", np.tile([[0.3, 0.7]], (len(train), 1)))
    (tmp_path / "ids.txt").write_text("".join(t + "\n" for t in train), encoding="utf-8")
    outputs = {"outputs": str(tmp_path / "p.npy"), "outputs_ids": str(tmp_path / "ids.txt")}
    err = _err(capsys, ["train-student", "--config", str(write_config({"teacher": outputs}))])
    assert "p.npy: gives probabilities; distill.loss: mse matches logits" in err
    from kdnlp.teacher_outputs import read_outputs
    assert read_outputs(outputs["outputs"], ["neg", "pos"], ids_path=outputs["outputs_ids"]).kind == "probs"
    assert "every row of" in capsys.readouterr().out
    forced = read_outputs(outputs["outputs"], ["neg", "pos"], "logits", outputs["outputs_ids"])
    assert forced.kind == "logits" and forced.logits[0].tolist() == pytest.approx([0.3, 0.7])


def test_outputs_with_a_fine_tuned_teacher_and_augmentation_refused(write_config, hf_teacher, tiny_data, tmp_path, capsys):
    train = [r["text"] for r in json.loads(tiny_data["train"].read_text())]
    p = _rows_file(tmp_path / "o.jsonl", [{"text": t, "logits": [0.0, 1.0]} for t in train])
    cfg = write_config({"teacher": {"outputs": p, "fine_tuned": str(hf_teacher)}, "augment": {"enabled": True}})
    assert "two teachers mixed on different scales" in _err(capsys, ["distill", "--config", str(cfg)])
    assert not (tmp_path / "out").exists()


def test_T0_does_not_read_teacher_outputs(write_config, tiny_data, tmp_path, capsys):
    """docs/teachers.md: --T 0 ignores the file; even a broken one (a row not in the data) does not stop it."""
    train = [r["text"] for r in json.loads(tiny_data["train"].read_text())]
    p = _rows_file(tmp_path / "o.jsonl", [{"text": t, "logits": [0.0, 1.0]} for t in train] + [{"text": "不在", "logits": [0, 1]}])
    cfg = write_config({"teacher": {"outputs": p}, "student": {"epochs": 1}})
    assert "'不在' is not in the data" in _err(capsys, ["distill", "--config", str(cfg)])
    assert main(["distill", "--config", str(cfg), "--T", "0"]) == 0
    assert "teacher.outputs is not read" in capsys.readouterr().out


# ---------------------------------------------------------------- each key's own fix; kdnlp label (issue 21)

def test_fine_tuned_dir_without_tokenizer_gives_its_own_fix(write_config, hf_teacher, tmp_path, capsys):
    no_tok = tmp_path / "no_tok"
    no_tok.mkdir()
    for f in ("config.json", "model.safetensors"):
        (no_tok / f).write_bytes((hf_teacher / f).read_bytes())
    err = _err(capsys, ["distill", "--config", str(write_config({"teacher": {"fine_tuned": str(no_tok)}}))])
    assert "missing vocab.txt" in err and "teacher.fine_tuned needs a fine-tuned model directory" in err
    assert "tokenizer.save_pretrained" in err and "bert-base-chinese" not in err
    err = _err(capsys, ["label", "--input", str(tmp_path / "x.txt"), "--teacher", str(no_tok)])
    assert "--input" in err  # the input is checked first; then the model, with --teacher's fix:
    (tmp_path / "x.txt").write_text("好\n", encoding="utf-8")
    err = _err(capsys, ["label", "--input", str(tmp_path / "x.txt"), "--teacher", str(no_tok)])
    assert "--teacher needs a fine-tuned model directory" in err and "bert-base-chinese" not in err
    err = _err(capsys, ["train-teacher", "--config", str(write_config({"teacher": {"pretrained": str(no_tok)}}))])
    assert "point teacher.pretrained at a pretrained model directory" in err and "bert-base-chinese" not in err


def test_label_with_generic_names_read_by_index_with_data_labels(write_config, tiny_bert, tiny_data, tmp_path, capsys):
    """kdnlp label on a LABEL_0/LABEL_1 checkpoint writes that header; the reader maps it by index when data.labels
    gives the order (match_labels' rule), and says what to do otherwise."""
    from kdnlp.errors import UserError
    from kdnlp.teacher_outputs import read_outputs
    out = tmp_path / "generic.jsonl"
    rows = _label(tiny_bert, tiny_data["train"], out, capsys)
    assert rows[0] == {"labels": ["LABEL_0", "LABEL_1"], "task": "classification"}
    with pytest.raises(UserError, match="generic"):
        read_outputs(str(out), ["neg", "pos"])
    got = read_outputs(str(out), ["neg", "pos"], by_index=True)
    assert got.logits[0].tolist() == pytest.approx(rows[1]["logits"])
    swapped = _rows_file(tmp_path / "named.jsonl", [{"labels": ["pos", "neg"]}, {"text": "好", "logits": [1.0, 2.0]}])
    assert read_outputs(swapped, ["neg", "pos"]).logits[0].tolist() == [2.0, 1.0]  # named columns: by name


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_label_device_cuda_without_gpu_is_one_line(hf_teacher, tiny_data, tmp_path, capsys):
    err = _err(capsys, ["label", "--input", str(tiny_data["train"]), "--teacher", str(hf_teacher),
                        "--output", str(tmp_path / "o.jsonl"), "--device", "cuda"])
    assert "CUDA is not available" in err and not (tmp_path / "o.jsonl").exists()


def test_label_on_pairs_writes_both_texts(tiny_bert, tmp_path, capsys):
    """kdnlp label on a pair file keys each row by both texts: two pairs sharing a first sentence stay apart."""
    from kdnlp.data import Example
    from kdnlp.teacher_outputs import align, read_outputs
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("sentence1\tsentence2\n好棒\t差烂\n好棒\t我很开心\n", encoding="utf-8")
    rows = _label(tiny_bert, pairs, tmp_path / "o.jsonl", capsys)
    assert [(r["text"], r["text_b"]) for r in rows[1:]] == [("好棒", "差烂"), ("好棒", "我很开心")]
    assert rows[1]["logits"] != rows[2]["logits"]
    train = [Example("好棒", 0, text_b="我很开心"), Example("好棒", 1, text_b="差烂")]
    got = align(read_outputs(str(tmp_path / "o.jsonl"), ["a", "b"], by_index=True), train, [])
    np.testing.assert_allclose(got, [rows[2]["logits"], rows[1]["logits"]], rtol=1e-6)
