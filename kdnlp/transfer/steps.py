"""data.unlabeled in a distill run: checked by preflight, labelled once by the run's teacher, then streamed to fit.

    check(trainer)           preflight: the files, their shape vs the task, and what can label them
    label_pile(trainer)      the pass (kdnlp/transfer/cache_pass.py) into <out>/logits/unlabeled/, reused when whole
    with_pile(trainer, ...)  train_student's transfer set + logits, extended by the pile

Any teacher labels the pile: one that kdnlp fine-tunes (it is trained on the labelled data first; the pile is
labelled afterwards), teacher.fine_tuned, several averaged (distill.teachers), or teacher.outputs when its file has
a row for every unlabelled text.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..fileio import sha256_file
from ..modeldir import load_model_dir
from ..teacher_outputs import text_key
from .cache_pass import ModelLabeller, describe, plan, run_pass
from .mixed import MixedLogits, UnlabeledTransferSet
from .shards import ShardStore
from .sources import UnlabeledRows, check_files, exclusion_keys

CPU_TOKEN_BUDGET = 4096  # tokens per inference batch on the CPU when train.eval_tokens is unset: 2-layer
# hidden-128 BERT, 10k SST-2 rows, 1 thread, loaded machine: 2141 rows/s vs 2115 (8192), 1902 (2048), 1735 (64 rows)


def _pairs(trainer) -> bool:
    return any(getattr(e, "text_b", None) is not None for e in trainer.splits.test)


def check(trainer) -> None:
    cfg = trainer.cfg
    if not cfg.data.unlabeled:
        return
    check_files(cfg.data.unlabeled, cfg.data, _pairs(trainer))
    if cfg.teacher.outputs is not None and trainer.supplied_outputs().key_kind == "id":
        raise UserError(f"teacher.outputs: {cfg.teacher.outputs} refers to rows by id; unlabelled rows have no ids, "
                        "so key its rows by text ({\"text\": ...}) to label data.unlabeled")


def _outputs_labeller(outputs):
    index = outputs.lookup()

    def label(chunk: list) -> tuple[np.ndarray, np.ndarray]:
        keys = [text_key(a, b) for a, b in chunk]
        missing = next((k for k in keys if k not in index), None)
        if missing is not None:
            raise UserError(f"teacher.outputs: {outputs.path} has no row for the unlabelled text '{missing[:60]}'; "
                            "label the files first (kdnlp label --input <file> --teacher <model>) and append them")
        lengths = np.array([len(a.split()) + len((b or "").split()) for a, b in chunk], dtype=np.int32)
        return outputs.logits[[index[k] for k in keys]], lengths
    return label


def teacher_dirs(trainer) -> list[Path]:
    """The model folders that label the pile: the run's teacher, or each of distill.teachers ("teacher": the run's)."""
    own = trainer.out / "teacher"
    return [own if t == "teacher" else Path(t) for t in trainer.cfg.distill.teachers or []] or [own]


def _loader(trainer, tdir: Path):
    def load():
        model, tokenizer, labels = load_model_dir(tdir, trainer.cfg.task)
        trainer._check_labels(labels, tdir)
        return model, tokenizer
    return load


def _averaged(labellers: list):
    """distill.teachers: the mean of the teachers' logits for each chunk, as for the labelled rows
    (cache.average_logits); each teacher is loaded at the first chunk and kept for the pass."""
    def label(chunk: list) -> tuple[np.ndarray, np.ndarray]:
        parts = [one(chunk) for one in labellers]
        return np.mean([p[0] for p in parts], axis=0).astype(np.float32), parts[0][1]
    return label


def pile_rows(trainer) -> tuple[list, UnlabeledRows]:
    """data.unlabeled's files, and their rows as the pass reads them (dev/test repeats dropped): what the pass
    labels, and what student vocabularies are built from (PipelineSteps.all_train_texts)."""
    cfg, pairs = trainer.cfg, _pairs(trainer)
    files = check_files(cfg.data.unlabeled, cfg.data, pairs)
    return files, UnlabeledRows(files, cfg.data, pairs, exclusion_keys(trainer.splits.dev + trainer.splits.test))


def label_pile(trainer):
    """(the pile's rows and logits, memory-mapped; the pass's fingerprint sha256)."""
    cfg, splits = trainer.cfg, trainer.splits
    files, rows = pile_rows(trainer)
    pairs, exclude = rows.pairs, rows.exclude
    d = cfg.data
    # the files by content and order, not by path: moved or renamed files (another working directory, relative vs
    # absolute paths) reuse their shards instead of being labelled again
    fingerprint = {"files": [sha256_file(p) for p in files], "labels": splits.labels, "pairs": pairs,
                   "text_field": d.text_field, "text_pair_field": d.text_pair_field, "shard_rows": d.unlabeled_shard_rows,
                   "dev_test_sha256": hashlib.sha256("\n".join(sorted(exclude)).encode("utf-8")).hexdigest()}
    if cfg.teacher.outputs is not None:
        outputs = trainer.supplied_outputs()
        fingerprint["teacher_outputs_sha256"] = sha256_file(outputs.path)
        labeller = _outputs_labeller(outputs)
    else:
        trainer.import_fine_tuned()
        dirs = teacher_dirs(trainer)
        if len(dirs) == 1:
            fingerprint.update(trainer._cache_fingerprint(dirs[0], None))
        else:
            fingerprint["teachers"] = [trainer._cache_fingerprint(t, None) for t in dirs]
        budget = cfg.train.eval_tokens or (65536 if trainer.device.type == "cuda" else CPU_TOKEN_BUDGET)
        labellers = [ModelLabeller(_loader(trainer, t), d.max_length, budget, trainer.device) for t in dirs]
        labeller = labellers[0] if len(labellers) == 1 else _averaged(labellers)
    store = ShardStore(trainer.out / "logits" / "unlabeled", fingerprint)
    pile = store.open()
    if pile is not None:
        print(f"unlabeled: reusing {store.dir} ({len(pile)} rows, fingerprint matches)")
        return pile, store.sha
    acc = trainer.accelerator
    p = plan(rows, d.unlabeled_shard_rows, len(splits.labels))
    if trainer.is_main:
        print(describe(p, "unlabeled"))
        store.begin(p)
    acc.wait_for_everyone()
    run_pass(store, rows, p, labeller, acc.process_index, acc.num_processes, "unlabeled", trainer.is_main)
    acc.wait_for_everyone()
    if trainer.is_main:
        missing = [k for k in range(p["shards"]) if not store.shard_done(k)]
        if missing:
            raise RuntimeError(f"unlabeled: shards {missing[:10]} are missing after the pass")
        store.finish(p, [min(p["shard_rows"], p["rows"] - k * p["shard_rows"]) for k in range(p["shards"])])
    acc.wait_for_everyone()
    return store.open(), store.sha


def with_pile(trainer, examples: list, logits: np.ndarray):
    """(train_examples, teacher_logits) for fit: `examples` and their logits, then every unlabelled row."""
    pile, sha = label_pile(trainer)
    print(f"transfer set: {len(examples)} rows + {len(pile)} unlabelled rows (teacher term only), streamed from "
          f"{trainer.out / 'logits' / 'unlabeled'}")
    return UnlabeledTransferSet(examples, pile), MixedLogits(np.asarray(logits, dtype=np.float32), pile, sha)
