"""The static student (student.type: static): a bag of embeddings. Token (and hashed n-gram) embeddings ->
masked mean (or SIF-weighted mean) -> a small MLP -> logits. No recurrence, no attention: the fast end of the
accuracy-speed frontier, where fastText and model2vec sit.

Sentence pairs with student.siamese: true: each text is pooled on its own and the MLP reads
[u, v, u*v, |u-v|] (the BiLSTM's pair features). Multi-label: the same logits, the task's loss.

Embeddings (student.embeddings):
  random     a fresh table;
  <file>     word2vec text vectors for the words vocabulary (the BiLSTM's reader, bilstm.read_word2vec);
  teacher    the teacher's input embeddings, reduced by PCA to embedding_dim (over the teacher's vocabulary);
  model2vec  model2vec's distillation of the teacher's encoder (the optional `model2vec` package): every
             vocabulary token's contextual mean vector, PCA-reduced to embedding_dim by model2vec itself.
The tokenizer is kdnlp.tokenization.static.StaticTokenizer: words of its own (student.tokenize: auto|words), or the
teacher's WordPiece (teacher). With the words tokenizer, teacher / model2vec vectors are mapped onto the words: a
word's vector is the mean of its WordPiece pieces' (words_from_pieces).
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from transformers import AutoConfig, AutoModelForSequenceClassification, PretrainedConfig, PreTrainedModel

from ..errors import UserError
from .bilstm import pair_features, read_word2vec
from ..tokenization.static import StaticTokenizer

SIF_A = 1e-3  # Arora et al. (2017): weight a / (a + p(w)); frequent words count less


class StaticConfig(PretrainedConfig):
    model_type = "kdnlp-static"

    def __init__(self, vocab_size=30522, embedding_dim=300, mlp_size=192, dropout=0.1, pooling="mean",
                 siamese=False, **kwargs):
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.mlp_size = mlp_size      # 0: a linear head on the pooled vector (fastText's shape)
        self.dropout = dropout
        self.pooling = pooling        # mean | sif
        self.siamese = siamese
        super().__init__(**kwargs)


class StaticForSequenceClassification(PreTrainedModel):
    config_class = StaticConfig
    base_model_prefix = "static"

    def __init__(self, config: StaticConfig):
        super().__init__(config)
        self.embed = nn.Embedding(config.vocab_size, config.embedding_dim)
        # fastText's init, uniform(+-1/dim), not nn.Embedding's N(0, 1): a row never trained (most test bigrams'
        # buckets) then adds almost nothing to the mean. SST-2 test, words + bigrams + 64-unit MLP: 81.08 vs 76.72
        # with N(0, 1); words alone with a linear head: 81.08 vs 81.54 (4 sentences of 872, within seed noise).
        nn.init.uniform_(self.embed.weight, -1 / config.embedding_dim, 1 / config.embedding_dim)
        # per-row pooling weights (SIF); all ones for mean pooling. Saved with the weights, so predict needs no counts.
        self.register_buffer("token_weight", torch.ones(config.vocab_size))
        features = config.embedding_dim * (4 if config.siamese else 1)
        if config.mlp_size:
            self.mlp = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(features, config.mlp_size), nn.ReLU(),
                                     nn.Dropout(config.dropout), nn.Linear(config.mlp_size, config.num_labels))
        else:
            self.mlp = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(features, config.num_labels))
        self.post_init()

    def _init_weights(self, module):  # keep PyTorch's default initialisation
        pass

    def pool(self, input_ids, attention_mask=None):
        """(batch, length) ids -> (batch, embedding_dim): the mean of the real rows' (weighted) embeddings."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        mask = attention_mask.to(self.embed.weight.dtype)
        count = mask.sum(1, keepdim=True).clamp(min=1)
        weight = mask * self.token_weight[input_ids] if self.config.pooling == "sif" else mask
        return torch.bmm(weight.unsqueeze(1), self.embed(input_ids)).squeeze(1) / count  # one fused weighted sum

    def forward(self, input_ids=None, attention_mask=None, input_ids_b=None, attention_mask_b=None, labels=None, **_):
        u = self.pool(input_ids, attention_mask)
        if not self.config.siamese:
            return StaticOutput(self.mlp(u))
        if input_ids_b is None:
            raise ValueError("a siamese static student needs the second text: input_ids_b (and attention_mask_b)")
        return StaticOutput(self.mlp(pair_features(u, self.pool(input_ids_b, attention_mask_b))))

    @torch.inference_mode()
    def text_logits(self, tokenizer: StaticTokenizer, texts: list[str], max_length: int | None,
                    batch_size: int = 64) -> np.ndarray:
        """Texts -> (texts, num_labels) logits for single texts, the predictor's fast path (kdnlp.load(dir).predict):
        the tokenizer's flat rows + offsets into one fused embedding_bag (no padding, no mask), then the head's
        layers called directly. The same logits as forward() on the padded batch, up to float rounding (the
        sum's order); tests/test_static_fast.py checks it. Needs eval mode (no dropout): the predictor sets it."""
        device = self.embed.weight.device
        out = []
        for i in range(0, len(texts), batch_size):
            ids, offsets = tokenizer.flat(texts[i:i + batch_size], max_length)
            out.append(self.bag_logits(torch.from_numpy(ids).to(device), torch.from_numpy(offsets).to(device)))
        return np.concatenate(out) if out else np.zeros((0, self.config.num_labels), dtype=np.float32)

    def bag_logits(self, ids: torch.Tensor, offsets: torch.Tensor) -> np.ndarray:
        """Flat rows + offsets (StaticTokenizer.flat) -> logits: one fused embedding_bag (mean; SIF: the weighted
        sum over the token count, as pool() divides), then the head. Call under inference_mode, in eval mode."""
        if self.config.pooling == "sif":
            counts = torch.diff(offsets, append=offsets.new_tensor([len(ids)])).unsqueeze(1)
            pooled = F.embedding_bag(ids, self.embed.weight, offsets, mode="sum",
                                     per_sample_weights=self.token_weight[ids]) / counts
        else:
            pooled = F.embedding_bag(ids, self.embed.weight, offsets, mode="mean")
        return self.head(pooled).float().cpu().numpy()

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """self.mlp in eval mode without nn.Module's per-call dispatch (dropout is the identity): its Linear
        layers with a ReLU between them."""
        linears = [m for m in self.mlp if isinstance(m, nn.Linear)]
        for j, layer in enumerate(linears):
            x = F.linear(x, layer.weight, layer.bias)
            if j < len(linears) - 1:
                x = F.relu(x)
        return x


