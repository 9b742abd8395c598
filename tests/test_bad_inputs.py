"""Every bad input -> exit 2, one line `kdnlp: error: <file/line/key>: <what to do>`, and nothing written.

Each case builds its bad input and returns the CLI arguments; `expected` must appear in the message. The table in
the README's "Failure behaviour" section lists the same cases.
"""
import json
import shutil
from pathlib import Path

import pytest

from kdnlp.cli import main

from conftest import make_texts


def _data(tmp_path, name, content: str | bytes) -> str:
    p = tmp_path / name
    p.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return str(p)


def _fake_teacher(tmp_path, tiny_bert, labels=("neg", "pos"), num_labels=None):
    """A 'trained' teacher in out/teacher without training: the tiny BERT plus labels.txt."""
    d = tmp_path / "out" / "teacher"
    shutil.copytree(tiny_bert, d)
    (d / "labels.txt").write_text("\n".join(labels) + "\n")
    if num_labels is not None:
        cfg = json.loads((d / "config.json").read_text())
        cfg["id2label"] = {str(i): f"L{i}" for i in range(num_labels)}
        cfg["label2id"] = {f"L{i}": i for i in range(num_labels)}
        (d / "config.json").write_text(json.dumps(cfg))


def _with_teacher(tmp_path, tiny_bert, command, config, extra, **kw):
    _fake_teacher(tmp_path, tiny_bert, **kw)
    return command, config, extra


def _without_weights(tmp_path, tiny_bert) -> str:
    d = shutil.copytree(tiny_bert, tmp_path / "bert")
    (d / "model.safetensors").unlink()
    return str(d)


def _ner(tmp_path, w, train: str):
    test = _data(tmp_path, "test.conll", "张 B-PER\n三 I-PER\n好 O\n")
    return w({"task": "ner", "data": {"train": _data(tmp_path, "train.conll", train), "test": test}})


ROWS = json.dumps([{"text": t, "label": l} for t, l in make_texts(20)], ensure_ascii=False)

