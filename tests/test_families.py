"""Every encoder family kdnlp supports, through the whole pipeline: teacher fine-tune -> logit cache -> truncated
student with intermediate-layer losses -> BiLSTM over the teacher's tokenizer -> ONNX export parity.

The checkpoints are tiny random models built with each family's config class and saved with save_pretrained next
to a tokenizer of the family's kind (WordPiece, byte-level BPE, SentencePiece unigram): see family_models.py.
"""
import json
import random

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from conftest import make_texts
from family_models import FAMILIES, save_family
from kdnlp.cli import main


PEOPLE = ["John", "Mary", "Anna", "Peter"]
PLACES = ["Paris", "London", "Berlin", "Madrid"]
OTHER = ["lives", "in", "the", "city", "of", "said", "and", "works", "near", "today"]


def ner_sentences(n: int, seed: int) -> list[list[tuple[str, str]]]:
    """English (word, IOB2 tag) sentences: PER and LOC entities, some two words long."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = []
        for _ in range(rng.randint(3, 8)):
            kind = rng.random()
            if kind < 0.2:
                words += [(rng.choice(PEOPLE), "B-PER")] + ([(rng.choice(PEOPLE), "I-PER")] if rng.random() < 0.3 else [])
            elif kind < 0.4:
                words.append((rng.choice(PLACES), "B-LOC"))
            else:
                words.append((rng.choice(OTHER), "O"))
        out.append(words)
    return out


@pytest.fixture(scope="session")
def family_dir(tmp_path_factory):
    """family -> a tiny checkpoint directory, built once per session; its tokenizer is trained on the Chinese
    classification texts and the English NER sentences."""
    built = {}
    texts = [t for t, _ in make_texts(400, 0)] + [" ".join(w for w, _ in s) for s in ner_sentences(200, 0)]

    def get(family: str):
        if family not in built:
            built[family] = save_family(family, texts, tmp_path_factory.mktemp(family))
        return built[family]
    return get


def _config(tmp_path, tiny_data, teacher_dir, task="classification", **sections):
    import yaml
    cfg = {"task": task, "data": {"train": str(tiny_data["train"]), "test": str(tiny_data["test"]), "max_length": 32},
           "teacher": {"pretrained": str(teacher_dir), "epochs": 1, "lr": 1e-3, "batch_size": 16},
           "student": {"type": "bilstm", "embedding_dim": 16, "hidden_size": 16, "mlp_size": 16, "epochs": 1,
                       "batch_size": 16},
           "distill": {"alpha": 0.5, "T": 0.5}, "train": {"device": "cpu", "seed": 1},
           "output_dir": str(tmp_path / "out")}
    for section, values in sections.items():
        cfg[section].update(values)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize("family", FAMILIES)
def test_family_pipeline(family, family_dir, tiny_data, tmp_path):
    root = tmp_path / "out"
    cfg = _config(tmp_path, tiny_data, family_dir(family))
    assert main(["train-teacher", "--config", str(cfg)]) == 0
    teacher = AutoModelForSequenceClassification.from_pretrained(root / "teacher")
    assert teacher.config.model_type == family
    assert json.loads((root / "teacher" / "report.json").read_text())["n_examples"] == 40
    assert main(["cache-logits", "--config", str(cfg)]) == 0
    logits = np.load(root / "logits" / "train.npy")
    assert logits.shape == (144, 2) and np.isfinite(logits).all()

    # truncated student: teacher layers 3 and 1 (a list), with TinyBERT's embedding + hidden + attention losses
    assert main(["train-student", "--config", str(cfg), "--set", "student.type=bert", "--set", "student.name=bert2",
                 "--set", "student.layer_selection=[3,1]", "--set", "distill.intermediate=tinybert"]) == 0
    bert2 = AutoModelForSequenceClassification.from_pretrained(root / "bert2")
    assert type(bert2) is type(teacher) and bert2.config.num_hidden_layers == 2
    assert bert2.config.kdnlp_teacher_layers == [3, 1]

    # BiLSTM over the teacher's own tokenizer and embeddings: its vocabulary, pad id (1 for RoBERTa / XLM-R) and
    # embedding width (ELECTRA's 16 is narrower than its hidden size)
    assert main(["train-student", "--config", str(cfg), "--set", "student.embeddings=teacher"]) == 0
    lstm = AutoModelForSequenceClassification.from_pretrained(root / "student")
    tokenizer = AutoTokenizer.from_pretrained(root / "student")
    assert lstm.config.vocab_size == len(tokenizer) == teacher.config.vocab_size
    assert lstm.config.pad_token_id == tokenizer.pad_token_id == teacher.config.pad_token_id
    assert lstm.embed.weight.shape == teacher.get_input_embeddings().weight.shape

    pytest.importorskip("onnxruntime")
    for model in ("teacher", "bert2", "student"):
        for fmt, file in (("onnx", "model.onnx"), ("torchscript", "model.pt")):
            assert main(["export", "--config", str(cfg), "--model", model, "--format", fmt]) == 0
            rec = json.loads((root / model / "export" / "export.json").read_text())[file]
            assert rec["n_test"] == 40 and rec["prediction_agreement"] == 1.0 and rec["max_abs_logit_diff"] < 1e-4

    # the fine-tuned teacher used as it is (teacher.fine_tuned), with the data's labels in the other order: its head
    # is reordered, so it predicts the same classes as before
    (tmp_path / "labels.txt").write_text("pos\nneg\n")
    reused = _config(tmp_path, tiny_data, root / "teacher", teacher={"pretrained": None, "fine_tuned": str(root / "teacher")},
                     data={"labels": str(tmp_path / "labels.txt")})
    assert main(["distill", "--config", str(reused), "--output-dir", str(tmp_path / "reused")]) == 0
    before = json.loads((root / "teacher" / "report.json").read_text())
    after = json.loads((tmp_path / "reused" / "teacher" / "report.json").read_text())
    assert after["labels"] == ["pos", "neg"] and after["accuracy"] == before["accuracy"]
    assert after["confusion"] == [row[::-1] for row in before["confusion"][::-1]]


@pytest.mark.parametrize("family", FAMILIES)
def test_words_tokenized_alone_match_the_sentence(family, family_dir):
    """NER tokenizes each word on its own: its pieces must be the ones the word has inside the sentence (byte-level
    BPE needs the space before the word: RoBERTa's add_prefix_space)."""
    from kdnlp.ner import EncodedTagSplit, TagExample, word_prefix
    tokenizer = AutoTokenizer.from_pretrained(family_dir(family))
    sentences = ner_sentences(20, 1)
    data = EncodedTagSplit([TagExample([w for w, _ in s], [0] * len(s)) for s in sentences], tokenizer, 64)
    for row, s in zip(data.ids, sentences):
        assert row == tokenizer(word_prefix(tokenizer) + " ".join(w for w, _ in s))["input_ids"]
    assert word_prefix(tokenizer) == (" " if family == "roberta" else "")


@pytest.mark.parametrize("family", ["bert", "roberta", "xlm-roberta"])
def test_family_ner(family, family_dir, tmp_path):
    for split, n, seed in (("train", 120, 1), ("test", 30, 2)):
        text = "\n\n".join("\n".join(f"{w} {t}" for w, t in s) for s in ner_sentences(n, seed))
        (tmp_path / f"{split}.txt").write_text(text + "\n", encoding="utf-8")
    data = {"train": tmp_path / "train.txt", "test": tmp_path / "test.txt"}
    cfg = _config(tmp_path, data, family_dir(family), "ner", teacher={"epochs": 3, "lr": 3e-3})
    assert main(["train-teacher", "--config", str(cfg)]) == 0
    report = json.loads((tmp_path / "out" / "teacher" / "report.json").read_text())
    assert set(report["per_type"]) == {"PER", "LOC"} and report["f1"] > 0.3  # it learned the names
    for student in (["--set", "student.type=bert", "--set", "student.num_layers=2"], []):
        assert main(["train-student", "--config", str(cfg), *student]) == 0
    pytest.importorskip("onnxruntime")
    assert main(["export", "--config", str(cfg), "--model", "student", "--format", "onnx"]) == 0
    rec = json.loads((tmp_path / "out" / "student" / "export" / "export.json").read_text())["model.onnx"]
    assert rec["prediction_agreement"] == 1.0 and rec["max_abs_logit_diff"] < 1e-4


@pytest.mark.parametrize("family", FAMILIES)
def test_truncation_copies_the_chosen_layers(family, family_dir):
    from kdnlp.students.truncated_bert import check_truncatable, find_layers, select_layers, truncate
    teacher = AutoModelForSequenceClassification.from_pretrained(family_dir(family)).eval()
    check_truncatable(teacher.config)  # no error: the family keeps its layers in one list
    layers_name = find_layers(teacher)
    ids = torch.tensor([[2, 7, 9, 11, 3, 0], [2, 8, 12, 3, 0, 0]]) + 3  # clear of the pad id in every family
    mask = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0]])
    # all layers in order: the same model, the same logits
    same = truncate(teacher, [0, 1, 2, 3]).eval()
    assert torch.allclose(same(input_ids=ids, attention_mask=mask).logits,
                          teacher(input_ids=ids, attention_mask=mask).logits, atol=1e-6)
    for selection in ("first", "alternate", [3, 1]):
        chosen = select_layers(4, 2, selection)
        student = truncate(teacher, chosen)
        assert type(student) is type(teacher) and student.config.num_hidden_layers == 2
        for i, j in enumerate(chosen):
            for (n1, p1), (n2, p2) in zip(student.get_submodule(layers_name)[i].named_parameters(),
                                          teacher.get_submodule(layers_name)[j].named_parameters()):
                assert n1 == n2 and torch.equal(p1, p2)
        assert torch.equal(student.get_input_embeddings().weight, teacher.get_input_embeddings().weight)


