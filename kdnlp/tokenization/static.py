"""The static student's tokenizer: text -> unigram ids + hashed word n-gram ids, fast enough to sit in the
measured text-in -> label-out path.

Two unigram sources (student.tokenize):
  words    its own: a compiled regex split (lower-cased words, single punctuation marks, CJK characters one by one)
           and a word vocabulary built from the training texts; words not in it are dropped as unigrams (as
           fastText does) but still take part in n-grams. No teacher, no Rust, no special tokens.
  teacher  the teacher's WordPiece through the `tokenizers` library (encode_batch, no special tokens), so the
           embedding rows line up with the teacher's vocabulary (student.embeddings: teacher | model2vec).

N-grams (student.ngrams > 1), as in fastText: every run of 2..n consecutive unigrams gets id
vocab_size + hash % hash_buckets. The hash is integer arithmetic over the unigrams' ids (fastText's multiplier);
out-of-vocabulary words enter it through zlib.crc32 of the word. Never Python's hash(), which is salted per
process: the same text must give the same ids in training, in `kdnlp predict` and in a server.

Saved as static_tokenizer.json (+ tokenizer.json for the teacher's WordPiece); modeldir.load_model_dir finds it.
"""
from __future__ import annotations

import json
import re
import zlib
from itertools import chain, repeat
from pathlib import Path

import numpy as np

FILE = "static_tokenizer.json"
BACKEND_FILE = "tokenizer.json"
MULTIPLIER = 116049371  # fastText's n-gram hash multiplier
# Runs of letters/digits (not CJK) are words; any other non-space character stands alone: a CJK character (no
# spaces between Chinese words) or a punctuation mark. Written as `run|\S`, 17% faster than spelling out the
# CJK and punctuation classes (same tokens).
WORD_RE = re.compile(r"[^\W\u3400-\u9fff\uf900-\ufaff]+|\S")
# The same tokens as WORD_RE on ASCII text (its \S keeps Unicode's whitespace, e.g. \x1c), twice as fast: most
# texts take it (SST-2 test, batches of 64: 185 vs 390 us a batch, same run).
ASCII_WORD_RE = re.compile(r"[0-9A-Za-z_]+|\S")
PAD, UNK = "[PAD]", "[UNK]"


def split_words(texts) -> list[list[str]]:
    """Each text's lower-cased tokens (WORD_RE)."""
    ascii_words, words = ASCII_WORD_RE.findall, WORD_RE.findall
    return [(ascii_words if t.isascii() else words)(t) for t in map(str.lower, texts)]
MISSING_KEY = -(2 ** 33)  # flat(): an unknown word's key before crc32, below any unigram key (-1 - crc32 >= -2**32)


