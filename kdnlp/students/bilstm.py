"""BiLSTMStudent after Tang et al. (2019): embedding -> 1-layer BiLSTM -> masked max-pool over time -> MLP -> logits.

Sentence pairs with `student.siamese: true` (config.siamese): both texts go through the same embedding and BiLSTM,
and the MLP reads [h1, h2, h1*h2, |h1-h2|] of the two pooled vectors (Tang et al.'s siamese student). The forward
then takes the second text as input_ids_b / attention_mask_b (kdnlp.data.model_inputs passes them).

Tokens are the teacher's (sub)words by default. With `student.embeddings: <word2vec file>` the student has its
own word vocabulary built from train (jieba for Chinese, whitespace otherwise), saved as word_vocab.txt.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import (AutoConfig, AutoModelForSequenceClassification, AutoModelForTokenClassification,
                          PretrainedConfig, PreTrainedModel)
from transformers.modeling_outputs import SequenceClassifierOutput, TokenClassifierOutput

from ..errors import UserError
from ..tokenization.words import WordTokenizer  # torch-free, for the serving runtime; built here


class BiLSTMConfig(PretrainedConfig):
    model_type = "kdnlp-bilstm"

    def __init__(self, vocab_size=30522, embedding_dim=300, hidden_size=300, mlp_size=192, dropout=0.1,
                 embedding_source_dim=None, siamese=False, **kwargs):
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.hidden_size = hidden_size
        self.mlp_size = mlp_size
        self.dropout = dropout
        # width of copied embeddings (e.g. the teacher's 768) when it differs from embedding_dim
        self.embedding_source_dim = embedding_source_dim
        self.siamese = siamese
        super().__init__(**kwargs)


class BiLSTMForSequenceClassification(PreTrainedModel):
    config_class = BiLSTMConfig
    base_model_prefix = "bilstm"

    def __init__(self, config: BiLSTMConfig):
        super().__init__(config)
        src = config.embedding_source_dim or config.embedding_dim
        self.embed = nn.Embedding(config.vocab_size, src, padding_idx=config.pad_token_id or 0)
        self.project = nn.Linear(src, config.embedding_dim) if src != config.embedding_dim else nn.Identity()
        self.lstm = nn.LSTM(config.embedding_dim, config.hidden_size, num_layers=1, batch_first=True, bidirectional=True)
        features = 2 * config.hidden_size * (4 if config.siamese else 1)  # siamese: [h1, h2, h1*h2, |h1-h2|]
        self.mlp = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(features, config.mlp_size),
                                 nn.ReLU(), nn.Dropout(config.dropout), nn.Linear(config.mlp_size, config.num_labels))
        self.post_init()

    def _init_weights(self, module):  # keep PyTorch's default initialisation
        pass

    def encode(self, input_ids, attention_mask):
        """BiLSTM states (batch, length, 2*hidden); pads are packed away, so they never feed the recurrence."""
        return self.recur(self.project(self.embed(input_ids)), attention_mask)

    def recur(self, x, attention_mask):
        """(batch, length, features) -> BiLSTM states; the word tagger (word_bilstm.py) feeds its own features."""
        lengths = attention_mask.sum(1).clamp(min=1)
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return out

    def pool(self, input_ids, attention_mask=None):
        """One text per row -> its max-pooled BiLSTM states (batch, 2*hidden)."""
        if attention_mask is None:
            attention_mask = (input_ids != (self.config.pad_token_id or 0)).long()
        out = self.encode(input_ids, attention_mask)
        mask = attention_mask[:, :, None].bool()
        return out.masked_fill(~mask, torch.finfo(out.dtype).min).max(dim=1).values

    def forward(self, input_ids=None, attention_mask=None, input_ids_b=None, attention_mask_b=None, labels=None, **_):
        h1 = self.pool(input_ids, attention_mask)
        if not self.config.siamese:
            return SequenceClassifierOutput(logits=self.mlp(h1))
        if input_ids_b is None:
            raise ValueError("a siamese BiLSTM needs the second text: input_ids_b (and attention_mask_b)")
        return SequenceClassifierOutput(logits=self.mlp(pair_features(h1, self.pool(input_ids_b, attention_mask_b))))


def pair_features(h1: torch.Tensor, h2: torch.Tensor) -> torch.Tensor:
    """Tang et al.'s siamese features: [h1, h2, h1*h2, |h1-h2|]."""
    return torch.cat([h1, h2, h1 * h2, (h1 - h2).abs()], dim=-1)


