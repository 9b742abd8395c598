import json
import random

import pytest

from kdnlp.config import DataConfig
from kdnlp.data import EncodedSplit, Example, load_splits, read_file
from kdnlp.errors import UserError
from kdnlp.teacher import load_tokenizer

from conftest import SHARED_DATA


def _cfg(**kw) -> DataConfig:
    return DataConfig(**kw)


def test_seed_json_array_with_labels_file(tmp_path):
    (tmp_path / "class.txt").write_text("car\nculture\nedu\n", encoding="utf-8")
    rows = [{"text": f"标题{i}", "label": i % 3} for i in range(30)]
    (tmp_path / "train.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "test.json").write_text(json.dumps(rows[:6], ensure_ascii=False), encoding="utf-8")
    s = load_splits(_cfg(train=str(tmp_path / "train.json"), test=str(tmp_path / "test.json"),
                         labels=str(tmp_path / "class.txt"), dev_ratio=0.2), seed=0)
    assert s.labels == ["car", "culture", "edu"]
    assert len(s.dev) == 6 and len(s.train) == 24
    assert sorted(e.label for e in s.dev) == [0, 0, 1, 1, 2, 2]  # stratified
    assert s.test[1] == Example("标题1", 1)
    again = load_splits(_cfg(train=str(tmp_path / "train.json"), test=str(tmp_path / "test.json"),
                             labels=str(tmp_path / "class.txt"), dev_ratio=0.2), seed=0)
    assert again.dev == s.dev and again.fingerprint("train") == s.fingerprint("train")  # deterministic


def test_clue_jsonl_string_labels(tmp_path):
    lines = [json.dumps({"label": "10" + str(i % 2), "label_desc": ["news_story", "news_culture"][i % 2],
                         "sentence": f"句子{i}", "keywords": ""}, ensure_ascii=False) for i in range(8)]
    (tmp_path / "train.json").write_text("\n".join(lines) + "\n", encoding="utf-8")
    rows = read_file(tmp_path / "train.json", _cfg(label_field="label_desc"))
    assert rows[0][1:3] == ("句子0", "news_story")
    s = load_splits(_cfg(train=str(tmp_path / "train.json"), test=str(tmp_path / "train.json"),
                         label_field="label_desc", dev=str(tmp_path / "train.json")), seed=0)
    assert s.labels == ["news_culture", "news_story"] and len(s.train) == 8 and s.dev_source.startswith("file")


def test_csv_and_tsv(tmp_path):
    (tmp_path / "a.csv").write_text('text,label\n"hello, world",pos\nbad day,neg\n', encoding="utf-8")
    assert [r[1:3] for r in read_file(tmp_path / "a.csv", _cfg())] == [("hello, world", "pos"), ("bad day", "neg")]
    (tmp_path / "a.tsv").write_text('sentence\tlabel\nit\'s "fine" \t1\n', encoding="utf-8")
    assert read_file(tmp_path / "a.tsv", _cfg())[0][1:3] == ('it\'s "fine" ', "1")


@pytest.mark.parametrize("content,fmt,message", [
    ('[{"text": "a", "label": 1},\n{"text": "b" "label": 0}]', "json", r"x.json line 2: invalid JSON"),
    ('{"text": "a", "label": 1}\n{"text": "b", label}\n', "jsonl", r"x.json line 2: invalid JSON"),
    ('[{"text": "  ", "label": 1}]', "json", r"x.json record 1: empty text"),
    ('[{"txt": "a", "label": 1}]', "json", r"no text field among txt"),
    ('text,lab\na,1\n', "csv", r"x.json line 1: no 'label' column \(columns: text, lab\)"),
    ('', "json", r"x.json: file is empty"),
])
def test_bad_files_give_one_clear_line(tmp_path, content, fmt, message):
    p = tmp_path / "x.json"
    p.write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match=message):
        read_file(p, _cfg(format=fmt))


def test_non_utf8_and_missing(tmp_path):
    p = tmp_path / "x.tsv"
    p.write_bytes("text\tlabel\n好\t1\n".encode("gbk"))
    with pytest.raises(UserError, match=r"x.tsv: not UTF-8 \(invalid byte at offset 11\)"):
        read_file(p, _cfg())
    with pytest.raises(UserError, match="nope.json: file not found"):
        read_file(tmp_path / "nope.json", _cfg())


