"""The word-level BiLSTM tagger (student.type: word_bilstm, task: ner): one id per word from a vocabulary of its
own, an optional character CNN per word, the BiLSTM tagger's encoder and per-word MLP (bilstm.py).

No word pieces anywhere: a word is looked up whole, so predicting needs neither the teacher nor its tokenizer.
It is distilled from the per-word teacher cache (kdnlp/ner.py keeps one logit row per word, whatever the teacher's
tokenizer did; Trainer.fit re-cuts the rows into this student's windows, ner.realign_word_logits).

Vocabulary (WordTagTokenizer, saved as word_tagger.json next to the weights):
  the training words seen at least student.min_word_count times (lower-cased with student.lowercase), and with
  student.embeddings: <word2vec file> also every word of that file; anything else is [UNK].
Embeddings (student.embeddings):
  random     a fresh table;
  teacher    a word's row = the mean of the teacher's input embeddings of its word pieces (read once, at build);
  <file>     word2vec text vectors (bilstm.read_word2vec), projected to embedding_dim when widths differ.
Characters (student.char_dim > 0): each word's first MAX_WORD_CHARS characters -> embeddings -> a width-3
convolution -> max over the characters (Ma and Hovy, 2016), concatenated to the word's embedding. Chinese
(People's Daily) works unchanged: its "words" are single characters.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import AutoConfig, AutoModelForTokenClassification
from transformers.modeling_outputs import TokenClassifierOutput

from ..errors import UserError
from ..ner import EncodedTagSplit
from .bilstm import BiLSTMConfig, BiLSTMForTokenClassification, read_word2vec

FILE = "word_tagger.json"
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
MAX_WORD_CHARS = 20  # longer words keep their first 20 characters (0.1% of CoNLL-2003 train words are longer)
CHAR_EMBEDDING_DIM = 25


class WordTagTokenizer:
    """Whole words -> ids, with the calls EncodedTagSplit makes (tokenizer(words, add_special_tokens=False),
    cls/sep/pad/unk ids), and the characters of each word for the character CNN."""

    pad_token_id, unk_token_id, cls_token_id, sep_token_id = 0, 1, 2, 3

    def __init__(self, words: list[str], lowercase: bool, chars: list[str] | None = None):
        self.words, self.lowercase, self.chars = words, lowercase, chars
        self.index = {w: i for i, w in enumerate(words)}
        self.char_index = {c: i for i, c in enumerate(chars)} if chars else None

    def __len__(self) -> int:
        return len(self.words)

    def norm(self, word: str) -> str:
        word = word.strip()
        return word.lower() if self.lowercase else word

    @classmethod
    def build(cls, words: list[str], lowercase: bool, min_count: int, extra: list[str] = (),
              with_chars: bool = False) -> "WordTagTokenizer":
        """`words`: every training word occurrence; `extra`: words known anyway (a word2vec file's)."""
        counts: dict[str, int] = {}
        for w in words:
            w = w.lower() if lowercase else w
            counts[w] = counts.get(w, 0) + 1
        frequent = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
        seen = set(frequent) | set(SPECIALS)
        vocab = SPECIALS + frequent + [w for w in dict.fromkeys(extra) if w not in seen]
        chars = None
        if with_chars:  # characters of the training words; [PAD]=0 fills short words, [UNK]=1 unseen characters
            chars = SPECIALS[:2] + sorted({c for w in set(words) for c in w.strip()})  # as written: case is a cue
        return cls(vocab, lowercase, chars)

    def __call__(self, texts, add_special_tokens: bool = False, **_):
        """One id per text (a text here is one word): the HF call signature EncodedTagSplit uses."""
        get = self.index.get
        return {"input_ids": [[get(self.norm(t), self.unk_token_id)] for t in texts]}

    def char_ids(self, word: str) -> list[int]:
        get = self.char_index.get
        return [get(c, 1) for c in word.strip()[:MAX_WORD_CHARS]]  # the word as written: case is a cue

    def save_pretrained(self, directory) -> None:
        meta = {"lowercase": self.lowercase, "words": self.words, "chars": self.chars}
        (Path(directory) / FILE).write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def from_pretrained(cls, directory) -> "WordTagTokenizer":
        meta = json.loads((Path(directory) / FILE).read_text(encoding="utf-8"))
        return cls(meta["words"], meta["lowercase"], meta["chars"])

    @property
    def tag_split_class(self):  # tasks.Ner.encode: this tokenizer's rows also carry characters
        return WordTagSplit


class WordTagSplit(EncodedTagSplit):
    """EncodedTagSplit with one id per word; with a character vocabulary, each position's characters too
    (collate adds char_ids: batch x width x MAX_WORD_CHARS, zeros at [CLS], [SEP] and pads)."""

    def __init__(self, examples, tokenizer: WordTagTokenizer, max_length: int):
        super().__init__(examples, tokenizer, max_length)
        self.chars = None
        if tokenizer.chars:
            self.chars = []
            for r, ids in enumerate(self.ids):  # each row: [CLS] + one id per word + [SEP]
                start = self.row_word[r]
                words = examples[self.row_example[r]].tokens[start:start + len(ids) - 2]
                self.chars.append([[]] + [tokenizer.char_ids(w) for w in words] + [[]])

    def collate(self, index, width=None, pad_to_multiple_of=None):
        batch = super().collate(index, width, pad_to_multiple_of)
        if self.chars is not None:
            chars = np.zeros((len(index), batch["input_ids"].shape[1], MAX_WORD_CHARS), dtype=np.int64)
            for b, i in enumerate(index):
                for p, ids in enumerate(self.chars[i]):
                    chars[b, p, :len(ids)] = ids
            batch["char_ids"] = torch.from_numpy(chars)
        return batch


# ---------------------------------------------------------------- the model

class WordBiLSTMConfig(BiLSTMConfig):
    model_type = "kdnlp-word-bilstm"

    def __init__(self, char_vocab_size=0, char_dim=0, word_dropout=0.0, **kwargs):
        self.char_vocab_size = char_vocab_size
        self.char_dim = char_dim  # width of the character CNN's output per word; 0 = no character features
        self.word_dropout = word_dropout  # training only: a word's id -> [UNK] with this probability
        super().__init__(**kwargs)


class WordBiLSTMForTokenClassification(BiLSTMForTokenClassification):
    config_class = WordBiLSTMConfig

    def __init__(self, config: WordBiLSTMConfig):
        super().__init__(config)
        if config.char_dim:
            self.char_embed = nn.Embedding(config.char_vocab_size, CHAR_EMBEDDING_DIM, padding_idx=0)
            self.char_conv = nn.Conv1d(CHAR_EMBEDDING_DIM, config.char_dim, kernel_size=3, padding=1)
            self.lstm = nn.LSTM(config.embedding_dim + config.char_dim, config.hidden_size, num_layers=1,
                                batch_first=True, bidirectional=True)

    def word_features(self, input_ids, char_ids=None):
        x = self.project(self.embed(input_ids))
        if not self.config.char_dim:
            return x
        b, length, n_chars = char_ids.shape
        c = self.char_embed(char_ids.reshape(b * length, n_chars)).transpose(1, 2)  # (words, dim, chars)
        c = torch.relu(self.char_conv(c)).max(dim=2).values.reshape(b, length, -1)
        return torch.cat([x, c], dim=-1)

    def forward(self, input_ids=None, attention_mask=None, char_ids=None, labels=None, **_):
        if attention_mask is None:
            attention_mask = (input_ids != 0).long()
        if self.config.char_dim and char_ids is None:
            raise ValueError("this word tagger reads characters: pass char_ids (WordTagSplit.collate makes them)")
        if self.training and self.config.word_dropout:
            # [UNK] is what every unseen word gets at test time (46% of CoNLL-2003 test entity words, with 3,000
            # training sentences); never seen in training, its row would stay untrained. The characters stay.
            drop = (torch.rand(input_ids.shape, device=input_ids.device) < self.config.word_dropout) \
                & (input_ids >= len(SPECIALS))
            input_ids = input_ids.masked_fill(drop, WordTagTokenizer.unk_token_id)
        out = self.recur(self.word_features(input_ids, char_ids), attention_mask)
        return TokenClassifierOutput(logits=self.mlp(out))


AutoConfig.register(WordBiLSTMConfig.model_type, WordBiLSTMConfig)
AutoModelForTokenClassification.register(WordBiLSTMConfig, WordBiLSTMForTokenClassification)


# ---------------------------------------------------------------- building

def vectors_file_words(path: str) -> list[str]:
    """The words of a word2vec text file, in file order, every line checked (the same width, numbers after the
    word): preflight calls this before any training, so a bad file costs one line, not a teacher's epochs.
    The vectors themselves are read by bilstm.read_word2vec."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"student.embeddings: {path} not found (use random, teacher, or a word2vec text file)")
    words, width = [], None
    with open(p, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.rstrip().split(" ")
            if lineno == 1 and len(parts) == 2 and all(x.isdigit() for x in parts):
                continue  # the optional 'count dim' header
            width = width or len(parts)
            if len(parts) != width or width < 2:
                raise UserError(f"{path} line {lineno}: expected a word and {width - 1} numbers, got {len(parts) - 1} "
                                f"values (word2vec text format: 'word x1 x2 ...', one word a line)")
            try:
                np.asarray(parts[1:], dtype=np.float32)
            except ValueError:
                raise UserError(f"{path} line {lineno}: the values after {parts[0]!r} are not all numbers "
                                f"(word2vec text format: 'word x1 x2 ...')") from None
            words.append(parts[0])
    if not words:
        raise UserError(f"{path}: no vectors found (word2vec text format: 'word x1 x2 ...', one word a line)")
    return words


def teacher_word_vectors(ctx, tokenizer: WordTagTokenizer) -> np.ndarray:
    """Each vocabulary word's row: the mean of the teacher's input embeddings of its word pieces."""
    weights = ctx.fine_tuned_teacher().get_input_embeddings().weight.detach().float().numpy()
    pieces = ctx.teacher_tokenizer()(tokenizer.words, add_special_tokens=False)["input_ids"]
    out = np.zeros((len(tokenizer), weights.shape[1]), dtype=np.float32)
    for i, ids in enumerate(pieces):
        if ids and i >= len(SPECIALS):
            out[i] = weights[ids].mean(0)
    print(f"word embeddings: the mean of the teacher's word-piece embeddings for {len(tokenizer) - len(SPECIALS)} words")
    return out


def build(cfg, ctx):
    s = cfg.student
    words = [w for text in ctx.train_texts for w in text.split(" ") if w]  # NER texts are the words, space-joined
    from_file = s.embeddings not in ("random", "teacher")
    extra = vectors_file_words(s.embeddings) if from_file else []
    tokenizer = WordTagTokenizer.build(words, s.lowercase, s.min_word_count, extra, with_chars=s.char_dim > 0)
    print(f"word vocabulary: {len(tokenizer) - len(SPECIALS)} words ({'lower-cased, ' if s.lowercase else ''}"
          f"training words seen >= {s.min_word_count}x{f' + the words of {s.embeddings}' if from_file else ''})"
          + (f", {len(tokenizer.chars)} characters" if tokenizer.chars else ""))
    vectors = None
    if s.embeddings == "teacher":
        vectors = teacher_word_vectors(ctx, tokenizer)
    elif from_file:
        vectors, found = read_word2vec(s.embeddings, tokenizer.index)
        print(f"word vectors: {found}/{len(tokenizer)} vocabulary words found in {s.embeddings}")
    source_dim = vectors.shape[1] if vectors is not None and vectors.shape[1] != s.embedding_dim else None
    config = WordBiLSTMConfig(vocab_size=len(tokenizer), embedding_dim=s.embedding_dim, hidden_size=s.hidden_size,
                              mlp_size=s.mlp_size, dropout=s.dropout, embedding_source_dim=source_dim,
                              char_vocab_size=len(tokenizer.chars or []), char_dim=s.char_dim,
                              word_dropout=s.word_dropout,
                              pad_token_id=0, num_labels=len(ctx.labels), id2label=dict(enumerate(ctx.labels)),
                              label2id={l: i for i, l in enumerate(ctx.labels)})
    model = WordBiLSTMForTokenClassification(config)
    if vectors is not None:
        with torch.no_grad():
            model.embed.weight.copy_(torch.from_numpy(vectors))
    if s.freeze_embeddings:
        model.embed.weight.requires_grad_(False)
    return model, tokenizer