class StaticOutput(NamedTuple):
    """The forward's result: `.logits`, all kdnlp reads. Not a transformers ModelOutput, whose construction
    (a pytree registration check) measured ~0.4 ms a call under load: a third of this model's forward."""
    logits: torch.Tensor


AutoConfig.register(StaticConfig.model_type, StaticConfig)
AutoModelForSequenceClassification.register(StaticConfig, StaticForSequenceClassification)


# ---------------------------------------------------------------- embeddings

def pca(matrix: np.ndarray, dim: int) -> np.ndarray:
    """Rows projected on their top `dim` principal components (centred; SVD of the covariance, dim x dim cheap)."""
    x = matrix - matrix.mean(0, keepdims=True)
    _, vectors = np.linalg.eigh(x.T @ x)
    return (x @ vectors[:, ::-1][:, :dim]).astype(np.float32)


def teacher_vectors(ctx, dim: int) -> np.ndarray:
    weights = ctx.fine_tuned_teacher().get_input_embeddings().weight.detach().float().numpy()
    if dim > weights.shape[1]:
        raise UserError(f"student.embedding_dim: {dim} is wider than the teacher's embeddings ({weights.shape[1]}); "
                        f"PCA can only reduce (set student.embedding_dim <= {weights.shape[1]})")
    print(f"static embeddings: the teacher's {weights.shape[0]} x {weights.shape[1]} input embeddings, PCA to {dim}")
    return pca(weights, dim)


_MODEL2VEC: dict = {}  # (teacher dir, its newest file's mtime, dim) -> model2vec's distilled model


def model2vec_vectors(cfg, ctx, tokenizer: StaticTokenizer, dim: int) -> np.ndarray:
    """model2vec's distillation of the fine-tuned teacher, rows re-ordered to the teacher's vocabulary ids."""
    try:
        from model2vec.distill import distill
    except ImportError:
        raise UserError("student.embeddings: model2vec needs the optional model2vec package (pip install 'kdnlp[static]', i.e. model2vec[distill])") from None
    ctx.fine_tuned_teacher()  # makes sure <output_dir>/teacher is there (trained or imported)
    teacher_dir = str(cfg.out / "teacher")
    weights = max(Path(teacher_dir).iterdir(), key=lambda f: f.stat().st_mtime_ns).stat().st_mtime_ns
    key = (teacher_dir, weights, dim)
    if key not in _MODEL2VEC:  # one distillation per teacher and width in a process that trains many variants
        _MODEL2VEC[key] = distill(model_name=teacher_dir, pca_dims=dim)
    m2v = _MODEL2VEC[key]
    vectors = np.asarray(m2v.embedding, dtype=np.float32)
    if vectors.shape[1] != dim:  # model2vec cannot PCA to more dimensions than the teacher's width
        raise UserError(f"student.embedding_dim: {dim}, but model2vec of {teacher_dir} gives {vectors.shape[1]}-dim "
                        f"vectors; set student.embedding_dim <= {vectors.shape[1]}")
    vocab = m2v.tokenizer.get_vocab()
    out = np.random.default_rng(0).normal(0, 0.01, (tokenizer.base_size, vectors.shape[1])).astype(np.float32)
    found = 0
    for token, i in tokenizer.backend.get_vocab().items():
        j = vocab.get(token)
        if j is not None and j < len(vectors):
            out[i] = vectors[j]
            found += 1
    print(f"static embeddings: model2vec distilled from {teacher_dir} ({found}/{tokenizer.base_size} tokens, dim {vectors.shape[1]})")
    return out


