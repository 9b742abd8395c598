"""The word-level NER tagger (student.type: word_bilstm): its own word vocabulary, distilled from the per-word
teacher cache, predict / load / evaluate / ONNX export without the teacher's tokenizer."""
import json
import random

import numpy as np
import pytest

from kdnlp.cli import main
from kdnlp.errors import UserError
from kdnlp.ner import TagExample, TokenLogits, realign_word_logits
from kdnlp.students.word_bilstm import WordTagSplit, WordTagTokenizer

from conftest import FILLER, NEG_CHARS, POS_CHARS


PER_WORDS = ["".join(POS_CHARS[i:i + 2]) for i in range(0, 10, 2)]  # two-character words: several teacher pieces
LOC_WORDS = ["".join(NEG_CHARS[i:i + 3]) for i in range(0, 9, 3)] + NEG_CHARS[9:]
O_WORDS = FILLER + ["".join(FILLER[i:i + 2]) for i in range(0, 10, 2)]


def _conll_file(path, n, seed):
    """CoNLL-like 4 columns (IOB1); words of 1-3 Chinese characters, so the tiny BERT teacher splits a word into
    several pieces and its windows differ from the word tagger's."""
    rng = random.Random(seed)
    lines = ["-DOCSTART- -X- O O", ""]
    words = {"PER": PER_WORDS, "LOC": LOC_WORDS, "O": O_WORDS}
    for _ in range(n):
        for kind in rng.choices(["PER", "LOC", "O"], weights=[20, 15, 65], k=rng.randint(3, 9)):
            for _ in range(2 if kind == "PER" else 1):  # a person is two words; IOB1: I- starts an entity
                lines.append(f"{rng.choice(words[kind])} X X {'O' if kind == 'O' else 'I-' + kind}")
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def distilled(tmp_path_factory, tiny_bert):
    """One distill run (tiny BERT teacher -> word tagger with characters), max_length 8: windows on both sides."""
    import yaml
    d = tmp_path_factory.mktemp("word_ner")
    _conll_file(d / "train.txt", 120, 1)
    _conll_file(d / "test.txt", 30, 2)
    cfg = {"task": "ner",
           "data": {"train": str(d / "train.txt"), "test": str(d / "test.txt"), "max_length": 8},
           "teacher": {"pretrained": str(tiny_bert), "epochs": 3, "lr": 3e-3, "batch_size": 16},
           "student": {"type": "word_bilstm", "char_dim": 8, "embedding_dim": 16, "hidden_size": 16, "mlp_size": 16,
                       "epochs": 12, "lr": 1e-2, "batch_size": 16},
           "distill": {"alpha": 0.5, "T": 0.5}, "train": {"device": "cpu", "seed": 1, "patience": 12}, "output_dir": str(d / "out")}
    path = d / "word.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    assert main(["distill", "--config", str(path)]) == 0
    return path


