"""data.unlabeled (kdnlp/transfer/): the pile labelled once in atomic shards, resumed after a kill, read
memory-mapped, deduplicated against dev/test, split across processes, streamed into the student's training."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import make_texts
from kdnlp.cli import main
from kdnlp.config import load_config
from kdnlp.transfer import steps
from kdnlp.transfer.cache_pass import plan, run_pass
from kdnlp.transfer.shards import ShardStore
from kdnlp.transfer.sources import UnlabeledRows, resolve

REPO = Path(__file__).resolve().parents[1]


def _pile(tmp_path, n: int = 300, extra: list[str] = ()) -> Path:
    p = tmp_path / "pile.txt"
    p.write_text("\n".join([t for t, _ in make_texts(n, 7)] + list(extra)) + "\n", encoding="utf-8")
    return p


def _given(tiny_bert, tmp_path, pile: Path, shard_rows: int = 50) -> dict:
    """Config overrides: tiny_bert as teacher.fine_tuned (its generic labels named by data.labels) and the pile."""
    (tmp_path / "labels.txt").write_text("neg\npos\n", encoding="utf-8")
    return {"teacher": {"pretrained": None, "fine_tuned": str(tiny_bert)},
            "data": {"unlabeled": str(pile), "unlabeled_shard_rows": shard_rows, "labels": str(tmp_path / "labels.txt"),
                     "max_length": 32}}


def _fake_labeller(calls: list):
    """Logits that are a function of the text alone; call number `calls[0]` raises (a kill)."""
    def label(chunk):
        calls.append(len(chunk))
        if len(calls) - 1 == calls[0]:
            raise KeyboardInterrupt("killed")
        logits = np.array([[len(a) % 7, sum(map(ord, a)) % 11] for a, _ in chunk], dtype=np.float32)
        return logits, np.array([len(a) for a, _ in chunk], dtype=np.int32)
    return label


def test_distill_with_unlabeled_pile_trained_teacher(write_config, tiny_data, tmp_path, capsys):
    test_text = json.loads(tiny_data["test"].read_text(encoding="utf-8"))[0]["text"]
    pile = _pile(tmp_path, 200, ["  " + test_text + "   ", ""])  # a test text with other spacing: dropped
    cfg = write_config({"data": {"unlabeled": [str(pile)], "unlabeled_shard_rows": 64, "max_length": 32},
                        "teacher": {"epochs": 1}, "student": {"epochs": 1}})
    assert main(["distill", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "unlabeled: 200 rows planned in 4 shards of 64" in out and "1 rows dropped as equal to a dev/test" in out
    assert "transfer set: 144 rows + 200 unlabelled rows" in out
    # the teacher was trained before the pass: it trained on the labelled rows only
    assert out.index("teacher on test") < out.index("unlabeled: 200 rows planned")
    log = json.loads((tmp_path / "out" / "student" / "train_log.json").read_text())
    assert log["step"] == -(-344 // 16)  # one epoch over 144 labelled + 200 unlabelled rows, batch 16
    assert test_text not in pile.read_text().splitlines()  # (it had other spacing)
    moved = tmp_path / "elsewhere" / "renamed.txt"  # the pass is keyed by the files' content, not their paths
    moved.parent.mkdir()
    pile.rename(moved)
    assert main(["cache-logits", "--config", str(cfg), "--set", f"data.unlabeled={moved}"]) == 0
    assert "unlabeled: reusing" in capsys.readouterr().out


def test_resume_after_kill_recomputes_only_missing_shards(tiny_data, write_config, tmp_path):
    cfg = load_config(str(write_config()))
    rows = UnlabeledRows(resolve(str(_pile(tmp_path, 250))), cfg.data, False, set())
    p = plan(rows, 40, 2)
    assert (p["rows"], p["shards"]) == (250, 7)
    fingerprint = {"pile": "test"}
    store = ShardStore(tmp_path / "shards", fingerprint)
    store.begin(p)
    calls = [4]  # the 4th chunk raises: 3 shards written, then a kill
    with pytest.raises(KeyboardInterrupt):
        run_pass(store, rows, p, _fake_labeller(calls))
    assert [store.shard_done(k) for k in range(7)] == [True] * 3 + [False] * 4
    calls = [99]
    computed = run_pass(store, rows, p, _fake_labeller(calls))
    assert computed == [3, 4, 5, 6] and calls[1:] == [40, 40, 40, 10]  # only the missing shards
    store.finish(p, [40] * 6 + [10])
    pile = store.open()
    assert isinstance(pile._shard(0)[0], np.memmap)  # logits read memory-mapped
    texts = [a for a, _ in rows]
    idx = np.array([0, 39, 40, 249, 120])
    np.testing.assert_array_equal(pile.logits(idx), _fake_labeller([99])([(texts[i], None) for i in idx])[0])
    assert [a for a, _ in pile.texts(idx)] == [texts[i] for i in idx]
    # another fingerprint: nothing is reused, stale shards are removed
    other = ShardStore(tmp_path / "shards", {"pile": "changed"})
    assert other.open() is None and not any(other.shard_done(k) for k in range(7))
    other.begin(p)
    assert not list((tmp_path / "shards").glob("shard-*"))


def test_two_ranks_write_disjoint_shards_equal_to_one(tiny_bert, write_config, tmp_path, capsys):
    """The real teacher pass, split as under accelerate launch: rank r computes shards r, r+2, ...; together
    they give the same logits as one process (the test below launches real processes)."""
    cfg = write_config(_given(tiny_bert, tmp_path, _pile(tmp_path, 150), 32))
    from kdnlp.trainer import Trainer
    trainer = Trainer(load_config(str(cfg)))
    one, _ = steps.label_pile(trainer)
    files = resolve(trainer.cfg.data.unlabeled)
    rows = UnlabeledRows(files, trainer.cfg.data, False, set())
    store = ShardStore(tmp_path / "two", {"two": 1})
    p = plan(rows, 32, 2)
    store.begin(p)
    from kdnlp.transfer.cache_pass import ModelLabeller
    from kdnlp.modeldir import load_model_dir
    labeller = ModelLabeller(lambda: load_model_dir(trainer.out / "teacher")[:2], 32, 512, trainer.device)
    labeller.ENCODE_ROWS = 7  # shards tokenised in pieces: the same logits as in one piece
    assert run_pass(store, rows, p, labeller, rank=0, world=2) == [0, 2, 4]
    assert run_pass(store, rows, p, labeller, rank=1, world=2) == [1, 3]
    store.finish(p, [32] * 4 + [22])
    np.testing.assert_allclose(store.open().logits(np.arange(150)), one.logits(np.arange(150)), atol=1e-5)


@pytest.mark.skipif(sys.platform != "linux", reason="gloo CPU processes")
def test_two_processes_accelerate_launch_same_logits(tiny_bert, write_config, tmp_path):
    cfg = write_config(_given(tiny_bert, tmp_path, _pile(tmp_path, 150), 32))
    from test_distributed import _launch_2
    stdout = _launch_2(["cache-logits", "--config", str(cfg)])
    assert stdout.count("unlabeled: 150 rows planned in 5 shards") == 1  # the main process prints
    assert "computing 3 here, the rest in 1 other process(es)" in stdout
    assert main(["cache-logits", "--config", str(cfg), "--output-dir", str(tmp_path / "single")]) == 0
    load = lambda d: np.concatenate([np.load(p) for p in sorted((d / "logits" / "unlabeled").glob("shard-*/logits.npy"))])
    two, one = load(tmp_path / "out"), load(tmp_path / "single")
    assert two.shape == one.shape == (150, 2)
    np.testing.assert_allclose(two, one, atol=1e-5)


def test_outputs_teacher_labels_pile_and_fine_tuned_with_augment(tiny_bert, tiny_data, write_config, tmp_path, capsys):
    """teacher.outputs covering the pile labels it; teacher.fine_tuned + augmentation + the static student."""
    pile = _pile(tmp_path, 60)
    rows = [t for t, _ in make_texts(160, 1)] + pile.read_text(encoding="utf-8").split()
    outputs = tmp_path / "outputs.jsonl"
    outputs.write_text("\n".join([json.dumps({"labels": ["neg", "pos"]})] + [
        json.dumps({"text": t, "logits": [float(len(t)), 0.5]}, ensure_ascii=False) for t in dict.fromkeys(rows)]) + "\n",
        encoding="utf-8")
    cfg = write_config({"teacher": {"pretrained": None, "outputs": str(outputs)},
                        "data": {"unlabeled": str(pile), "max_length": 32}})
    from kdnlp.trainer import Trainer
    trainer = Trainer(load_config(str(cfg)))
    trainer.preflight("distill")
    got, _ = steps.label_pile(trainer)
    texts = [a for a, _ in got.texts(np.arange(len(got)))]
    np.testing.assert_array_equal(got.logits(np.arange(len(got)))[:, 0], [float(len(t)) for t in texts])

    cfg2 = write_config({**_given(tiny_bert, tmp_path, pile),
                         "augment": {"enabled": True, "n_samples": 1, "max_examples": 40},
                         "student": {"type": "static", "epochs": 1, "embedding_dim": 16, "mlp_size": 0}}, "aug.yaml")
    assert main(["distill", "--config", str(cfg2)]) == 0
    assert "+ 60 unlabelled rows" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["missing", "empty", "glob", "parquet", "pairs"])
def test_bad_unlabeled_input_one_line_exit_2_before_teacher(case, write_config, tmp_path, capsys):
    if case == "missing":
        spec, msg = str(tmp_path / "nope.txt"), "file not found"
    elif case == "empty":
        (tmp_path / "empty.txt").write_text("", encoding="utf-8")
        spec, msg = str(tmp_path / "empty.txt"), "file is empty"
    elif case == "glob":
        spec, msg = str(tmp_path / "pile" / "*.txt"), "matches no file"
    elif case == "parquet":
        pa, pq = pytest.importorskip("pyarrow"), pytest.importorskip("pyarrow.parquet")
        pq.write_table(pa.table({"body": ["a", "b"]}), tmp_path / "p.parquet")
        spec, msg = str(tmp_path / "p.parquet"), "no text field among body"
    else:
        (tmp_path / "pairs.jsonl").write_text('{"sentence1": "a", "sentence2": "b"}\n', encoding="utf-8")
        spec, msg = str(tmp_path / "pairs.jsonl"), "has sentence pairs"
    cfg = write_config({"data": {"unlabeled": [spec]}})
    assert main(["distill", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data.unlabeled" in err[0] and msg in err[0], err
    assert not (tmp_path / "out" / "teacher").exists()  # caught before the teacher trains


def test_sigkill_midway_then_rerun_only_missing(tiny_bert, write_config, tmp_path):
    """A real kill -9 of `kdnlp cache-logits` after its second shard; the rerun computes only the rest."""
    cfg = write_config(_given(tiny_bert, tmp_path, _pile(tmp_path, 200), 25))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    argv = ["cache-logits", "--config", str(cfg)]
    killer = ("import os, sys; from kdnlp.transfer.shards import ShardStore; write = ShardStore.write_shard\n"
              "def killing(self, k, *a):\n"
              "    write(self, k, *a)\n"
              "    if k == 1: os.kill(os.getpid(), 9)\n"
              "ShardStore.write_shard = killing\n"
              f"from kdnlp.cli import main; sys.exit(main({argv!r}))")
    proc = subprocess.run([sys.executable, "-c", killer], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert proc.stdout.count("written (") == 1  # shard 1 was written, then the kill came before its log line
    proc = subprocess.run([sys.executable, "-m", "kdnlp", *argv], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "2 of 8 shards already done" in proc.stdout and proc.stdout.count("written (") == 6


def test_label_streams_in_shards_and_resumes(tiny_bert, tmp_path, capsys, monkeypatch):
    """kdnlp label: shards under <output>.parts, a rerun after a kill computes only the missing ones, then one JSONL
    in row order (and the parts removed)."""
    import kdnlp.label
    from kdnlp.transfer.shards import ShardStore
    monkeypatch.setattr(kdnlp.label, "SHARD_ROWS", 20)
    pile, out = _pile(tmp_path, 70), tmp_path / "o.jsonl"
    write = ShardStore.write_shard

    def killed_at_2(self, k, *a):
        if k == 2:
            raise KeyboardInterrupt("killed")
        write(self, k, *a)
    monkeypatch.setattr(ShardStore, "write_shard", killed_at_2)
    argv = ["label", "--input", str(tmp_path / "pile*.txt"), "--teacher", str(tiny_bert), "--output", str(out),
            "--max-tokens", "64"]
    assert main(argv) == 130 and not out.exists()
    monkeypatch.setattr(ShardStore, "write_shard", write)
    capsys.readouterr()
    import shutil  # the same teacher copied elsewhere: the parts are keyed by its files' content, not its path
    argv[argv.index("--teacher") + 1] = str(shutil.copytree(tiny_bert, tmp_path / "moved_teacher"))
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "2 of 4 shards already done" in printed and printed.count("written (") == 2
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows[0] == {"labels": ["LABEL_0", "LABEL_1"], "task": "classification"}
    assert [r["text"] for r in rows[1:]] == pile.read_text(encoding="utf-8").split()
    assert not (tmp_path / "o.jsonl.parts").exists()


def test_sources_parquet_pairs_and_dedup(tmp_path):
    """Each format gives its rows; a pair's key is both texts; blank rows are skipped; dev/test repeats dropped."""
    from kdnlp.config import DataConfig
    from kdnlp.data import Example
    from kdnlp.transfer.sources import exclusion_keys
    pa, pq = pytest.importorskip("pyarrow"), pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.table({"text": ["a  b", " ", "c"], "label": [None, None, None]}), tmp_path / "x.parquet")
    (tmp_path / "y.jsonl").write_text('{"sentence1": "p", "sentence2": "q"}\n{"sentence1": "p", "sentence2": "r"}\n',
                                      encoding="utf-8")
    (tmp_path / "z.txt").write_text("p\tq\nu\tv\n", encoding="utf-8")
    cfg = DataConfig()
    single = UnlabeledRows(resolve(str(tmp_path / "*.parquet")), cfg, False, exclusion_keys([Example("c", 0)]))
    assert list(single) == [("a  b", None)] and single.dropped == 1
    pairs = UnlabeledRows(resolve([str(tmp_path / "y.jsonl"), str(tmp_path / "z.txt")]), cfg, True,
                          exclusion_keys([Example("p", 0, text_b="q ")]))
    assert list(pairs) == [("p", "r"), ("u", "v")] and pairs.dropped == 2


