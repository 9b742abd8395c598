"""Continued (or from-scratch) masked-LM pretraining of the teacher: `kdnlp pretrain --config X --corpus FILE...`.

Corpus files hold one text per line. The start point is `teacher.pretrained`, or, with `pretrained: null`, a random
BERT of `teacher.config` whose character vocabulary is built from the corpus and the training texts. The result,
<output_dir>/<pretrain.output> (default `pretrained`), is a BertForMaskedLM directory with its vocab: point
`teacher.pretrained` at it and train the teacher as usual (its MLM head is dropped, a classifier is added).

Masking follows BERT: `mask_prob` of the tokens are chosen, of those 80% become [MASK], 10% a random token, 10%
stay; the model predicts the originals. `whole_word_mask: true` chooses words instead of tokens and masks all of a
word's tokens (jieba words for Chinese, ## continuation pieces otherwise); training batches are masked afresh each
time they are drawn. 1% of the lines (at least 100 or 10%, at most 1,000) are held out with fixed masks.

Training runs through Trainer.fit like the teacher and the students (so Accelerate, mixed precision, gradient
accumulation, `train.eval_every`, early stopping and `--resume` work here too): the masked LM is a token classifier
over the vocabulary whose labels are the original ids at masked positions, and the checkpoint kept is the one with
the best held-out masked-token accuracy (the held-out MLM loss is printed beside it).
"""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .config import PretrainConfig
from .data import EncodedSplit, Example, Splits
from .errors import UserError
from .losses import cross_entropy_loss
from .ner import IGNORE
from .tokenization import is_chinese
from .vocab import build_vocab_file


def read_corpus(paths: list[str], max_lines: int | None) -> list[str]:
    lines = []
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise UserError(f"--corpus {p}: file not found (one text per line)")
        with open(path, encoding="utf-8", errors="replace") as f:
            lines += [line.strip() for line in f if line.strip()]
    if not lines:
        raise UserError(f"--corpus {' '.join(paths)}: no non-empty lines")
    return lines[:max_lines] if max_lines else lines


def _words(tokenizer, text: str) -> list[list[str]]:
    """The text's tokens grouped by word: jieba words for Chinese, a word and its ## pieces otherwise."""
    if is_chinese(text):
        import jieba
        jieba.setLogLevel(60)
        return [toks for toks in (tokenizer.tokenize(w) for w in jieba.lcut(text) if w.strip()) if toks]
    words = []
    for tok in tokenizer.tokenize(text):
        if tok.startswith("##") and words:
            words[-1].append(tok)
        else:
            words.append([tok])
    return words


def encode_chunks(tokenizer, text: str, max_length: int) -> list[tuple[list[int], list[int]]]:
    """[(token ids with [CLS]/[SEP], each token's word index or -1 for [CLS]/[SEP])], one per window of max_length.

    A text longer than max_length becomes several windows instead of losing its tail: corpus lines are often whole
    paragraphs (People's Daily: ~100 characters per line), and truncating them to the teacher's max_length would
    throw away a third of the corpus. Windows break between words where a word fits;
    a single word longer than a window is cut.
    """
    room = max_length - 2
    chunks, cur = [], []
    for toks in _words(tokenizer, text):
        ids = [tokenizer.convert_tokens_to_ids(t) for t in toks]
        while len(ids) > room:  # a word longer than a whole window
            if cur:
                chunks.append(cur)
                cur = []
            chunks.append([ids[:room]])
            ids = ids[room:]
        if not ids:
            continue
        if sum(map(len, cur)) + len(ids) > room:
            chunks.append(cur)
            cur = []
        cur.append(ids)
    if cur or not chunks:
        chunks.append(cur)
    out = []
    for words in chunks:
        ids, groups = [tokenizer.cls_token_id], [-1]
        for w, piece in enumerate(words):
            ids += piece
            groups += [w] * len(piece)
        out.append((ids + [tokenizer.sep_token_id], groups + [-1]))
    return out