@pytest.mark.parametrize("family", FAMILIES)
def test_intermediate_presets_on_every_family(family, family_dir):
    """A student equal to its teacher has zero loss on every preset; a 2-layer student has a positive one."""
    from kdnlp.intermediate import PRESETS, IntermediateDistiller
    from kdnlp.students.truncated_bert import truncate

    class NoLogitLoss:
        needs_teacher = False

        def __call__(self, logits, labels, teacher_logits):
            return torch.zeros(()), {}

    teacher = AutoModelForSequenceClassification.from_pretrained(family_dir(family)).eval()
    ids = torch.tensor([[2, 7, 9, 11, 3, 0], [2, 8, 12, 3, 0, 0]]) + 3
    inputs = {"input_ids": ids, "attention_mask": torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0]])}
    for preset in PRESETS:
        for layers, zero in (([0, 1, 2, 3], True), ([0, 2], False)):
            student = truncate(teacher, layers).eval()
            kd = IntermediateDistiller(NoLogitLoss(), teacher, student, preset)
            out = student(**inputs, **kd.forward_kwargs)
            loss, parts = kd.batch_loss(out, inputs, out.logits, None, None)
            assert len(parts) == {"uniform": len(layers), "tinybert": 1 + 2 * len(layers), "distilbert": 1}[preset]
            assert (abs(loss.item()) < 1e-7) if zero else (loss.item() > 1e-5), (preset, layers, parts)