# id -> (build(tmp_path, write_config, tiny_bert) -> (command, config path, extra args), expected text)
CASES = {
    "missing data file": (lambda t, w, b: ("train-teacher", w({"data": {"train": str(t / "nope.json")}}), []),
                          "nope.json: file not found"),
    "data path is a directory": (lambda t, w, b: ("train-teacher", w({"data": {"train": str(t)}}), []),
                                 "is a directory, not a data file"),
    "empty file": (lambda t, w, b: ("train-teacher", w({"data": {"train": _data(t, "e.json", "")}}), []),
                   "e.json: file is empty"),
    "invalid JSON array": (lambda t, w, b: ("train-teacher", w({"data": {"train": _data(
        t, "a.json", '[{"text": "a", "label": "pos"},\n{"text": "b" "label": "neg"}]')}}), []),
        "a.json line 2: invalid JSON"),
    "invalid JSON lines": (lambda t, w, b: ("train-teacher", w({"data": {"train": _data(
        t, "b.jsonl", '{"text": "a", "label": "pos"}\n{"text": "b", "label": \n')}}), []),
        "b.jsonl line 2: invalid JSON"),
    "CSV without label column": (lambda t, w, b: ("train-teacher", w({"data": {"train": _data(
        t, "c.csv", "text,lab\n好,pos\n")}}), []), "c.csv line 1: no 'label' column (columns: text, lab)"),
    "TSV without text column": (lambda t, w, b: ("train-teacher", w({"data": {"train": _data(
        t, "d.tsv", "txt\tlabel\n好\tpos\n")}}), []), "d.tsv: no text field among txt, label; set data.text_field"),
    "TSV row with too few columns": (lambda t, w, b: ("train-teacher", w({"data": {"train": _data(
        t, "e.tsv", "text\tlabel\n好\tpos\n差\n")}}), []), "e.tsv line 3: expected 2 TSV columns, got 1"),
    "whitespace-only text": (lambda t, w, b: ("train-teacher", w({"data": {"train": _data(
        t, "f.json", '[{"text": "好", "label": "pos"}, {"text": "  ", "label": "neg"}]')}}), []),
        "f.json record 2: empty text; remove the row or fill it in"),
    "label not in labels file": (lambda t, w, b: ("train-teacher", w({"data": {
        "labels": _data(t, "labels.txt", "neg\npos\n"),
        "test": _data(t, "g.json", '[{"text": "好", "label": "meh"}]')}}), []), "g.json record 1: unknown label 'meh'"),
    "label id out of range": (lambda t, w, b: ("train-teacher", w({"data": {
        "labels": _data(t, "labels.txt", "neg\npos\n"),
        "train": _data(t, "h.json", '[{"text": "好", "label": 0}, {"text": "差", "label": 5}]')}}), []),
        "h.json record 2: label id 5 is out of range for the 2 classes"),
    "labels file with duplicates": (lambda t, w, b: ("train-teacher", w({"data": {
        "labels": _data(t, "labels.txt", "neg\npos\nneg\n")}}), []), "labels.txt line 3: duplicate label 'neg'"),
    "non-UTF-8 bytes": (lambda t, w, b: ("train-teacher", w({"data": {"train": _data(
        t, "gbk.tsv", "text\tlabel\n好\tpos\n".encode("gbk"))}}), []),
        "gbk.tsv: not UTF-8 (invalid byte at offset 11); re-save the file as UTF-8"),
    "NER line without a tag": (lambda t, w, b: ("train-teacher", _ner(t, w, "张 B-PER\n三\n"), []),
                               "train.conll line 2: expected 'token ... TAG' columns"),
    "NER tag not IOB": (lambda t, w, b: ("train-teacher", _ner(t, w, "张 PER\n"), []),
                        "train.conll line 1: tag 'PER' is not O, B-TYPE or I-TYPE"),
    "config file missing": (lambda t, w, b: ("train-teacher", t / "none.yaml", []), "none.yaml: config file not found"),
    "config invalid YAML": (lambda t, w, b: ("train-teacher", Path(_data(t, "y.yaml", "data: [\n")), []),
                            "y.yaml line 2: invalid YAML"),
    "config unknown key": (lambda t, w, b: ("train-teacher", w({"distill": {"alhpa": 1}}), []),
                           "distill: unknown key 'alhpa' (did you mean 'alpha'?)"),
    "config wrong type": (lambda t, w, b: ("train-teacher", w({"student": {"epochs": "many"}}), []),
                          "student.epochs: expected int, got 'many'"),
    "alpha < 0": (lambda t, w, b: ("train-student", w(), ["--alpha", "-1"]), "distill.alpha: must be >= 0"),
    "temperature <= 0": (lambda t, w, b: ("train-student", w(), ["--temperature", "0"]),
                         "distill.temperature: must be > 0"),
    "student.name clashes with a resume dir": (lambda t, w, b: ("train-student", w(), ["--set", "student.name=teacher.resume"]),
                                                "student.name: use a folder name like student"),
    "--set without =": (lambda t, w, b: ("train-teacher", w(), ["--set", "student.epochs"]),
                        "--set student.epochs: expected section.key=value"),
    "num_layers > teacher layers": (lambda t, w, b: _with_teacher(t, b, "train-student", w(
        {"student": {"type": "bert", "num_layers": 6}}), ["--T", "0"]),
        "student.num_layers: 6 is more than the teacher's 4 layers"),
    "layer index out of range": (lambda t, w, b: _with_teacher(t, b, "train-student", w(
        {"student": {"type": "bert", "layer_selection": [0, 4]}}), ["--T", "0"]),
        "student.layer_selection: layer 4 is out of range for a 4-layer teacher (0..3)"),
    "teacher dir without weights": (lambda t, w, b: ("train-teacher", w({"teacher": {
        "pretrained": _without_weights(t, b)}}), []),
        "bert: teacher directory is missing model.safetensors (or pytorch_model.bin)"),
    "teacher labels differ from data": (lambda t, w, b: _with_teacher(t, b, "cache-logits", w(), [], labels=("a", "b")),
                                        "teacher: model was trained with labels ['a', 'b']"),
    "teacher num_labels mismatch": (lambda t, w, b: _with_teacher(t, b, "cache-logits", w(), [], num_labels=3),
                                    "config.json has num_labels=3 but labels.txt lists 2 labels"),
    "--model student before any student": (lambda t, w, b: ("evaluate", w(), ["--model", "student"]),
                                           "student: no trained model here yet"),
    "predict --input missing": (lambda t, w, b: ("predict", w(), ["--input", str(t / "in.txt")]),
                                "in.txt: input file not found"),
    "output dir not writable": (lambda t, w, b: ("train-student", w(), [
        "--T", "0", "--output-dir", str(Path(_data(t, "blocker", "x")) / "out")]), "blocker"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, tmp_path, write_config, tiny_bert, tiny_data, capsys):
    build, expected = CASES[case]
    command, config, extra = build(tmp_path, write_config, tiny_bert)
    before = {p for p in tmp_path.rglob("*")}
    assert main([command, "--config", str(config), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kdnlp: error: ") and "\n" not in err and "Traceback" not in err, err
    assert expected in err, err
    assert {p for p in tmp_path.rglob("*")} == before  # no partial output


def test_unreadable_file(tmp_path, write_config, monkeypatch, capsys):
    """Permissions cannot be tested as root, so the read itself fails the way an unreadable file does."""
    cfg = write_config()
    real = Path.open

    def open_(self, *args, **kwargs):
        if self.name == "train.json":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)
    monkeypatch.setattr(Path, "open", open_)
    assert main(["train-teacher", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert "train.json: cannot read the file (Permission denied); check its permissions" in err and "\n" not in err


def test_disk_full_during_save_keeps_the_previous_checkpoint(write_config, tmp_path, monkeypatch, capsys):
    cfg = str(write_config())
    args = ["train-student", "--config", cfg, "--T", "0", "--epochs", "1"]
    assert main(args) == 0
    student = tmp_path / "out" / "student"
    before = {p.name: p.read_bytes() for p in student.iterdir()}
    import transformers

    def full(self, directory, *a, **k):  # half a weights file, then ENOSPC, as a full disk does
        (Path(directory) / "model.safetensors").write_bytes(b"\0" * 100)
        raise OSError(28, "No space left on device", str(Path(directory) / "model.safetensors"))
    monkeypatch.setattr(transformers.PreTrainedModel, "save_pretrained", full)
    capsys.readouterr()
    assert main([*args, "--seed", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kdnlp: error: ") and "\n" not in err
    assert "model.safetensors: No space left on device; check the path and its permissions / free space" in err
    assert {p.name: p.read_bytes() for p in student.iterdir()} == before  # previous checkpoint untouched
    leftovers = [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
    assert leftovers == []  # no temp dirs / half files
    monkeypatch.undo()
    assert main(["evaluate", "--config", cfg, "--model", "student"]) == 0


def test_ner_i_after_o_is_repaired_not_an_error(tmp_path, write_config, capsys):
    """Documented choice: an I- tag after O (or after another type) starts an entity, as IOB1 -> IOB2 does."""
    from kdnlp.ner import read_column_file
    p = tmp_path / "x.conll"
    p.write_text("the O\nEU I-ORG\nsaid O\nBerlin I-LOC\nPeter I-PER\n", encoding="utf-8")
    assert read_column_file(p)[0][2] == ["O", "B-ORG", "O", "B-LOC", "B-PER"]
