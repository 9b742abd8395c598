import pytest
import torch
from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

from kdnlp.errors import UserError
from kdnlp.students.bilstm import BiLSTMConfig, BiLSTMForSequenceClassification, WordTokenizer, read_word2vec
from kdnlp.students.truncated_bert import select_layers, truncate


def test_select_layers():
    assert select_layers(12, 6, "alternate") == [0, 2, 4, 6, 8, 10]
    assert select_layers(6, 3, "alternate") == [0, 2, 4]
    assert select_layers(12, 3, "first") == [0, 1, 2]
    assert select_layers(12, 3, [0, 5, 11]) == [0, 5, 11]
    with pytest.raises(UserError, match="out of range"):
        select_layers(6, 2, [0, 6])
    with pytest.raises(UserError, match="more than the teacher"):
        select_layers(4, 6, "first")


@pytest.mark.parametrize("selection", ["first", "alternate", [3, 1]])
def test_truncated_layer_i_equals_teacher_layer_sel_i(tmp_path, selection):
    cfg = BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32,
                     num_labels=3)
    teacher = BertForSequenceClassification(cfg).eval()
    layers = select_layers(4, 2, selection)
    student = truncate(teacher, layers).eval()
    assert student.config.num_hidden_layers == 2
    for i, j in enumerate(layers):
        for (n1, p1), (n2, p2) in zip(student.bert.encoder.layer[i].named_parameters(),
                                      teacher.bert.encoder.layer[j].named_parameters()):
            assert n1 == n2 and torch.equal(p1, p2)
    assert torch.equal(student.classifier.weight, teacher.classifier.weight)
    assert torch.equal(student.bert.embeddings.word_embeddings.weight, teacher.bert.embeddings.word_embeddings.weight)
    # Saved student loads in plain transformers and gives the same logits.
    student.save_pretrained(tmp_path)
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    x = torch.randint(0, 30, (2, 7))
    assert torch.allclose(loaded(input_ids=x).logits, student(input_ids=x).logits, atol=1e-6)


def test_bilstm_padding_does_not_change_logits(tmp_path):
    model = BiLSTMForSequenceClassification(BiLSTMConfig(vocab_size=20, embedding_dim=8, hidden_size=6, mlp_size=5,
                                                         num_labels=3, pad_token_id=0)).eval()
    ids = torch.tensor([[5, 6, 7]])
    padded = torch.tensor([[5, 6, 7, 0, 0, 0], [3, 4, 0, 0, 0, 0]])
    mask = (padded != 0).long()
    a = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    b = model(input_ids=padded, attention_mask=mask).logits
    assert torch.allclose(a[0], b[0], atol=1e-6)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, BiLSTMForSequenceClassification)
    assert torch.allclose(loaded(input_ids=padded, attention_mask=mask).logits, b, atol=1e-6)


def test_word_tokenizer_and_word2vec(tmp_path):
    tok = WordTokenizer.build(["the movie was great", "the plot was thin"])
    assert tok.words[:2] == ["[PAD]", "[UNK]"] and "movie" in tok.index
    ids = tok(["The movie rocks"], max_length=10)["input_ids"][0]
    assert ids == [tok.index["the"], tok.index["movie"], tok.unk_token_id]
    tok.save_pretrained(tmp_path)
    assert WordTokenizer.from_pretrained(tmp_path).words == tok.words
    vec = tmp_path / "vec.txt"
    vec.write_text("2 3\nmovie 1 2 3\nplot 4 5 6\n")
    matrix, found = read_word2vec(str(vec), tok.index)
    assert found == 2 and matrix.shape == (len(tok), 3)
    assert matrix[tok.index["plot"]].tolist() == [4, 5, 6]
    vec.write_text("movie 1 2 3\nplot 4 5\n")
    with pytest.raises(UserError, match="vec.txt line 2: expected 3 numbers"):
        read_word2vec(str(vec), tok.index)


def test_frozen_teacher_embeddings_stay_fixed(write_config, tmp_path):
    from kdnlp.cli import main
    from transformers import AutoModelForSequenceClassification
    cfg = write_config({"student": {"embeddings": "teacher", "freeze_embeddings": True, "epochs": 1}})
    assert main(["distill", "--config", str(cfg)]) == 0
    teacher = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out" / "teacher")
    student = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out" / "student")
    assert torch.equal(student.embed.weight, teacher.get_input_embeddings().weight)
    assert main(["train-student", "--config", str(cfg), "--set", "student.freeze_embeddings=false",
                 "--set", "student.name=unfrozen"]) == 0
    unfrozen = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out" / "unfrozen")
    assert not torch.equal(unfrozen.embed.weight, teacher.get_input_embeddings().weight)


def test_registry_matches_the_config_student_types():
    """validation.validate checks student.type against STUDENT_TYPES (no students import there); it must name the
    registry's keys exactly, or a valid student would be refused / an unknown one pass validation."""
    from kdnlp.validation import STUDENT_TYPES
    from kdnlp.students import STUDENTS
    assert tuple(STUDENTS) == STUDENT_TYPES
