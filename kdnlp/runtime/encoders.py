"""Text -> token ids in the serving process, exactly as training tokenized it, without torch or transformers.

Three tokenizers a bundle can carry (bundle.json "tokenizer"."kind"):
    tokenizer.json  the teacher's (or a BERT-style student's) fast tokenizer, read by the `tokenizers` library:
                    what transformers' tokenizer(texts, truncation=True, max_length=...) runs underneath
    words           the BiLSTM's own word vocabulary (kdnlp/tokenization/words.py; jieba for Chinese)
    static          the static student's words / WordPiece + hashed n-grams (kdnlp/tokenization/static.py)

Every encoder gives single(texts) -> ids and pairs(a, b) -> (ids, token types), truncated to max_length as
kdnlp.data.encode / kdnlp.pairs.encode_pairs do; tokenizer.json also gives NER word windows (ner_rows), as
kdnlp.ner.EncodedTagSplit builds them (word_windows is that class's own loop).
"""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError

TOKENIZER_JSON, WORDS, STATIC = "tokenizer.json", "words", "static"


def word_windows(pieces: list[list[int]], cls_id: int, sep_id: int, budget: int):
    """One text's words (their subword ids) -> rows [CLS] pieces... [SEP] of at most `budget` subwords between the
    specials. Yields (row ids, position of each word's first subword in the row, index of the row's first word).
    A single word longer than the window keeps its first subwords; an empty text is one row [CLS] [SEP]."""
    start = 0
    while start < len(pieces) or (start == 0 and not pieces):
        ids, firsts, end = [cls_id], [], start
        while end < len(pieces) and (end == start or len(ids) - 1 + len(pieces[end]) <= budget):
            firsts.append(len(ids))
            ids += pieces[end][:budget]
            end += 1
        yield ids + [sep_id], firsts, start
        start = end if end > start else start + 1


class TokenizerJsonEncoder:
    """tokenizer.json through the `tokenizers` library: special tokens, longest-first truncation of pairs."""

    def __init__(self, path: Path, special: dict, max_length: int):
        from tokenizers import Tokenizer
        text = path.read_text(encoding="utf-8")
        self.truncating, self.plain = Tokenizer.from_str(text), Tokenizer.from_str(text)
        for t in (self.truncating, self.plain):
            t.no_padding()
        self.plain.no_truncation()
        self.truncating.enable_truncation(max_length, strategy="longest_first")
        self.max_length = max_length
        self.pad_id, self.cls_id, self.sep_id, self.unk_id = (special[k] for k in ("pad_id", "cls_id", "sep_id", "unk_id"))
        # kdnlp.ner.word_prefix: byte-level BPE marks a word start by the space before it
        probe = [e.ids for e in self.plain.encode_batch(["a", " a"], add_special_tokens=False)]
        self.word_prefix = " " if probe[0] != probe[1] else ""

    def single(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.truncating.encode_batch(texts)]

    def pairs(self, a: list[str], b: list[str]) -> tuple[list[list[int]], list[list[int]]]:
        enc = self.truncating.encode_batch(list(zip(a, b)))
        return [e.ids for e in enc], [e.type_ids for e in enc]

    def ner_rows(self, word_lists: list[list[str]]):
        """(row ids, first-subword positions, example index) of every window of every text."""
        words = sorted({w for ws in word_lists for w in ws})
        encoded = self.plain.encode_batch([self.word_prefix + w for w in words], add_special_tokens=False)
        word_ids = {w: e.ids for w, e in zip(words, encoded)}
        rows = []
        for i, ws in enumerate(word_lists):
            pieces = [word_ids[w] or [self.unk_id] for w in ws]
            rows += [(ids, firsts, i) for ids, firsts, _ in word_windows(pieces, self.cls_id, self.sep_id, self.max_length - 2)]
        return rows


class CallableEncoder:
    """A kdnlp tokenizer with the transformers call signature (WordTokenizer, StaticTokenizer), used as training
    used it: tokenizer(texts, truncation=True, max_length=...) and tokenizer(a, b, truncation="longest_first", ...)."""

    def __init__(self, tokenizer, max_length: int):
        self.tokenizer, self.max_length = tokenizer, max_length
        self.pad_id = tokenizer.pad_token_id or 0

    def single(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]

    def pairs(self, a: list[str], b: list[str]) -> tuple[list[list[int]], list[list[int]]]:
        enc = self.tokenizer(a, b, truncation="longest_first", max_length=self.max_length)
        return enc["input_ids"], enc.get("token_type_ids") or [[0] * len(x) for x in enc["input_ids"]]

    def ner_rows(self, word_lists):
        raise UserError("NER bundles carry a tokenizer.json (a word-vocabulary tokenizer has no [CLS]/[SEP])")


def make_encoder(bundle_dir: Path, spec: dict, max_length: int):
    kind = spec["kind"]
    if kind == TOKENIZER_JSON:
        return TokenizerJsonEncoder(bundle_dir / "tokenizer.json", spec, max_length)
    if kind == WORDS:
        from ..tokenization.words import WordTokenizer
        return CallableEncoder(WordTokenizer.from_pretrained(bundle_dir), max_length)
    if kind == STATIC:
        from ..tokenization.static import StaticTokenizer
        return CallableEncoder(StaticTokenizer.from_pretrained(bundle_dir), max_length)
    raise UserError(f"{bundle_dir}: tokenizer kind {kind!r} is not one this kdnlp reads ({TOKENIZER_JSON}, {WORDS}, "
                    f"{STATIC}); re-export the bundle with this version")