class StaticTokenizer:
    """HF-style call: tokenizer(texts, texts_b=None, truncation=True, max_length=None) -> {"input_ids": [...]}.

    max_length counts unigrams; their n-grams come on top (a row has at most ngrams x max_length ids)."""

    def __init__(self, mode: str, ngrams: int, buckets: int, words: list[str] | None = None, backend=None):
        self.mode, self.ngrams, self.buckets = mode, ngrams, buckets
        self.words, self.backend = words, backend
        if mode == "words":
            self.index = {w: i for i, w in enumerate(words)}
            self.base_size = len(words)
            self.pad_token_id, self.unk_token_id = 0, 1
        else:
            self.backend.no_padding()
            self.backend.no_truncation()
            self.base_size = backend.get_vocab_size()
            self.pad_token_id = backend.token_to_id(PAD) or 0
            self.unk_token_id = backend.token_to_id(UNK) or 0

    @property
    def vocab_size(self) -> int:
        """Rows of the embedding table: unigrams, then the n-gram buckets (none when ngrams is 1)."""
        return self.base_size + (self.buckets if self.ngrams > 1 else 0)

    def __len__(self) -> int:
        return self.vocab_size

    # ------------------------------------------------------------ building

    @classmethod
    def build_words(cls, texts: list[str], ngrams: int, buckets: int, max_words: int = 500_000) -> "StaticTokenizer":
        counts: dict[str, int] = {}
        for text in texts:  # one text at a time: `texts` may stream a pile of millions (data.unlabeled)
            for w in split_words([text])[0]:
                counts[w] = counts.get(w, 0) + 1
        words = sorted(counts, key=lambda w: (-counts[w], w))[:max_words]
        return cls("words", ngrams, buckets, words=[PAD, UNK, *words])

    @classmethod
    def from_teacher(cls, hf_tokenizer, ngrams: int, buckets: int) -> "StaticTokenizer":
        from tokenizers import Tokenizer
        backend = getattr(hf_tokenizer, "backend_tokenizer", None)
        if backend is None:
            from ..errors import UserError
            raise UserError("student.tokenize: teacher needs a fast (tokenizers) teacher tokenizer; use student.tokenize: words")
        return cls("teacher", ngrams, buckets, backend=Tokenizer.from_str(backend.to_str()))  # a copy: we unset padding

    # ------------------------------------------------------------ encoding

    def unigrams(self, texts: list[str]) -> list[list[int]]:
        """Per text the unigram keys: a vocabulary id (>= 0), or for an unknown word -1 - crc32(word) (n-grams only)."""
        if self.mode == "teacher":
            return [e.ids for e in self.backend.encode_batch(list(texts), add_special_tokens=False)]
        get = self.index.get
        out = []
        for words in split_words(texts):
            keys = list(map(get, words))  # C-level loop; None for a word not in the vocabulary
            if None in keys and self.ngrams == 1:  # unknown words matter only to n-grams
                keys = [k for k in keys if k is not None]
            elif None in keys:
                keys = [k if k is not None else -1 - zlib.crc32(w.encode("utf-8")) for k, w in zip(keys, words)]
            out.append(keys)
        return out

    def ids(self, keys: list[int]) -> list[int]:
        """One text's unigram keys -> embedding rows: known unigrams, then its hashed 2..n-grams."""
        if self.ngrams == 1:  # unigrams() already dropped unknown words
            return keys or [self.unk_token_id]
        row = [k for k in keys if k >= 0]
        base, buckets = self.base_size, self.buckets
        if self.ngrams >= 2:  # bigrams, the common case, in one comprehension (the tokenizer is in the timed path)
            row += [base + (a * MULTIPLIER + b) % buckets for a, b in zip(keys, keys[1:])]
        for n in range(3, self.ngrams + 1):
            for i in range(len(keys) - n + 1):
                h = keys[i]
                for k in keys[i + 1:i + n]:
                    h = h * MULTIPLIER + k
                row.append(base + h % buckets)  # Python's % is never negative
        return row or [self.unk_token_id]  # an empty text still gets one row to pool over

    def encode(self, texts: list[str], max_length: int | None = None) -> list[list[int]]:
        rows = self.unigrams(texts)
        if max_length:
            rows = [r[:max_length] for r in rows]
        return [self.ids(r) for r in rows]

    def flat(self, texts: list[str], max_length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The batch as an EmbeddingBag's input: (int64 rows of all texts, one after the other; int64 offset of each
        text's first row). Each text gets the rows encode() gives it, in the same order.

        The words tokenizer with uni- or bigrams does it with little Python per token: one regex call per text,
        one C-level dict lookup per token (map), then numpy over the whole batch (bigram hashes in int64: |key| *
        MULTIPLIER < 2**59, so the same values as Python's big integers). Anything else goes through encode().
        (One regex pass over the joined batch measured slower: one non-ASCII text makes the whole string wide.)"""
        n = len(texts)
        if self.mode != "words" or self.ngrams > 2 or n == 0:
            rows = self.encode(list(texts), max_length)
            return (np.fromiter((i for r in rows for i in r), np.int64),
                    np.cumsum([0] + [len(r) for r in rows], dtype=np.int64)[:-1])
        words = split_words(texts)
        lengths = np.fromiter(map(len, words), np.int64, n)
        tokens = list(chain.from_iterable(words))
        keys = np.fromiter(map(self.index.get, tokens, repeat(MISSING_KEY)), np.int64, len(tokens))
        text = np.repeat(np.arange(n), lengths)  # which text each token is in
        missing = keys == MISSING_KEY
        if self.ngrams == 1:  # unknown words matter only to n-grams
            if missing.any():
                keys, text = keys[~missing], text[~missing]
        else:  # unknown words enter the bigram hash through crc32, as in unigrams()
            for i in np.flatnonzero(missing).tolist():
                keys[i] = -1 - zlib.crc32(tokens[i].encode("utf-8"))
        counts = np.bincount(text, minlength=n)
        if max_length and counts.max() > max_length:
            first = np.zeros(n, dtype=np.int64)
            np.cumsum(counts[:-1], out=first[1:])
            inside = np.arange(len(keys)) - first[text] < max_length
            keys, text = keys[inside], text[inside]
            counts = np.minimum(counts, max_length)
        if self.ngrams == 2:
            same = text[1:] == text[:-1]  # adjacent tokens of one text
            known = keys >= 0
            bigrams = self.base_size + (keys[:-1][same] * MULTIPLIER + keys[1:][same]) % self.buckets
            keys, text = np.concatenate([keys[known], bigrams]), np.concatenate([text[known], text[:-1][same]])
            counts = np.bincount(text, minlength=n)
        empty = np.flatnonzero(counts == 0)
        if len(empty):  # an empty text still gets one row to pool over
            keys = np.concatenate([keys, np.full(len(empty), self.unk_token_id, dtype=np.int64)])
            text = np.concatenate([text, empty])
            counts[empty] = 1
        if self.ngrams == 2 or len(empty):  # per text: its unigrams, then its bigrams (a stable sort keeps the order)
            keys = keys[np.argsort(text, kind="stable")]
        offsets = np.zeros(n, dtype=np.int64)
        np.cumsum(counts[:-1], out=offsets[1:])
        return keys, offsets

    def __call__(self, texts, texts_b=None, truncation=True, max_length=None, **_):
        limit = max_length if truncation else None
        if texts_b is None:
            return {"input_ids": self.encode(list(texts), limit)}
        # a pair as one bag (a non-siamese model): each side gets half of max_length
        half = limit // 2 if limit else None
        a, b = self.encode(list(texts), half), self.encode(list(texts_b), half)
        return {"input_ids": [x + y for x, y in zip(a, b)], "token_type_ids": [[0] * len(x) + [1] * len(y) for x, y in zip(a, b)]}

    def counts(self, texts: list[str]) -> list[int]:
        """How often each embedding row occurs in `texts` (SIF weights; n-gram rows count too)."""
        c = [0] * self.vocab_size
        chunk: list[str] = []
        for text in chain(texts, [None]):  # in chunks: `texts` may stream a pile of millions (data.unlabeled)
            if text is not None:
                chunk.append(text)
            if len(chunk) == 8192 or (text is None and chunk):
                for row in self.encode(chunk):
                    for i in row:
                        c[i] += 1
                chunk = []
        return c

    # ------------------------------------------------------------ saving

    def save_pretrained(self, directory) -> None:
        d = Path(directory)
        meta = {"mode": self.mode, "ngrams": self.ngrams, "hash_buckets": self.buckets, "words": self.words}
        (d / FILE).write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        if self.backend is not None:
            self.backend.save(str(d / BACKEND_FILE))

    @classmethod
    def from_pretrained(cls, directory) -> "StaticTokenizer":
        d = Path(directory)
        meta = json.loads((d / FILE).read_text(encoding="utf-8"))
        backend = None
        if meta["mode"] == "teacher":
            from tokenizers import Tokenizer
            backend = Tokenizer.from_file(str(d / BACKEND_FILE))
        return cls(meta["mode"], meta["ngrams"], meta["hash_buckets"], words=meta["words"], backend=backend)