def test_distill_predict_load_evaluate(distilled, capsys):
    out = distilled.parent / "out"
    student = out / "student"
    assert (student / "word_tagger.json").is_file()
    assert not (student / "vocab.txt").exists() and not (student / "tokenizer.json").exists()  # no word pieces
    report = json.loads((student / "report.json").read_text())
    assert set(report["per_type"]) == {"PER", "LOC"} and report["f1"] > 0.3  # it learned from the cache
    # the teacher's windows (pieces) and the student's (words) cut the same words differently: realigned, not misread
    from kdnlp.config import load_config
    from kdnlp.trainer import Trainer
    train = Trainer(load_config(distilled)).splits.train
    teacher_offsets = np.load(out / "logits" / "train.offsets.npy")
    words = WordTagSplit(train, WordTagTokenizer.from_pretrained(student), 8)
    assert teacher_offsets[-1] == sum(len(ex.tokens) for ex in train)  # one cached row per word
    assert len(teacher_offsets) - 1 > len(words.ids)  # more teacher windows (pieces) than student windows (words)
    capsys.readouterr()
    text = f"{PER_WORDS[0]} {PER_WORDS[1]} 的 {LOC_WORDS[0]} 了"
    assert main(["predict", "--config", str(distilled), "--json", text]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["text"] == text and all(e["type"] in ("PER", "LOC") for e in result["entities"])
    import kdnlp
    predictor = kdnlp.load(student)
    assert predictor.predict([text]) == [result]
    assert main(["evaluate", "--config", str(distilled)]) == 0


def test_onnx_export_parity(distilled, capsys):
    pytest.importorskip("onnxruntime")
    assert main(["export", "--config", str(distilled), "--format", "onnx"]) == 0
    record = json.loads((distilled.parent / "out" / "student" / "export" / "export.json").read_text())["model.onnx"]
    assert record["max_abs_logit_diff"] < 1e-4 and record["prediction_agreement"] == 1.0
    assert record["test_metric_exported"] == record["test_metric_pytorch"]


def test_vocabulary_from_word2vec_and_bad_file(distilled, tmp_path, capsys):
    vectors = tmp_path / "vec.txt"
    vectors.write_text("3 4\n好棒 1 2 3 4\n新词 0.5 0.5 0.5 0.5\n的 0 0 0 1\n", encoding="utf-8")
    args = ["train-student", "--config", str(distilled), "--epochs", "1", "--set", f"student.embeddings={vectors}",
            "--set", "student.name=w2v", "--set", "student.char_dim=0"]
    assert main(args) == 0
    student = distilled.parent / "out" / "w2v"
    tok = WordTagTokenizer.from_pretrained(student)
    assert "新词" in tok.index  # a word of the vectors file, never seen in training, is in the vocabulary
    from kdnlp.modeldir import load_model_dir
    model, _, _ = load_model_dir(student, "ner")
    assert model.config.embedding_source_dim == 4  # the file's 4-d vectors, projected to embedding_dim 16
    assert np.allclose(model.embed.weight[tok.index["新词"]].detach().numpy(), 0.5)
    capsys.readouterr()
    vectors.write_text("好棒 1 2 3 4\n的 0 0 x 1\n", encoding="utf-8")
    assert main(args[:-4] + ["--set", "student.name=bad"]) == 2
    err = capsys.readouterr().err
    assert "vec.txt line 2" in err and "not all numbers" in err and err.count("\n") == 1
    assert not (distilled.parent / "out" / "bad").exists()  # refused before anything was written


def test_tokenizer_vocabulary_options_and_realign():
    words = "EU rejects German call EU eu".split()
    tok = WordTagTokenizer.build(words, lowercase=False, min_count=2)
    assert tok.words[4:] == ["EU"] and tok(["EU", "eu", "Paris"])["input_ids"] == [[4], [1], [1]]
    low = WordTagTokenizer.build(words, lowercase=True, min_count=2, with_chars=True)
    assert low.words[4:] == ["eu"] and low(["EU"])["input_ids"] == [[4]]
    assert low.char_ids("Ez")[0] == low.char_index["E"] and low.char_ids("Ez")[1] == 1  # unseen character: [UNK]
    # a 7-word sentence: the student (one id per word, max_length 5: 3 words a row) cuts it 3+3+1
    ex = [TagExample(list("abcdefg"), [0, 1, 2, 0, 1, 2, 0]), TagExample(["x"], [1])]
    data = WordTagSplit(ex, WordTagTokenizer.build(list("abcdefgx"), False, 1, with_chars=True), max_length=5)
    assert [len(r) - 2 for r in data.ids] == [3, 3, 1, 1]
    assert data.collate(np.array([0, 3]))["char_ids"].shape == (2, 5, 20)
    teacher = TokenLogits.from_rows([np.eye(3, dtype=np.float32)[t] for t in ([0, 1], [2, 0, 1, 2, 0], [1])], 3)
    assert data.word_predictions(realign_word_logits(teacher, data)) == [e.tags for e in ex]
    data.labels = data.labels[:-1]  # a split with a word fewer than the cache: refused, never misaligned
    with pytest.raises(UserError, match="delete the cache folder"):
        realign_word_logits(teacher, data)


def test_config_refuses_word_bilstm_outside_ner(tmp_path, capsys):
    p = tmp_path / "c.yaml"
    p.write_text("task: classification\nstudent: {type: word_bilstm}\n", encoding="utf-8")
    assert main(["config", "--config", str(p)]) == 2
    assert "word_bilstm is a tagger for task: ner" in capsys.readouterr().err
    p.write_text("task: ner\nstudent: {type: word_bilstm, tokenizer: vocab.txt}\n", encoding="utf-8")
    assert main(["config", "--config", str(p)]) == 2
    assert "builds its own word vocabulary" in capsys.readouterr().err


def test_word_dropout_trains_unk_and_is_off_at_inference():
    import torch
    from kdnlp.students.word_bilstm import WordBiLSTMConfig, WordBiLSTMForTokenClassification
    torch.manual_seed(0)
    config = WordBiLSTMConfig(vocab_size=10, embedding_dim=8, hidden_size=8, mlp_size=8, dropout=0.0, word_dropout=0.99,
                              num_labels=3, pad_token_id=0)
    model = WordBiLSTMForTokenClassification(config)
    ids = torch.tensor([[2, 5, 6, 7, 3]])  # [CLS] three words [SEP]
    unk = torch.tensor([[2, 1, 1, 1, 3]])
    with torch.no_grad():
        model.train()
        torch.manual_seed(1)  # rand < 0.99 for all three words under this seed
        trained = model(input_ids=ids).logits
        model.eval()
        assert torch.allclose(trained, model(input_ids=unk).logits)  # the words became [UNK], specials kept
        assert not torch.allclose(model(input_ids=ids).logits, trained)  # no dropout at inference