def mask_tokens(ids: list[int], groups: list[int], prob: float, whole_word: bool, mask_id: int, vocab_size: int,
                rng: np.random.Generator) -> tuple[list[int], list[int]]:
    """(inputs, labels): labels are the original ids at chosen positions and -100 elsewhere."""
    groups = np.asarray(groups)
    if whole_word:
        words = np.unique(groups[groups >= 0])
        chosen_words = words[rng.random(len(words)) < prob]
        chosen = np.isin(groups, chosen_words) & (groups >= 0)
    else:
        chosen = (rng.random(len(ids)) < prob) & (groups >= 0)
    inputs, labels = list(ids), [-100] * len(ids)
    for i in np.flatnonzero(chosen):
        labels[i] = ids[i]
        r = rng.random()
        if r < 0.8:
            inputs[i] = mask_id
        elif r < 0.9:
            inputs[i] = int(rng.integers(vocab_size))
    return inputs, labels


class MaskedWindows(EncodedSplit):
    """Corpus texts as windows of <= max_length tokens (encode_chunks), masked when a batch is collated.

    Training batches get fresh masks every time (dynamic masking) from numpy's global generator, which Trainer.fit
    seeds and saves with its resume state; `fixed_batches` masks the held-out windows once (seeded), so that every
    evaluation scores the same positions."""

    def __init__(self, examples: list[Example], tokenizer, max_length: int, settings: PretrainConfig):
        self.windows = [w for e in examples for w in encode_chunks(tokenizer, e.text, max_length)]
        self.ids = [ids for ids, _ in self.windows]
        self.lengths = np.array([len(x) for x in self.ids])
        self.pad_id = tokenizer.pad_token_id or 0
        self.settings, self.mask_id, self.vocab_size = settings, tokenizer.mask_token_id, len(tokenizer)
        self._fixed: dict[int, list[dict]] = {}

    def collate(self, index: np.ndarray, width: int | None = None, pad_to_multiple_of: int | None = None,
                rng: np.random.Generator | None = None) -> dict[str, torch.Tensor]:
        # default: a generator seeded from numpy's global state, which fit seeds and --resume restores
        rng = rng or np.random.default_rng(np.random.randint(2**31))
        s = self.settings
        rows = [mask_tokens(*self.windows[i], s.mask_prob, s.whole_word_mask, self.mask_id, self.vocab_size, rng)
                for i in index]
        if all(y == IGNORE for _, targets in rows for y in targets):  # nothing chosen: mask one token of the longest
            r = int(np.argmax(self.lengths[index]))
            ids = self.windows[index[r]][0]
            if len(ids) > 2:  # not only [CLS] [SEP]
                pos = int(rng.integers(1, len(ids) - 1))
                inputs, targets = list(ids), [IGNORE] * len(ids)
                inputs[pos], targets[pos] = self.mask_id, ids[pos]
                rows[r] = (inputs, targets)
        batch = self.pad_ids(index, width, pad_to_multiple_of)
        labels = torch.full(batch["input_ids"].shape, IGNORE, dtype=torch.long)
        for r, (inputs, targets) in enumerate(rows):
            batch["input_ids"][r, :len(inputs)] = torch.tensor(inputs)
            labels[r, :len(targets)] = torch.tensor(targets)
        batch["labels"] = labels
        return batch

    def fixed_batches(self, batch_size: int) -> list[dict]:
        if batch_size not in self._fixed:
            rng = np.random.default_rng(self.settings.seed)
            self._fixed[batch_size] = [self.collate(np.arange(s, min(s + batch_size, len(self))), rng=rng)
                                       for s in range(0, len(self), batch_size)]
        return self._fixed[batch_size]