def test_families_that_cannot_be_truncated_fail_at_load_time():
    from transformers import AlbertConfig, DistilBertConfig, FunnelConfig

    from kdnlp.errors import UserError
    from kdnlp.students.truncated_bert import check_truncatable
    tiny = dict(hidden_size=32, num_attention_heads=2, intermediate_size=64, num_hidden_layers=4)
    with pytest.raises(UserError, match=r"model_type 'albert' .*no list of 4 transformer layers.*student.type: bilstm"):
        check_truncatable(AlbertConfig(**tiny, embedding_size=16))  # ALBERT shares one layer across the depth
    with pytest.raises(UserError, match=r"model_type 'funnel'"):
        check_truncatable(FunnelConfig(block_sizes=[1, 1], d_model=32, n_head=2, d_inner=64))
    check_truncatable(DistilBertConfig(n_layers=3))


@pytest.mark.parametrize("family", ["roberta", "deberta-v2"])
def test_hub_layout_without_tokenizer_json(family, tiny_data, tmp_path):
    """RoBERTa repos with only vocab.json + merges.txt, DeBERTa-v3 repos with only spm.model: accepted as teachers,
    and the saved teacher tokenizes exactly as the original files do."""
    from family_models import save_hub_layout
    texts = [t for t, _ in make_texts(400, 0)]
    source = save_hub_layout(family, texts, tmp_path / "hub")
    cfg = _config(tmp_path, tiny_data, source)
    assert main(["train-teacher", "--config", str(cfg)]) == 0
    original, saved = AutoTokenizer.from_pretrained(source), AutoTokenizer.from_pretrained(tmp_path / "out" / "teacher")
    assert saved(texts[:20])["input_ids"] == original(texts[:20])["input_ids"]
    assert len(saved) == len(original) > 100