def test_mixed_split_collates_pairs_with_pile_rows_unlabelled(tiny_bert, tmp_path):
    import random
    from kdnlp.data import Example
    from kdnlp.pairs import JOINT
    from kdnlp.tasks import TASKS
    from kdnlp.teacher import load_tokenizer
    from kdnlp.transfer.mixed import MixedLogits, UnlabeledTransferSet
    store = ShardStore(tmp_path / "s", {"x": 1})
    rows = [("好棒", "差烂"), ("我很开心", "好")]
    store.begin({"rows": 2, "shards": 1, "shard_rows": 2, "n_labels": 2})
    store.write_shard(0, rows, np.array([[1, 2], [3, 4]], np.float32), np.array([4, 6]))
    store.finish({"rows": 2, "shards": 1, "shard_rows": 2, "n_labels": 2}, [2])
    pile = store.open()
    labelled = [Example("好", 1, text_b="坏"), Example("差", 0, text_b="棒")]
    split = UnlabeledTransferSet(labelled, pile).encode(TASKS["classification"], load_tokenizer(tiny_bert), 32, JOINT)
    assert len(split) == 4 and split.pairs
    assert sorted(np.concatenate(split.train_batch_indices(3, random.Random(0))).tolist()) == [0, 1, 2, 3]
    batch = split.collate(np.array([3, 0, 2]))
    assert batch["labels"].tolist() == [-100, 1, -100] and batch["index"].tolist() == [3, 0, 2]
    assert "token_type_ids" in batch and batch["token_type_ids"][0].sum() > 0
    logits = MixedLogits(np.array([[0, 0], [9, 9]], np.float32), pile, store.sha)
    assert logits[np.array([3, 0, 2])].tolist() == [[3, 4], [0, 0], [1, 2]]


