"""Resume state: everything Trainer.fit needs to continue from the last completed epoch, as if never stopped.

`<output_dir>/<name>.resume/` (next to the best checkpoint `<output_dir>/<name>/`, which is never touched here) is
rewritten atomically before the first epoch and after every completed epoch. It holds the CURRENT model weights (not
the best), the optimizer, the LR scheduler, the python / numpy / torch RNG states (global ones and the batch
shuffler's), fit's `state` dict (best dev score, evaluations without improvement, step, history) and the next epoch.
`resume.json` is written last and carries a fingerprint of everything the run depends on (the config sections that
shape this model, the exact train/dev examples, the teacher logits), so `--resume` after a config change is
refused with the names of the changed keys. A run that finishes deletes its resume state.

A kill at any moment leaves either the previous resume state or the new one (see fileio.atomic_dir), never a mix.
Ctrl-C needs nothing extra: the last completed epoch is already on disk, the CLI exits 130 and says how to resume.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from pathlib import Path

import numpy as np
import torch

from .errors import UserError
from .fileio import atomic_dir, check_manifest, recover_dir, remove_dir

STATE_FILE = "state.pt"
META_FILE = "resume.json"
# Keys that may change between an interrupted run and its --resume: where it runs, not what it computes.
NOT_FINGERPRINTED = {"train.device", "train.threads", "train.report_to"}


def _flat(prefix: str, obj) -> dict:
    return {f"{prefix}.{k}": v for k, v in dataclasses.asdict(obj).items()}


def run_fingerprint(cfg, hp, splits, teacher_logits=None) -> dict:
    """What a fit() of `hp` (cfg.teacher, cfg.student or cfg.pretrain) depends on, as flat `key: value` pairs."""
    if hp is cfg.teacher:
        sections = ["data", "teacher", "train"]
    elif hp is cfg.pretrain:  # kdnlp pretrain: the corpus is in the train/dev examples below
        sections = ["data", "teacher", "pretrain", "train"]
    else:
        sections = ["data", "teacher", "student", "distill", "augment", "train"]
    values = {"task": cfg.task}
    for s in sections:
        values.update(_flat(s, getattr(cfg, s)))
    values = {k: v for k, v in values.items() if k not in NOT_FINGERPRINTED}
    values["train examples (sha256)"] = splits.fingerprint("train")
    values["dev examples (sha256)"] = splits.fingerprint("dev")
    if hasattr(teacher_logits, "fingerprint"):  # data.unlabeled: memory-mapped shards, hashed by their pass
        values["teacher logits (sha256)"] = teacher_logits.fingerprint
    elif teacher_logits is not None:
        flat = getattr(teacher_logits, "flat", teacher_logits)  # TokenLogits (NER) or an array
        values["teacher logits (sha256)"] = hashlib.sha256(np.ascontiguousarray(flat).tobytes()).hexdigest()
    return json.loads(json.dumps(values, default=str))  # the form it has after a round trip through resume.json


def _digest(values: dict) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode("utf-8")).hexdigest()


def rng_states(rng: random.Random) -> dict:
    np_state = np.random.get_state()
    return {"python": random.getstate(), "numpy": (np_state[0], np_state[1].tolist(), *np_state[2:]),
            "torch": torch.get_rng_state(), "shuffle": rng.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_states(states: dict, rng: random.Random) -> None:
    random.setstate(states["python"])
    name, key, *rest = states["numpy"]
    np.random.set_state((name, np.array(key, dtype=np.uint32), *rest))
    torch.set_rng_state(states["torch"])
    rng.setstate(states["shuffle"])
    if states["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class ResumePoint:
    """The resume state of one fit() run: save() after each epoch, restore() for --resume, clear() when done."""

    def __init__(self, path: Path, fingerprint: dict):
        self.path = Path(path)
        self.fingerprint = fingerprint
        self.digest = _digest(fingerprint)

    def _changed(self, recorded: dict) -> list[str]:
        keys = sorted(set(recorded) | set(self.fingerprint))
        return [f"{k}: {recorded.get(k)!r} -> {self.fingerprint.get(k)!r}" if "sha256" not in k else k
                for k in keys if recorded.get(k) != self.fingerprint.get(k)]

    def save(self, model, optimizer, scheduler, rng: random.Random, state: dict, next_epoch: int, extra=None) -> None:
        """`extra`: a module trained alongside the model but not saved with it (e.g. intermediate projections)."""
        with atomic_dir(self.path) as tmp:
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "rng": rng_states(rng), "state": state,
                        "extra": extra.state_dict() if extra is not None else None},
                       tmp / STATE_FILE)
            (tmp / META_FILE).write_text(json.dumps(
                {"next_epoch": next_epoch, "step": state["step"], "fingerprint_sha256": self.digest,
                 "fingerprint": self.fingerprint}, indent=2) + "\n", encoding="utf-8")

    def begin(self, resume: bool, model, optimizer, scheduler, rng: random.Random, state: dict, extra=None,
              writer: bool = True) -> int:
        """The epoch fit() starts with: with `resume`, the saved one (objects restored in place), else 1 (a fresh
        run drops any old resume state, so a later --resume can never mix two runs). With several processes only
        the `writer` (main process) deletes; every process restores the same state."""
        state["fingerprint_sha256"] = self.digest
        if not resume:
            if writer:
                self.clear()
            return 1
        return self.restore(model, optimizer, scheduler, rng, state, extra)

    def restore(self, model, optimizer, scheduler, rng: random.Random, state: dict, extra=None) -> int:
        """Load the resume state into the given objects; return the epoch to start with (1: nothing to resume)."""
        recover_dir(self.path)
        meta_path = self.path / META_FILE
        if not meta_path.is_file():
            print(f"resume: no resume state at {self.path}; starting from the beginning")
            return 1
        problem = check_manifest(self.path)
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            problem = problem or f"unreadable {META_FILE} ({e.__class__.__name__})"
        if problem:
            raise UserError(f"{self.path}: resume state is damaged ({problem}); rerun without --resume to start over")
        if meta.get("fingerprint_sha256") != self.digest:
            changed = self._changed(meta.get("fingerprint", {}))
            raise UserError(f"{self.path}: the config or data changed since this resume state was written "
                            f"({'; '.join(changed[:5]) or 'fingerprint'}); change it back, or rerun without "
                            f"--resume to start over")
        saved = torch.load(self.path / STATE_FILE, map_location="cpu", weights_only=True)
        model.load_state_dict(saved["model"])
        if extra is not None:
            extra.load_state_dict(saved["extra"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        set_rng_states(saved["rng"], rng)
        state.clear()
        state.update(saved["state"])
        print(f"resume: continuing from {self.path} at epoch {meta['next_epoch']} (step {meta['step']})")
        return int(meta["next_epoch"])

    def finished_run(self, save_dir: Path) -> dict | None:
        """The train log of a run with this fingerprint that already finished (nothing to resume), else None."""
        recover_dir(save_dir)
        recover_dir(self.path)
        log = Path(save_dir) / "train_log.json"
        if self.path.exists() or not log.is_file():
            return None
        try:
            state = json.loads(log.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return state if state.get("fingerprint_sha256") == self.digest else None

    def clear(self) -> None:
        remove_dir(self.path)
