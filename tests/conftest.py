"""Shared fixtures: a tiny BERT saved with save_pretrained (loaded back through the real from_pretrained path),
tiny datasets in every supported format, and a config writer."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
POS_CHARS = list("好棒赞爱喜欢优秀满意开心")
NEG_CHARS = list("差烂坏恨讨厌糟糕失望难过")
FILLER = list("的了是我这个很也都在有")


def make_texts(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "pos" if i % 2 == 0 else "neg"
        chars = POS_CHARS if label == "pos" else NEG_CHARS
        k = rng.randint(3, 12)
        text = "".join(rng.choice(chars) if rng.random() < 0.5 else rng.choice(FILLER) for _ in range(k))
        rows.append((text + rng.choice(chars), label))
    return rows


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A 4-layer, hidden-32 BERT with a character vocabulary, saved like a Hugging Face checkpoint."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer
    d = tmp_path_factory.mktemp("tiny_bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(POS_CHARS + NEG_CHARS + FILLER))
    (d / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    import torch
    torch.manual_seed(0)  # the same random 'pretrained' weights every session: tests that check a learned score
    BertForSequenceClassification(config).save_pretrained(d)  # must not pass or fail by the draw
    BertTokenizer(str(d / "vocab.txt")).save_pretrained(d)
    return d


@pytest.fixture
def tiny_data(tmp_path) -> dict[str, Path]:
    """train/test JSON arrays (string labels) in the seed's format."""
    paths = {}
    for split, n, seed in (("train", 160, 1), ("test", 40, 2)):
        p = tmp_path / f"{split}.json"
        p.write_text(json.dumps([{"text": t, "label": l} for t, l in make_texts(n, seed)], ensure_ascii=False), encoding="utf-8")
        paths[split] = p
    return paths


@pytest.fixture
def write_config(tmp_path, tiny_bert, tiny_data):
    """Write a tiny config (deep-merged with `overrides`) and return its path."""
    def write(overrides: dict | None = None, name: str = "tiny.yaml") -> Path:
        cfg = {
            "data": {"train": str(tiny_data["train"]), "test": str(tiny_data["test"]), "max_length": 32},
            "teacher": {"pretrained": str(tiny_bert), "epochs": 2, "lr": 1e-3, "batch_size": 16},
            "student": {"type": "bilstm", "embedding_dim": 16, "hidden_size": 16, "mlp_size": 16, "epochs": 2,
                        "batch_size": 16},
            "distill": {"alpha": 0.5, "T": 0.5},
            "train": {"device": "cpu", "seed": 1},
            "output_dir": str(tmp_path / "out"),
        }
        for section, values in (overrides or {}).items():
            if isinstance(values, dict) and isinstance(cfg.get(section), dict):
                cfg[section].update(values)
            else:
                cfg[section] = values
        path = tmp_path / name
        path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
        return path
    return write


_BUNDLES: dict = {}


@pytest.fixture(scope="session")
def bundles(tmp_path_factory, tiny_bert):
    """bundles(shape) -> (config, serving bundle dir) of a tiny trained student (tests/runtime_bundles.py SHAPES),
    each built once per session for tests/test_runtime.py and tests/test_serve.py; a test that changes one copies it."""
    from runtime_bundles import make_bundle

    def get(shape: str):
        if shape not in _BUNDLES:
            _BUNDLES[shape] = make_bundle(shape, tmp_path_factory.mktemp(f"bundle_{shape}"), tiny_bert)
        return _BUNDLES[shape]
    return get