def test_parquet_without_pyarrow_is_one_line(tmp_path, monkeypatch):
    """pyarrow is an optional extra: a .parquet pile without it is a UserError naming the file and the install."""
    import sys
    from kdnlp.config import DataConfig
    from kdnlp.errors import UserError
    from kdnlp.transfer.sources import check_files
    pile = tmp_path / "pile.parquet"
    pile.write_bytes(b"PAR1 not really")
    monkeypatch.setitem(sys.modules, "pyarrow", None)          # import pyarrow.parquet -> ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(UserError, match=r"pile\.parquet: reading \.parquet needs pyarrow: pip install 'kdnlp\[parquet\]'"):
        check_files([str(pile)], DataConfig(train="x"), pairs=False)


def test_pile_files_are_read_as_labelled_files_are(tmp_path):
    """kdnlp/readers.py reads the pile (and kdnlp label's input) as it reads labelled splits: a CSV-quoted TSV
    (GoEmotions) loses its quotes, a GLUE TSV whose text starts with a literal quote keeps it, a header-less file
    takes data.columns, and a file that is not UTF-8 is one line naming it, however far into the file."""
    from kdnlp.config import DataConfig
    from kdnlp.errors import UserError
    quoted, glue, bare = tmp_path / "q.tsv", tmp_path / "g.tsv", tmp_path / "b.csv"
    quoted.write_text('text\tid\n"say ""hi"" now"\t1\nplain\t2\n', encoding="utf-8")
    glue.write_text('sentence\tlabel\n"a quote opens and\t1\nnever closes\t0\n', encoding="utf-8")
    bare.write_text("x,first\ny,second\n", encoding="utf-8")
    rows = list(UnlabeledRows(resolve([str(quoted), str(glue)]), DataConfig(), False, set()))
    assert rows == [('say "hi" now', None), ("plain", None), ('"a quote opens and', None), ("never closes", None)]
    assert list(UnlabeledRows([bare], DataConfig(columns=["id", "text"]), False, set())) == [("first", None), ("second", None)]
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\n" * 1000 + b"\xff\xfe broken\n")
    with pytest.raises(UserError, match=r"bad\.txt line 1001: not UTF-8 \(invalid byte at column 1\); re-save"):
        list(UnlabeledRows(resolve(str(bad)), DataConfig(), False, set()))