def test_unknown_label_and_duplicate_labels_file(tmp_path):
    (tmp_path / "train.json").write_text(json.dumps([{"text": "a", "label": "pos"}, {"text": "b", "label": "neg"}]))
    (tmp_path / "test.json").write_text(json.dumps([{"text": "c", "label": "meh"}]))
    with pytest.raises(UserError, match=r"test.json record 1: unknown label 'meh'"):
        load_splits(_cfg(train=str(tmp_path / "train.json"), test=str(tmp_path / "test.json"), dev_ratio=0.5), seed=0)
    (tmp_path / "l.txt").write_text("pos\nneg\npos\n")
    with pytest.raises(UserError, match=r"l.txt line 3: duplicate label 'pos'"):
        load_splits(_cfg(train=str(tmp_path / "train.json"), test=str(tmp_path / "test.json"),
                         labels=str(tmp_path / "l.txt")), seed=0)


def test_dynamic_padding_and_sorted_inference_restore_order(tiny_bert):
    tok = load_tokenizer(tiny_bert)
    rng = random.Random(0)
    examples = [Example("好" * rng.randint(1, 20), i % 2) for i in range(50)]
    data = EncodedSplit(examples, tok, max_length=16)
    assert data.lengths.max() == 16  # [CLS] + 14 + [SEP] after truncation
    seen = []
    for batch in data.eval_batches(8):
        idx = batch["index"].numpy()
        assert batch["input_ids"].shape[1] == data.lengths[idx].max()  # padded to the batch's longest only
        seen.extend(idx.tolist())
    assert sorted(seen) == list(range(50))
    train_idx = [i for b in data.train_batch_indices(8, random.Random(1)) for i in b]
    assert sorted(train_idx) == list(range(50)) and train_idx != list(range(50))


@pytest.mark.skipif(not (SHARED_DATA / "tnews5").is_dir(), reason="../shared/data not present")
def test_real_tnews5_and_sst2():
    s = load_splits(_cfg(train=str(SHARED_DATA / "tnews5/train.json"), test=str(SHARED_DATA / "tnews5/test.json"),
                         labels=str(SHARED_DATA / "tnews5/classes.txt")), seed=42)
    assert s.labels == ["car", "culture", "edu", "game", "sports"]
    assert len(s.train) + len(s.dev) == 15000 and len(s.test) == 3599
    rows = read_file(SHARED_DATA / "sst2/dev.tsv", _cfg())
    assert len(rows) == 872 and {r[2] for r in rows} == {"0", "1"}


def test_tsv_label_ids_index_the_labels_file(tmp_path):
    """SST-2's 0/1 with data.labels = negative/positive: ids into the file (a label that is a name stays a name)."""
    (tmp_path / "t.tsv").write_text("sentence\tlabel\nbad film \t0\ngreat film \t1\n", encoding="utf-8")
    (tmp_path / "names.txt").write_text("negative\npositive\n", encoding="utf-8")
    s = load_splits(_cfg(train=str(tmp_path / "t.tsv"), test=str(tmp_path / "t.tsv"), dev=str(tmp_path / "t.tsv"),
                         labels=str(tmp_path / "names.txt")), seed=0)
    assert [e.label for e in s.test] == [0, 1] and s.labels == ["negative", "positive"]
    (tmp_path / "names.txt").write_text("1\n0\n", encoding="utf-8")  # digit names: matched by name, not by index
    s = load_splits(_cfg(train=str(tmp_path / "t.tsv"), test=str(tmp_path / "t.tsv"), dev=str(tmp_path / "t.tsv"),
                         labels=str(tmp_path / "names.txt")), seed=0)
    assert [e.label for e in s.test] == [1, 0]


def test_tiny_train_files_carve_or_refuse_in_one_line(tmp_path):
    """One example cannot be split; four examples of two classes (dev 1 < 2 classes) split at random, no traceback."""
    from kdnlp.errors import UserError
    p = tmp_path / "t.json"
    p.write_text(json.dumps([{"text": "a", "label": "p"}]), encoding="utf-8")
    with pytest.raises(UserError, match="too few to carve a dev split"):
        load_splits(_cfg(train=str(p), test=str(p)), seed=0)
    p.write_text(json.dumps([{"text": t, "label": l} for t, l in zip("abcd", "pnpn")]), encoding="utf-8")
    s = load_splits(_cfg(train=str(p), test=str(p)), seed=0)
    assert len(s.dev) == 1 and len(s.train) == 3
