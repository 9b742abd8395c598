"""Build a BERT vocabulary from training texts (for a from-scratch teacher when no pretrained one exists).

Chinese is split into characters and other text into lower-cased words and punctuation, exactly as BERT's basic
tokenizer does, so every kept token is whole for BertTokenizer (no ## pieces are needed).
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from .fileio import write_text

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_vocab_file(texts: list[str], path: str | Path, min_freq: int = 2, max_size: int = 30000) -> int:
    """Write vocab.txt (special tokens first); return its size."""
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer
    normalizer = BertNormalizer(lowercase=True, handle_chinese_chars=True, strip_accents=None, clean_text=True)
    pre = BertPreTokenizer()
    counts = Counter(w for t in texts for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(t)))
    tokens = [t for t, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_freq and t not in SPECIAL]
    vocab = SPECIAL + tokens[: max_size - len(SPECIAL)]
    write_text(path, "\n".join(vocab) + "\n")
    return len(vocab)
