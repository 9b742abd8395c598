"""The unlabelled rows and their teacher logits on disk: a directory of atomic shards, read memory-mapped.

    <dir>/manifest.json        the fingerprint, the planned rows and shards, and (once every shard is there)
                               complete: true with each shard's row count
    <dir>/shard-00000/         one fileio.atomic_dir per shard: a kill leaves a shard whole or absent
        logits.npy             float32 (rows, labels)
        text.npy, offsets.npy  the rows' texts as one UTF-8 byte blob; segment j = blob[offsets[j]:offsets[j+1]],
                               one segment per text (two per row, first then second, for sentence pairs)
        lengths.npy            int32 teacher tokens per row (the training loop's length buckets)
        meta.json              rows, sides, the fingerprint's sha256

Why not Hugging Face `datasets` (Arrow, fingerprinted map): the unit that must be atomic and resumable is the
shard (its texts and logits together), and `datasets.map` caches one file per whole map call, so a pass killed
at 90% starts again from zero; and students re-tokenise the texts with their own tokenizers, so the teacher's
encodings are never needed after a shard is written. Plain .npy files per shard give memory mapping (np.load
mmap_mode="r") with no extra dependency; parquet input is read in record batches through pyarrow.
"""
from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..fileio import atomic_dir, check_manifest, remove_dir, write_json

MANIFEST = "manifest.json"


def fingerprint_sha(fingerprint: dict) -> str:
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def pack_texts(rows: list[tuple[str, str | None]]) -> tuple[np.ndarray, np.ndarray, int]:
    """(UTF-8 blob, segment offsets, sides per row) of `rows`."""
    sides = 2 if rows and rows[0][1] is not None else 1
    encoded = [t.encode("utf-8") for row in rows for t in row[:sides]]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets, sides


class ShardStore:
    """Writes and checks the shards of one fingerprint in `directory`."""

    def __init__(self, directory: str | Path, fingerprint: dict):
        self.dir = Path(directory)
        self.fingerprint = fingerprint
        self.sha = fingerprint_sha(fingerprint)

    def shard_dir(self, k: int) -> Path:
        return self.dir / f"shard-{k:05d}"

    def manifest(self) -> dict | None:
        try:
            return json.loads((self.dir / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def shard_done(self, k: int) -> bool:
        """Shard k is on disk whole (every file at its recorded size) and was made under this fingerprint."""
        d = self.shard_dir(k)
        try:
            meta = json.loads((d / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return meta.get("fingerprint_sha256") == self.sha and check_manifest(d) is None

    def begin(self, plan: dict) -> None:
        """Start (or resume) a pass: shards of another fingerprint are removed; the manifest records the plan."""
        old = self.manifest()
        if old is not None and old.get("fingerprint_sha256") != self.sha:
            for d in sorted(self.dir.glob("shard-*")):
                remove_dir(d)
        write_json(self.dir / MANIFEST, {"fingerprint": self.fingerprint, "fingerprint_sha256": self.sha,
                                         "complete": False, **plan})

    def write_shard(self, k: int, rows: list, logits: np.ndarray, lengths: np.ndarray) -> None:
        blob, offsets, sides = pack_texts(rows)
        with atomic_dir(self.shard_dir(k)) as tmp:
            np.save(tmp / "logits.npy", np.ascontiguousarray(logits, dtype=np.float32))
            np.save(tmp / "text.npy", blob)
            np.save(tmp / "offsets.npy", offsets)
            np.save(tmp / "lengths.npy", np.asarray(lengths, dtype=np.int32))
            (tmp / "meta.json").write_text(json.dumps({"rows": len(rows), "sides": sides,
                                                       "fingerprint_sha256": self.sha}) + "\n", encoding="utf-8")

    def finish(self, plan: dict, shard_rows: list[int]) -> None:
        write_json(self.dir / MANIFEST, {"fingerprint": self.fingerprint, "fingerprint_sha256": self.sha,
                                         "complete": True, **plan, "shard_row_counts": shard_rows})

    def open(self) -> "ShardedRows | None":
        """The finished pass, memory-mapped, if the manifest is complete under this fingerprint and every shard
        is whole; else None."""
        m = self.manifest()
        if not m or not m.get("complete") or m.get("fingerprint_sha256") != self.sha:
            return None
        if not all(self.shard_done(k) for k in range(len(m["shard_row_counts"]))):
            return None
        return ShardedRows(self.dir, m["shard_row_counts"], m["n_labels"])


class ShardedRows:
    """Every unlabelled row of a finished pass: logits and texts read memory-mapped, by global row number.

    Only each shard's lengths (4 bytes a row) are read into memory; a bounded number of shards is kept open."""

    OPEN_SHARDS = 64  # each open shard holds 3 memory maps (file descriptors)

    def __init__(self, directory: Path, row_counts: list[int], n_labels: int):
        self.dir = Path(directory)
        self.counts = np.asarray(row_counts, dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)])
        self.rows = int(self.starts[-1])
        self.n_labels = n_labels
        self._open: OrderedDict[int, tuple] = OrderedDict()

    def __len__(self) -> int:
        return self.rows

    def lengths(self) -> np.ndarray:
        return np.concatenate([np.load(self.dir / f"shard-{k:05d}" / "lengths.npy") for k in range(len(self.counts))]
                              or [np.zeros(0, np.int32)])

    def _shard(self, k: int) -> tuple:
        if k in self._open:
            self._open.move_to_end(k)
            return self._open[k]
        d = self.dir / f"shard-{k:05d}"
        meta = json.loads((d / "meta.json").read_text(encoding="utf-8"))
        maps = tuple(np.load(d / f"{name}.npy", mmap_mode="r") for name in ("logits", "text", "offsets")) + (meta["sides"],)
        self._open[k] = maps
        if len(self._open) > self.OPEN_SHARDS:
            self._open.popitem(last=False)
        return maps

    def _locate(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        shard = np.searchsorted(self.starts, index, side="right") - 1
        return shard, index - self.starts[shard]

    def logits(self, index) -> np.ndarray:
        index = np.asarray(index, dtype=np.int64)
        out = np.empty((len(index), self.n_labels), dtype=np.float32)
        shard, local = self._locate(index)
        for k in np.unique(shard):
            sel = shard == k
            out[sel] = self._shard(int(k))[0][local[sel]]
        return out

    def texts(self, index) -> list[tuple[str, str | None]]:
        index = np.asarray(index, dtype=np.int64)
        shard, local = self._locate(index)
        out = []
        for k, r in zip(shard.tolist(), local.tolist()):
            _, blob, offsets, sides = self._shard(k)
            seg = [bytes(blob[offsets[j]:offsets[j + 1]]).decode("utf-8") for j in range(r * sides, r * sides + sides)]
            out.append((seg[0], seg[1] if sides == 2 else None))
        return out