def test_student_vocabularies_include_the_piles_words(write_config, tiny_data, tmp_path):
    """A student that builds its own word vocabulary (static with tokenize: words; a BiLSTM without a teacher
    model) builds it from the labelled texts and the pile, streamed, so words met only in the pile have their own
    rows; a pile row equal to a test text adds nothing (the transfer set drops it too)."""
    from kdnlp.trainer import Trainer
    test_text = json.loads(tiny_data["test"].read_text(encoding="utf-8"))[0]["text"]
    pile = _pile(tmp_path, 50, ["zyxwvut qponmlk", "qponmlk again", " " + test_text])
    static = {"student": {"type": "static", "tokenize": "words", "embeddings": "random", "embedding_dim": 8,
                          "mlp_size": 0, "pooling": "sif"}}
    with_pile = Trainer(load_config(str(write_config({**static, "data": {"unlabeled": str(pile)}}, "pile.yaml"))))
    alone = Trainer(load_config(str(write_config(static, "alone.yaml"))))
    (model, tok), (model0, tok0) = with_pile.build_student(), alone.build_student()
    assert "zyxwvut" in tok.index and "qponmlk" in tok.index
    texts = list(with_pile.all_train_texts())
    assert texts[-2:] == ["zyxwvut qponmlk", "qponmlk again"] and test_text not in texts  # streamed, test row dropped
    assert "zyxwvut" not in tok0.index and len(tok.index) > len(tok0.index)
    assert model.embed.weight.shape[0] > model0.embed.weight.shape[0]
    # sif weights counted over the pile too: a pile-only word seen twice weighs less than one seen once
    qp, zy = tok.index["qponmlk"], tok.index["zyxwvut"]
    assert model.token_weight[qp] < model.token_weight[zy]
    from kdnlp.tokenization.words import WordTokenizer  # the BiLSTM's word vocabulary takes the same stream
    assert "zyxwvut" in WordTokenizer.build(with_pile.all_train_texts()).index


