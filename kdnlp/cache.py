"""LogitCache: teacher logits for one split, row i = example i, with a fingerprint manifest.

The manifest records what the logits depend on (teacher weights, the exact examples, tokenisation). A cache whose
fingerprint differs, or whose array does not match the manifest, is stale and gets recomputed, never used.
The .npy is written first and the manifest last (both atomically), so a crash never leaves a valid-looking cache.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import UserError
from .fileio import write_json, write_npy
from .ner import TokenLogits


class LogitCache:
    def __init__(self, directory: str | Path, split: str):
        self.array_path = Path(directory) / f"{split}.npy"
        self.offsets_path = Path(directory) / f"{split}.offsets.npy"  # NER: row r = flat[offsets[r]:offsets[r+1]]
        self.manifest_path = Path(directory) / f"{split}.json"

    def load(self, fingerprint: dict) -> np.ndarray | TokenLogits | None:
        """The cached logits if present and matching `fingerprint`, else None (with the reason in `self.status`)."""
        if not self.manifest_path.is_file() or not self.array_path.is_file():
            self.status = "no cache yet"
            return None
        try:
            manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))
            logits = np.load(self.array_path, allow_pickle=False)
            offsets = np.load(self.offsets_path, allow_pickle=False) if manifest.get("ragged") else None
        except (OSError, ValueError, json.JSONDecodeError) as e:
            self.status = f"unreadable cache ({e.__class__.__name__})"
            return None
        changed = [k for k in sorted(set(fingerprint) | set(manifest.get("fingerprint", {})))
                   if manifest.get("fingerprint", {}).get(k) != fingerprint.get(k)]
        if changed:
            self.status = f"stale: {', '.join(changed)} changed"
            return None
        if list(logits.shape) != manifest.get("shape") or (
                offsets is not None and (len(offsets) != manifest.get("rows", -1) + 1 or offsets[-1] != len(logits))):
            self.status = "corrupt: array shape does not match the manifest"
            return None
        self.status = "hit"
        return TokenLogits(logits, offsets) if offsets is not None else logits

    def save(self, logits: np.ndarray | TokenLogits, fingerprint: dict, extra: dict | None = None) -> None:
        if self.manifest_path.exists():
            self.manifest_path.unlink()  # invalidate first: a crash between the writes leaves no manifest
        meta = {}
        if isinstance(logits, TokenLogits):
            write_npy(self.offsets_path, logits.offsets)
            meta = {"ragged": True, "rows": len(logits)}
            logits = logits.flat
        write_npy(self.array_path, logits.astype(np.float32))
        write_json(self.manifest_path, {"fingerprint": fingerprint, "shape": list(logits.shape), **meta, **(extra or {})})


def average_logits(each: list, names: list[str]):
    """Mean of several teachers' logits (arrays, or NER TokenLogits over the same valid positions)."""
    if isinstance(each[0], TokenLogits):
        if any(not np.array_equal(e.offsets, each[0].offsets) for e in each):
            raise UserError(f"distill.teachers: {names} label different token positions (different tokenizers or "
                            f"max_length); NER teachers must share a tokenizer to be averaged")
        return TokenLogits(np.mean([e.flat for e in each], axis=0).astype(np.float32), each[0].offsets)
    return np.mean(each, axis=0).astype(np.float32)
