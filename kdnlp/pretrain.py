"""Continued (or from-scratch) masked-LM pretraining of the teacher: `kdnlp pretrain --config X --corpus FILE...`.

Corpus files hold one text per line. The start point is `teacher.pretrained`, or, with `pretrained: null`, a random
BERT of `teacher.config` whose character vocabulary is built from the corpus and the training texts. The result,
<output_dir>/<pretrain.output> (default `pretrained`), is a BertForMaskedLM directory with its vocab: point
`teacher.pretrained` at it and train the teacher as usual (its MLM head is dropped, a classifier is added).

Masking follows BERT: `mask_prob` of the tokens are chosen, of those 80% become [MASK], 10% a random token, 10%
stay; the model predicts the originals. `whole_word_mask: true` chooses words instead of tokens and masks all of a
word's tokens (jieba words for Chinese, ## continuation pieces otherwise). 1% of the lines (at most 1,000) are held
out and their MLM loss is printed after every epoch.

MLM has no labels or dev metric to select on, so this is a short loop of its own rather than Trainer.fit: it
saves the last epoch.
"""
from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .data import is_chinese
from .errors import UserError
from .fileio import atomic_dir, write_json
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


def _batch(rows: list[tuple[list[int], list[int]]], pad_id: int) -> dict:
    width = max(len(x) for x, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, (x, y) in enumerate(rows):
        ids[r, :len(x)], labels[r, :len(y)], mask[r, :len(x)] = torch.tensor(x), torch.tensor(y), 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


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
        n = build_vocab_file(texts, vocab)
        print(f"vocab: built {n} tokens from the corpus and the training texts -> {vocab}")
    else:
        vocab = Path(t.vocab)
    tokenizer = BertTokenizer(str(vocab))
    fields = {k: v for k, v in (t.config or {}).items()}
    return BertForMaskedLM(BertConfig(**fields, vocab_size=len(tokenizer))), tokenizer


def pretrain(trainer, corpus: list[str]) -> Path:
    cfg, p = trainer.cfg, trainer.cfg.pretrain
    lines = read_corpus(corpus, p.max_lines)
    random.Random(p.seed).shuffle(lines)
    n_held = min(1000, max(1, len(lines) // 100))
    held, lines = lines[:n_held], lines[n_held:]
    train_texts = [e.text for e in trainer.splits.train] if cfg.teacher.pretrained is None else []
    torch.manual_seed(p.seed)
    model, tokenizer = start_model(trainer, lines + train_texts)
    model.to(trainer.device)
    encoded = [c for t in lines + train_texts for c in encode_chunks(tokenizer, t, cfg.data.max_length)]
    held_encoded = [c for t in held for c in encode_chunks(tokenizer, t, cfg.data.max_length)]
    rng = np.random.default_rng(p.seed)
    held_batches = [_batch([mask_tokens(*x, p.mask_prob, p.whole_word_mask, tokenizer.mask_token_id, len(tokenizer), rng)
                            for x in held_encoded[i:i + p.batch_size]], tokenizer.pad_token_id)
                    for i in range(0, len(held_encoded), p.batch_size)]  # fixed masks: comparable across epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=0.01)
    total = p.epochs * ((len(encoded) + p.batch_size - 1) // p.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, 1 - s / max(1, total)))
    print(f"pretrain: {len(encoded)} windows of <= {cfg.data.max_length} tokens from {len(lines)} corpus lines + "
          f"{len(train_texts)} training texts, "
          f"{len(held)} held out, {p.epochs} epochs, mask {p.mask_prob}{' whole words' if p.whole_word_mask else ''}")
    history = []
    for epoch in range(1, p.epochs + 1):
        model.train()
        order, t0, loss_sum = rng.permutation(len(encoded)), time.perf_counter(), 0.0
        starts = range(0, len(order), p.batch_size)
        report_every = max(1, len(starts) // 10)  # a line per tenth of the epoch: logs show progress without a tty
        for step, i in enumerate(tqdm(starts, desc=f"pretrain epoch {epoch}/{p.epochs}", disable=None), 1):
            rows = [mask_tokens(*encoded[j], p.mask_prob, p.whole_word_mask, tokenizer.mask_token_id, len(tokenizer), rng)
                    for j in order[i:i + p.batch_size]]
            batch = {k: v.to(trainer.device) for k, v in _batch(rows, tokenizer.pad_token_id).items()}
            loss = model(**batch).loss
            if torch.isnan(loss):  # no masked token in this batch
                continue
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            loss_sum += loss.item() * len(rows)
            if step % report_every == 0:
                print(f"pretrain epoch {epoch} step {step}/{len(starts)}: MLM loss {loss.item():.4f}, "
                      f"{(i + len(rows)) / (time.perf_counter() - t0):.0f} windows/s", flush=True)
        model.eval()
        with torch.no_grad():
            held_loss = float(np.mean([model(**{k: v.to(trainer.device) for k, v in b.items()}).loss.item()
                                       for b in held_batches]))
        history.append({"epoch": epoch, "train_loss": loss_sum / len(encoded), "held_out_loss": held_loss,
                        "seconds": round(time.perf_counter() - t0, 1)})
        print(f"pretrain epoch {epoch}: train MLM loss {history[-1]['train_loss']:.4f}, held-out {held_loss:.4f}, "
              f"{history[-1]['seconds']}s")
    out = trainer.out / p.output
    with atomic_dir(out) as tmp:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        write_json(tmp / "pretrain_log.json", {"corpus": corpus, "history": history})
    print(f"pretrain: saved {out}; set teacher.pretrained: {out} to fine-tune it")
    return out