def test_several_teachers_label_the_pile_with_their_mean(write_config, tiny_data, tmp_path, capsys):
    """distill.teachers with data.unlabeled: each pile row's logits are the mean of the teachers' logits, as for the
    labelled rows (a pass per teacher alone, then both: the average of the two)."""
    from kdnlp.trainer import Trainer
    pile = _pile(tmp_path, 60)
    cfg = str(write_config({"teacher": {"epochs": 1}, "data": {"unlabeled": str(pile), "unlabeled_shard_rows": 25}}))
    other = tmp_path / "other"
    assert main(["train-teacher", "--config", cfg]) == 0
    assert main(["train-teacher", "--config", cfg, "--seed", "7", "--output-dir", str(other)]) == 0

    def pile_logits(teachers: str) -> np.ndarray:
        trainer = Trainer(load_config(cfg, [f"distill.teachers={teachers}"]))
        trainer.preflight("cache-logits")
        got, _ = steps.label_pile(trainer)
        return got.logits(np.arange(len(got)))
    own, second = pile_logits("[teacher]"), pile_logits(f"[{other / 'teacher'}]")
    assert own.shape == (60, 2) and not np.allclose(own, second)  # two different teachers
    np.testing.assert_allclose(pile_logits(f"[teacher, {other / 'teacher'}]"), (own + second) / 2, atol=1e-5)
