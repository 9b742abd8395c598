"""Tiny trained models of every task shape, exported as serving bundles, for tests/test_runtime.py and
tests/test_serve.py: a tiny teacher saved untrained (kdnlp bench --init-untrained), a student trained one epoch
alone (alpha 1, T 0: no teacher logits to cache), then `kdnlp export --bundle`. Each takes a few seconds."""
from __future__ import annotations

import json
import random
from pathlib import Path

import yaml

from conftest import FILLER, NEG_CHARS, POS_CHARS, make_texts
from test_ner import _ner_file

# name -> (task, data kind, student section, extra data keys)
SHAPES = {
    "bilstm": ("classification", "single", {"type": "bilstm"}, {}),
    "static": ("classification", "single", {"type": "static", "ngrams": 2, "hash_buckets": 64, "embedding_dim": 16}, {}),
    "words": ("classification", "single", {"type": "bilstm", "embeddings": "WORD2VEC"}, {}),
    "pairs": ("classification", "pairs", {"type": "bert", "num_layers": 2}, {}),
    "siamese": ("classification", "pairs", {"type": "bilstm", "siamese": True}, {}),
    "multilabel": ("multilabel", "multilabel", {"type": "bert", "num_layers": 2}, {}),
    "ner": ("ner", "ner", {"type": "bilstm"}, {"max_length": 8}),  # short windows: a sentence spans several rows
}


def _single(path: Path, n: int, seed: int) -> None:
    path.write_text(json.dumps([{"text": t, "label": lab} for t, lab in make_texts(n, seed)], ensure_ascii=False),
                    encoding="utf-8")


def _pairs(path: Path, n: int, seed: int) -> None:
    texts, rng = make_texts(2 * n, seed), random.Random(seed)
    pairs = [(texts[2 * i], texts[rng.randrange(2 * n)]) for i in range(n)]
    rows = [(a, b, "same" if la == lb else "diff") for (a, la), (b, lb) in pairs]
    path.write_text("sentence1\tsentence2\tlabel\n" + "".join(f"{a}\t{b}\t{c}\n" for a, b, c in rows), encoding="utf-8")


def _multilabel(path: Path, n: int, seed: int) -> None:
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        text = "".join(rng.choice(POS_CHARS + NEG_CHARS + FILLER) for _ in range(rng.randint(2, 8)))
        labs = [lab for lab, chars in (("pos", POS_CHARS), ("neg", NEG_CHARS)) if any(c in chars for c in text)] or ["none"]
        lines.append(f"{text}\t{','.join(labs)}\n")
    path.write_text("".join(lines), encoding="utf-8")


WRITERS = {"single": (_single, "json"), "pairs": (_pairs, "tsv"), "multilabel": (_multilabel, "tsv"), "ner": (_ner_file, "txt")}


def make_bundle(shape: str, root: Path, tiny_bert: Path, quantize: bool = False) -> tuple[Path, Path]:
    """(config path, bundle dir) of a tiny `shape` student (SHAPES) trained one epoch under `root`."""
    from kdnlp.cli import main
    task, kind, student, data_extra = SHAPES[shape]
    root.mkdir(parents=True, exist_ok=True)
    write, ext = WRITERS[kind]
    data = {"max_length": 32, **data_extra}
    for split, n, seed in (("train", 80, 1), ("test", 24, 2)):
        write(root / f"{split}.{ext}", n, seed)
        data[split] = str(root / f"{split}.{ext}")
    if task == "multilabel":
        (root / "labels.txt").write_text("pos\nneg\nnone\n", encoding="utf-8")
        data.update(labels=str(root / "labels.txt"), columns=["text", "label"])
    student = {"embedding_dim": 16, "hidden_size": 16, "mlp_size": 16, "epochs": 1, "batch_size": 16, **student}
    if student.get("embeddings") == "WORD2VEC":  # the BiLSTM's own (jieba) word vocabulary
        words = sorted(set(POS_CHARS + NEG_CHARS + FILLER))
        rng = random.Random(0)
        (root / "w2v.txt").write_text("".join(f"{w} {' '.join(f'{rng.uniform(-1, 1):.3f}' for _ in range(16))}\n"
                                              for w in words), encoding="utf-8")
        student["embeddings"] = str(root / "w2v.txt")
    cfg = {"task": task, "data": data, "teacher": {"pretrained": str(tiny_bert)}, "student": student,
           "distill": {"alpha": 1.0, "T": 0.0, **({"loss": "bce"} if task == "multilabel" else {})},
           "train": {"device": "cpu", "seed": 1}, "output_dir": str(root / "out")}
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    assert main(["bench", "--config", str(path), "--init-untrained"]) == 0  # the teacher (the student is retrained)
    assert main(["train-student", "--config", str(path)]) == 0
    bundle = root / "bundle"
    assert main(["export", "--config", str(path), "--bundle", str(bundle), *(["--quantize", "int8"] if quantize else [])]) == 0
    return path, bundle


def same_answers(got: list[dict], want: list[dict], tol: float = 1e-5) -> bool:
    """Identical labels / label sets / entities, every probability within `tol`."""
    if len(got) != len(want):
        return False
    for g, w in zip(got, want):
        if set(g) != set(w) or any(g[k] != w[k] for k in g if k != "probabilities" and k != "probability"):
            return False
        if "probability" in g and abs(g["probability"] - w["probability"]) > tol:
            return False
        if "probabilities" in g and (set(g["probabilities"]) != set(w["probabilities"]) or any(
                abs(g["probabilities"][k] - w["probabilities"][k]) > tol for k in g["probabilities"])):
            return False
    return True

