"""The streamed, resumable pass: read rows in chunks, label each chunk, write it as one atomic shard.

    plan()          one cheap read of the rows: how many, how many shards, about how much disk
    run_pass()      this process's missing shards (shard k goes to process k % world), with progress and ETA
    model_labeller  a teacher model over a chunk: sorted by length, batched by a token budget

Shard k always holds rows k*shard_rows .. (k+1)*shard_rows - 1 of the (deduplicated) row stream, so a rerun with
the same fingerprint, after a kill or with another process count, recomputes exactly the shards that are missing.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data import EncodedSplit, Example, token_budget_batches
from ..distributed import gather_rows
from ..inference import forward_batches
from .shards import ShardStore
from .sources import UnlabeledRows


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports kB, macOS bytes): the pass must keep it flat."""
    import resource
    import sys
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def plan(rows: UnlabeledRows, shard_rows: int, n_labels: int) -> dict:
    n, text_bytes = 0, 0
    for text, second in rows:
        n += 1
        text_bytes += len(text.encode("utf-8")) + (len(second.encode("utf-8")) if second is not None else 0)
    shards = -(-n // shard_rows)
    disk = text_bytes + n * (4 * n_labels + 4 + 8 * (1 if not rows.pairs else 2)) + shards * 2048
    return {"rows": n, "dropped_dev_test": rows.dropped, "shards": shards, "shard_rows": shard_rows,
            "n_labels": n_labels, "disk_bytes_estimate": disk}


def describe(p: dict, desc: str) -> str:
    return (f"{desc}: {p['rows']} rows planned in {p['shards']} shards of {p['shard_rows']} "
            f"(~{p['disk_bytes_estimate'] / 1e6:.1f} MB on disk); {p['dropped_dev_test']} rows dropped as equal to a "
            "dev/test text")


def run_pass(store: ShardStore, rows: UnlabeledRows, p: dict, label_chunk: Callable, rank: int = 0, world: int = 1,
             desc: str = "unlabeled", is_main: bool = True) -> list[int]:
    """Label and write this process's missing shards; returns the shard numbers it computed."""
    done = [k for k in range(p["shards"]) if store.shard_done(k)]
    todo = {k for k in range(p["shards"]) if k % world == rank and k not in set(done)}
    rows_todo = sum(min(p["shard_rows"], p["rows"] - k * p["shard_rows"]) for k in todo)
    if is_main:
        print(f"{desc}: {len(done)} of {p['shards']} shards already done (same fingerprint); computing "
              f"{len(todo)}{'' if world == 1 else f' here, the rest in {world - 1} other process(es)'}")
    bar = tqdm(total=rows_todo, unit="rows", desc=desc, disable=None if is_main else True, smoothing=0.1)
    t0, seen, computed = time.perf_counter(), 0, []
    for k, chunk in rows.chunks(p["shard_rows"]):
        if k not in todo:
            continue
        logits, lengths = label_chunk(chunk)
        store.write_shard(k, chunk, logits, lengths)
        computed.append(k)
        seen += len(chunk)
        bar.update(len(chunk))
        rate = seen / max(time.perf_counter() - t0, 1e-9)
        print(f"{desc}: shard {k} written ({len(chunk)} rows; {seen}/{rows_todo} rows, {rate:.0f} rows/s, "
              f"ETA {(rows_todo - seen) / rate:.0f}s; peak RSS {peak_rss_mb():.0f} MB)", flush=True)
    bar.close()
    return computed


class ModelLabeller:
    """A classifier's logits for chunks of (text, text_b) rows; the model is loaded at the first chunk only, so
    a pass whose shards are all done never loads the teacher's weights."""

    def __init__(self, load: Callable, max_length: int, max_tokens: int, device: torch.device,
                 max_rows: int | None = None):
        self.load, self.max_length, self.max_tokens, self.device = load, max_length, max_tokens, device
        self.max_rows = max_rows  # also at most this many rows a batch (kdnlp label --batch-size)
        self.model = self.tokenizer = None

    ENCODE_ROWS = 8192  # rows tokenised at a time: a shard's token ids (Python ints) are never all alive at once

    def __call__(self, chunk: list) -> tuple[np.ndarray, np.ndarray]:
        if self.model is None:
            self.model, self.tokenizer = self.load()
            self.model.to(self.device).eval()
        parts = [self._label(chunk[s:s + self.ENCODE_ROWS]) for s in range(0, len(chunk), self.ENCODE_ROWS)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _label(self, chunk: list) -> tuple[np.ndarray, np.ndarray]:
        data = EncodedSplit([Example(a, 0, text_b=b) for a, b in chunk], self.tokenizer, self.max_length)
        order = np.argsort(-data.lengths, kind="stable")  # longest first: similar lengths share a batch
        batches = token_budget_batches(data.lengths[order], self.max_tokens)
        if self.max_rows:
            batches = [b[i:i + self.max_rows] for b in batches for i in range(0, len(b), self.max_rows)]
        pieces = forward_batches(self.model, (data.collate(order[pos]) for pos in batches), self.device)
        return gather_rows(pieces, len(data), self.model.config.num_labels), data.lengths.astype(np.int32)