def words_from_pieces(tokenizer: StaticTokenizer, pieces: StaticTokenizer, vectors: np.ndarray) -> np.ndarray:
    """Teacher-token vectors -> one vector per word of the words vocabulary: the mean of its WordPiece pieces'.
    The teacher's knowledge at the words tokenizer's speed (measured 4-7x the WordPiece path's, docs/static.md)."""
    out = np.zeros((tokenizer.base_size, vectors.shape[1]), dtype=np.float32)
    for w, ids in zip(tokenizer.words[2:], pieces.unigrams(tokenizer.words[2:])):
        if ids:
            out[tokenizer.index[w]] = vectors[ids].mean(0)
    return out


def make_tokenizer(cfg, ctx) -> StaticTokenizer:
    s = cfg.student
    if s.tokenize == "teacher":
        return StaticTokenizer.from_teacher(ctx.teacher_tokenizer(), s.ngrams, s.hash_buckets)
    tokenizer = StaticTokenizer.build_words(ctx.train_texts, s.ngrams, s.hash_buckets)
    print(f"static vocabulary: {tokenizer.base_size} words of the training texts"
          + (" and data.unlabeled" if cfg.data.unlabeled else "")
          + (f" + {s.hash_buckets} hashed 2..{s.ngrams}-gram buckets" if s.ngrams > 1 else ""))
    return tokenizer


def build(cfg, ctx):
    s = cfg.student
    tokenizer = make_tokenizer(cfg, ctx)
    vectors = None
    if s.embeddings in ("teacher", "model2vec"):
        pieces = tokenizer if tokenizer.mode == "teacher" else StaticTokenizer.from_teacher(ctx.teacher_tokenizer(), 1, 1)
        vectors = (teacher_vectors(ctx, s.embedding_dim) if s.embeddings == "teacher"
                   else model2vec_vectors(cfg, ctx, pieces, s.embedding_dim))
        if tokenizer.mode == "words":
            vectors = words_from_pieces(tokenizer, pieces, vectors)
    elif s.embeddings != "random":
        if tokenizer.mode != "words":
            raise UserError("student.embeddings: word2vec vectors need student.tokenize: words (or auto)")
        matrix, found = read_word2vec(s.embeddings, tokenizer.index)
        print(f"word vectors: {found}/{tokenizer.base_size} vocabulary words found in {s.embeddings}")
        if matrix.shape[1] != s.embedding_dim:
            raise UserError(f"student.embedding_dim: {s.embedding_dim}, but {s.embeddings} has {matrix.shape[1]}-dim "
                            f"vectors; set student.embedding_dim: {matrix.shape[1]}")
        vectors = matrix
    config = StaticConfig(vocab_size=tokenizer.vocab_size, embedding_dim=s.embedding_dim, mlp_size=s.mlp_size,
                          dropout=s.dropout, pooling=s.pooling, siamese=s.siamese,
                          pad_token_id=tokenizer.pad_token_id, num_labels=len(ctx.labels),
                          id2label=dict(enumerate(ctx.labels)), label2id={l: i for i, l in enumerate(ctx.labels)})
    model = StaticForSequenceClassification(config)
    with torch.no_grad():
        if vectors is not None:
            # copied rows only: the n-gram buckets keep their fresh init
            model.embed.weight[:len(vectors)] = torch.from_numpy(vectors)
        if s.pooling == "sif":
            counts = torch.tensor(tokenizer.counts(ctx.train_texts), dtype=torch.float32)
            model.token_weight.copy_(SIF_A / (SIF_A + counts / counts.sum().clamp(min=1)))
    if s.freeze_embeddings:
        model.embed.weight.requires_grad_(False)
    return model, tokenizer
