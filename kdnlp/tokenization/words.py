"""The BiLSTM's own word vocabulary (student.embeddings: <word2vec file>): words -> ids, jieba for Chinese.

Pure Python (no torch), so that the serving runtime (kdnlp/runtime/) tokenizes with this very class; the BiLSTM
student (kdnlp/students/bilstm.py) builds and saves it. Saved as word_vocab.txt: a header line (#chinese or
#whitespace: how texts are split), then one word per line in id order.
"""
from __future__ import annotations

from itertools import islice
from pathlib import Path

from ..errors import UserError
from . import is_chinese


class WordTokenizer:
    """Words (jieba for Chinese, lower-cased whitespace split otherwise) -> ids; the HF call signature we use."""

    VOCAB_FILE = "word_vocab.txt"
    pad_token_id = 0
    unk_token_id = 1

    def __init__(self, words: list[str], chinese: bool):
        self.words = words
        self.chinese = chinese
        self.index = {w: i for i, w in enumerate(words)}

    def __len__(self) -> int:
        return len(self.words)

    def split(self, text: str) -> list[str]:
        if self.chinese:
            try:
                import jieba
            except ImportError:
                raise UserError("student.embeddings: Chinese word vectors need jieba (pip install 'kdnlp[demo]')") from None
            jieba.setLogLevel(60)
            return [w for w in jieba.lcut(text) if w.strip()]
        return text.lower().split()

    @classmethod
    def build(cls, texts: list[str], max_words: int = 200_000) -> "WordTokenizer":
        chinese = any(is_chinese(t) for t in islice(texts, 200))  # `texts` may be a stream (data.unlabeled)
        tok = cls(["[PAD]", "[UNK]"], chinese)
        counts: dict[str, int] = {}
        for t in texts:
            for w in tok.split(t):
                counts[w] = counts.get(w, 0) + 1
        words = sorted(counts, key=lambda w: (-counts[w], w))[:max_words]
        return cls(["[PAD]", "[UNK]", *words], chinese)

    def __call__(self, texts, texts_b=None, truncation=True, max_length=None):
        ids = [[self.index.get(w, self.unk_token_id) for w in self.split(t)] or [self.unk_token_id] for t in texts]
        if texts_b is not None:  # a pair as one sequence: a's words then b's, the longer side cut first
            pairs = [(a, b) for a, b in zip(ids, self(texts_b)["input_ids"])]
            if truncation and max_length:
                for k, (a, b) in enumerate(pairs):
                    while len(a) + len(b) > max_length:
                        a, b = (a[:-1], b) if len(a) >= len(b) else (a, b[:-1])
                    pairs[k] = (a, b)
            return {"input_ids": [a + b for a, b in pairs], "token_type_ids": [[0] * len(a) + [1] * len(b) for a, b in pairs]}
        if truncation and max_length:
            ids = [x[:max_length] for x in ids]
        return {"input_ids": ids}

    def save_pretrained(self, directory) -> None:
        header = "#chinese\n" if self.chinese else "#whitespace\n"
        (Path(directory) / self.VOCAB_FILE).write_text(header + "\n".join(self.words) + "\n", encoding="utf-8")

    @classmethod
    def from_pretrained(cls, directory) -> "WordTokenizer":
        lines = (Path(directory) / cls.VOCAB_FILE).read_text(encoding="utf-8").split("\n")
        return cls([w for w in lines[1:] if w], lines[0] == "#chinese")