class MaskedLM:
    """The masked-LM 'task' Trainer.fit trains with cross_entropy_loss over the masked positions (fit keeps the
    positions whose label is not IGNORE, as for token classification) and selects on held-out masked-token accuracy."""
    name = "masked-lm"
    metric = "held-out MLM accuracy"

    def __init__(self, settings: PretrainConfig):
        self.settings = settings

    def encode(self, examples: list[Example], tokenizer, max_length: int, pair_input: str = "joint") -> MaskedWindows:
        # corpus windows of single texts: pair_input does not apply
        return MaskedWindows(examples, tokenizer, max_length, self.settings)

    def dev_score(self, trainer, model, data: MaskedWindows, labels, batch_size: int) -> float:
        """Accuracy on the held-out windows' fixed masked positions; the held-out MLM loss is printed beside it.
        Every process scores all held-out windows (they are few)."""
        model.eval()
        loss_sum = correct = n = 0
        with torch.no_grad():
            for batch in data.fixed_batches(batch_size):
                gold = batch["labels"].to(trainer.device)
                with trainer._autocast():
                    logits = model(input_ids=batch["input_ids"].to(trainer.device),
                                   attention_mask=batch["attention_mask"].to(trainer.device)).logits
                chosen = gold != IGNORE
                logits, gold = logits[chosen].float(), gold[chosen]
                loss_sum += F.cross_entropy(logits, gold, reduction="sum").item()
                correct += (logits.argmax(-1) == gold).sum().item()
                n += len(gold)
        print(f"held-out MLM loss {loss_sum / max(n, 1):.4f} over {n} masked tokens")
        return correct / max(n, 1)


def start_model(trainer, texts: list[str]):
    """(BertForMaskedLM, tokenizer): from teacher.pretrained, or random with a vocab built from `texts`."""
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    from .teacher import check_model_dir, load_tokenizer, resolve_pretrained
    t = trainer.cfg.teacher
    if t.pretrained is not None:
        path = Path(resolve_pretrained(t.pretrained))
        if not path.is_dir():
            raise UserError(f"teacher.pretrained: {t.pretrained} is not a local directory (pretrain needs one)")
        check_model_dir(path)
        return BertForMaskedLM.from_pretrained(str(path)), load_tokenizer(path)
    if t.vocab == "build":
        vocab = trainer.out / "pretrain_vocab.txt"
        with trainer.accelerator.main_process_first():  # the main process writes it, the others then read it
            if trainer.is_main:
                n = build_vocab_file(texts, vocab)
                print(f"vocab: built {n} tokens from the corpus and the training texts -> {vocab}")
    else:
        vocab = Path(t.vocab)
    tokenizer = BertTokenizer(str(vocab))
    fields = {k: v for k, v in (t.config or {}).items()}
    return BertForMaskedLM(BertConfig(**fields, vocab_size=len(tokenizer))), tokenizer


def pretrain(trainer, corpus: list[str]) -> Path:
    """Masked-LM training through Trainer.fit -> <output_dir>/<pretrain.output> (best held-out accuracy)."""
    cfg, p = trainer.cfg, trainer.cfg.pretrain
    lines = read_corpus(corpus, p.max_lines)
    random.Random(p.seed).shuffle(lines)
    n_held = min(1000, max(len(lines) // 100, min(100, len(lines) // 10), 1))  # 1%, at least 100 (10% of a small corpus)
    held, lines = lines[:n_held], lines[n_held:]
    train_texts = [e.text for e in trainer.splits.train] if cfg.teacher.pretrained is None else []
    if not lines + train_texts:  # the only line went to the held-out set: nothing would be trained
        raise UserError(f"--corpus {' '.join(corpus)}: {n_held} line(s) in all, all held out for evaluation; "
                        f"pretraining needs more text (one text per line)")
    torch.manual_seed(p.seed)
    model, tokenizer = start_model(trainer, lines + train_texts)
    task = MaskedLM(p)
    splits = Splits(train=[Example(t, IGNORE) for t in lines + train_texts], dev=[Example(t, IGNORE) for t in held],
                    test=[], labels=[], dev_source=f"{n_held} corpus lines held out (pretrain.seed={p.seed})")
    print(f"pretrain: {len(lines)} corpus lines + {len(train_texts)} training texts, {n_held} lines held out, "
          f"{p.epochs} epochs, mask {p.mask_prob}{' whole words' if p.whole_word_mask else ''}; "
          f"lines longer than {cfg.data.max_length} tokens become several windows")
    out = trainer.out / p.output
    trainer.fit(model, tokenizer, cross_entropy_loss, p, out, "pretrain", task=task, splits=splits)
    print(f"pretrain: saved {out}; set teacher.pretrained: {out} to fine-tune it")
    return out