class BiLSTMForTokenClassification(BiLSTMForSequenceClassification):
    """The BiLSTM tagger: the same encoder, and the MLP applied at every position (per-token logits)."""

    def forward(self, input_ids=None, attention_mask=None, labels=None, **_):
        if attention_mask is None:
            attention_mask = (input_ids != (self.config.pad_token_id or 0)).long()
        out = self.encode(input_ids, attention_mask)
        return TokenClassifierOutput(logits=self.mlp(out))


AutoConfig.register(BiLSTMConfig.model_type, BiLSTMConfig)
AutoModelForSequenceClassification.register(BiLSTMConfig, BiLSTMForSequenceClassification)
AutoModelForTokenClassification.register(BiLSTMConfig, BiLSTMForTokenClassification)


def read_word2vec(path: str, vocab: dict[str, int], dim_hint: int | None = None) -> tuple[np.ndarray, int]:
    """word2vec text format (optional 'count dim' header) -> (matrix for `vocab`, words found)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"student.embeddings: {path} not found (use random, teacher, or a word2vec text file)")
    matrix = None
    found = 0
    with open(p, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.rstrip().split(" ")
            if lineno == 1 and len(parts) == 2 and all(x.isdigit() for x in parts):
                continue
            if matrix is None:
                dim = len(parts) - 1
                matrix = np.random.default_rng(0).normal(0, 0.1, (len(vocab), dim)).astype(np.float32)
                matrix[0] = 0
            if len(parts) - 1 != matrix.shape[1]:
                raise UserError(f"{path} line {lineno}: expected {matrix.shape[1]} numbers after the word, got {len(parts) - 1}")
            i = vocab.get(parts[0])
            if i is not None:
                matrix[i] = np.asarray(parts[1:], dtype=np.float32)
                found += 1
    if matrix is None:
        raise UserError(f"{path}: no vectors found")
    return matrix, found


def student_tokenizer(spec: str | None, ctx):
    """student.tokenizer (a tokenizer directory or a vocab.txt), else the teacher's; with no teacher model
    (teacher.outputs alone) the words of the training texts (jieba for Chinese)."""
    if spec is not None:
        from ..teacher import load_tokenizer
        path = Path(spec)
        if path.is_file():  # a BERT-style vocab.txt (positional: vocab_file= silently builds a 5-token vocab)
            from transformers import BertTokenizer
            return BertTokenizer(str(path))
        if not path.is_dir():
            raise UserError(f"student.tokenizer: {spec} not found (a tokenizer directory or a vocab.txt)")
        return load_tokenizer(path)
    if ctx.has_teacher_model:
        return ctx.teacher_tokenizer()
    tokenizer = WordTokenizer.build(ctx.train_texts)
    print(f"student vocabulary: {len(tokenizer)} {'jieba words' if tokenizer.chinese else 'words'} of the training texts")
    return tokenizer


def build(cfg, ctx):
    s = cfg.student
    source_dim = None
    weights = None
    if s.embeddings in ("random", "teacher"):
        tokenizer = student_tokenizer(s.tokenizer, ctx)
        if s.embeddings == "teacher":
            weights = ctx.fine_tuned_teacher().get_input_embeddings().weight.detach().clone()
            source_dim = weights.shape[1] if weights.shape[1] != s.embedding_dim else None
    else:
        tokenizer = WordTokenizer.build(ctx.train_texts)
        matrix, found = read_word2vec(s.embeddings, tokenizer.index)
        print(f"word vectors: {found}/{len(tokenizer)} vocabulary words found in {s.embeddings}")
        weights = torch.from_numpy(matrix)
        source_dim = weights.shape[1] if weights.shape[1] != s.embedding_dim else None
    vocab_size = weights.shape[0] if s.embeddings == "teacher" else len(tokenizer)
    config = BiLSTMConfig(vocab_size=vocab_size, embedding_dim=s.embedding_dim, hidden_size=s.hidden_size,
                          mlp_size=s.mlp_size, dropout=s.dropout, embedding_source_dim=source_dim, siamese=s.siamese,
                          pad_token_id=tokenizer.pad_token_id or 0, num_labels=len(ctx.labels),
                          id2label=dict(enumerate(ctx.labels)), label2id={l: i for i, l in enumerate(ctx.labels)})
    model_class = BiLSTMForTokenClassification if cfg.task == "ner" else BiLSTMForSequenceClassification
    model = model_class(config)
    if weights is not None:
        with torch.no_grad():
            model.embed.weight.copy_(weights[:config.vocab_size])
    if s.freeze_embeddings:  # copied vectors stay fixed: no dense AdamW update of a 30k x 384 matrix every step
        model.embed.weight.requires_grad_(False)
    return model, tokenizer
