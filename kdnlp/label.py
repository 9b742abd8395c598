"""`kdnlp label --input texts.txt --teacher <dir|hub id> [--output teacher_outputs.jsonl]`

Runs any fine-tuned local (or hub) sequence classifier over texts and writes its logits as a teacher.outputs file,
so the teacher and the student can run on different machines (the teacher on a GPU box, the student on a laptop).
No config is needed: the labels are the model's own (labels.txt or config.id2label), named in the file's header,
and a config reading the file matches them to its data's labels by name (generic LABEL_i names by index, when
data.labels gives the order).

Inputs of any size: the rows are read as a stream (kdnlp/transfer/sources.py: .txt, .jsonl, .csv, .tsv, .parquet,
.json; globs), labelled in shards under <output>.parts/ (batched by a token budget, a progress line per shard), and
a rerun after a kill computes only the missing shards; the JSONL is then written in one streamed, atomic pass and
the shards removed. Sentence pairs are keyed by both texts. The header names the model's task, by the rule
predict uses (predictor.model_task): "multilabel" for a multi-label classifier (config.problem_type
multi_label_classification, or dev-chosen thresholds saved by kdnlp: one pre-sigmoid logit per label), else
"classification"; a config of the other task refuses the file (kdnlp/teacher_outputs.py).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .config import DataConfig
from .errors import UserError
from .fileio import atomic_path, remove_dir, sha256_file
from .predictor import model_task
from .teacher import fine_tuned_source, fp32, from_hub, load_tokenizer, source_fingerprint
from .teacher_outputs import header_line, output_line
from .transfer.cache_pass import ModelLabeller, describe, plan, run_pass
from .transfer.shards import ShardStore
from .transfer.steps import CPU_TOKEN_BUDGET
from .transfer.sources import UnlabeledRows, file_has_pairs, read_rows, resolve

SHARD_ROWS = 50000


def load_classifier(spec: str):
    """(fp32 model, tokenizer, class names in output order) of any fine-tuned sequence classifier."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    resolved, path, _, labels = fine_tuned_source(spec, key="--teacher")
    tokenizer = load_tokenizer(path) if path is not None else from_hub(
        "--teacher", spec, lambda: AutoTokenizer.from_pretrained(resolved))
    return AutoModelForSequenceClassification.from_pretrained(resolved, **fp32()), tokenizer, labels


def _inputs(input_path: str, text_field: str) -> tuple[list[Path], DataConfig, bool]:
    try:
        files = resolve(input_path)
    except UserError as e:
        raise UserError(str(e).replace("data.unlabeled:", "--input")) from None
    cfg = DataConfig(text_field=text_field)
    pairs = {file_has_pairs(p, cfg) for p in files}
    if len(pairs) > 1:
        raise UserError(f"--input {input_path}: some files hold sentence pairs and some single texts; label them apart")
    return files, cfg, pairs.pop()


def _keys(files: list[Path], cfg: DataConfig, pairs: bool):
    """Each row's output key, in the rows' order: its data id where it has one, else its text(s)."""
    for path in files:
        for _, (text, second, rid) in read_rows(path, cfg, pairs, ids=True):
            yield {"id": rid} if rid is not None else {"text": text.strip()} if second is None else \
                {"text": text.strip(), "text_b": second.strip()}


def label(input_path: str, teacher: str, output: str, max_length: int = 128, batch_size: int = 64,
          device: str = "auto", text_field: str = "auto", max_tokens: int | None = None) -> Path:
    """The teacher's logits for every input row, through the same device rule as training (pick_device: --device
    cuda without a GPU is one line); batches of at most `max_tokens` padded tokens and `batch_size` rows."""
    from .loop import pick_device
    files, cfg, pairs = _inputs(input_path, text_field)
    dev = pick_device(device)
    model, tokenizer, labels = load_classifier(teacher)  # before anything is written: a bad --teacher fails now
    rows = UnlabeledRows(files, cfg, pairs, exclude=set())
    source = source_fingerprint(teacher)  # a local teacher by its files' sha256 (moved, it reuses the parts); a hub id by name
    weights = {k: v for k, v in source.items() if k not in ("source", "resolved")}
    fingerprint = {"files": [sha256_file(p) for p in files], "teacher": weights or source,
                   "max_length": max_length, "text_field": text_field, "shard_rows": SHARD_ROWS}
    store = ShardStore(Path(f"{output}.parts"), fingerprint)
    p = plan(rows, SHARD_ROWS, len(labels))
    if p["rows"] == 0:
        raise UserError(f"--input {input_path}: no texts")
    print(describe(p, "label").split(";")[0])
    store.begin(p)
    budget = max_tokens or (65536 if dev.type == "cuda" else CPU_TOKEN_BUDGET)
    t0 = time.perf_counter()
    run_pass(store, rows, p, ModelLabeller(lambda: (model, tokenizer), max_length, budget, dev, batch_size), desc="label")
    store.finish(p, [min(SHARD_ROWS, p["rows"] - k * SHARD_ROWS) for k in range(p["shards"])])
    pile = store.open()
    task = model_task(model.config)  # multilabel: problem_type multi_label_classification or saved thresholds
    with atomic_path(output) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(header_line(labels, task) + "\n")
        keys = _keys(files, cfg, pairs)
        for s in range(0, len(pile), 8192):
            for key, row in zip(keys, pile.logits(np.arange(s, min(s + 8192, len(pile))))):
                f.write(output_line(key, row) + "\n")
    remove_dir(store.dir)
    seconds = time.perf_counter() - t0
    print(f"label: {len(pile)} texts in {seconds:.1f}s ({len(pile) / seconds:.0f}/s) by {teacher} "
          f"({len(labels)} labels: {', '.join(labels[:8])}; {task}) "
          f"-> {output}")
    return Path(output)
