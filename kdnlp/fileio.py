"""Atomic writes: a reader never sees a half-written checkpoint, cache or report."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _usual_mode(path: Path, is_dir: bool) -> None:
    """mkstemp/mkdtemp create owner-only (0600/0700) entries; give the final file the mode open() would have."""
    os.chmod(path, (0o777 if is_dir else 0o666) & ~_umask())


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temp path next to `path`; on success fsync and rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        _usual_mode(Path(tmp), is_dir=False)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def write_npy(path: str | Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


MANIFEST = "kdnlp_manifest.json"  # written last into every checkpoint directory: file -> size in bytes


def _fsync_tree(root: Path) -> None:
    for p in root.rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
        elif p.is_dir():
            _fsync_dir(p)


def recover_dir(path: str | Path) -> bool:
    """Undo a swap that atomic_dir could not finish (killed between its two renames): if `path` is missing but
    its `.old` copy exists, put the old copy back. Also removes abandoned temp directories. True if recovered."""
    path = Path(path)
    old = path.with_name(f".{path.name}.old")
    leftover = re.compile(rf"\.{re.escape(path.name)}\.([A-Za-z0-9_]{{8}}\.tmp|deleting)")
    for p in path.parent.iterdir() if path.parent.is_dir() else []:
        if p.is_dir() and leftover.fullmatch(p.name):  # a writer (or deleter) killed part-way; never read
            shutil.rmtree(p, ignore_errors=True)
    if old.is_dir() and not path.exists():
        os.replace(old, path)
        _fsync_dir(path.parent)
        return True
    if old.is_dir():  # the swap finished; only the cleanup was cut short
        shutil.rmtree(old, ignore_errors=True)
    return False


def check_manifest(path: str | Path) -> str | None:
    """None if every file the manifest lists is there with its recorded size, else what is wrong.
    Directories written before manifests existed (no manifest) pass."""
    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        return f"unreadable {MANIFEST} ({e.__class__.__name__})"
    for name, size in manifest.get("files", {}).items():
        f = path / name
        if not f.is_file():
            return f"{name} is missing"
        if f.stat().st_size != size:
            return f"{name} has {f.stat().st_size} bytes, the manifest says {size} (truncated or changed)"
    return None


@contextmanager
def atomic_dir(path: str | Path):
    """Yield a temp directory; on success write its manifest, fsync everything and swap it in place of `path`.

    The swap is two renames (path -> .path.old, tmp -> path). A kill between them leaves only .path.old, which
    recover_dir (called here and by every loader) renames back: the previous checkpoint is never lost."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_dir(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        files = {str(p.relative_to(tmp)): p.stat().st_size for p in sorted(tmp.rglob("*")) if p.is_file()}
        (tmp / MANIFEST).write_text(json.dumps({"files": files}, indent=2) + "\n", encoding="utf-8")
        _fsync_tree(tmp)
        _fsync_dir(tmp)
        _usual_mode(tmp, is_dir=True)
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def remove_dir(path: str | Path) -> None:
    """Delete a directory so that a kill part-way never leaves a half-deleted one under its name."""
    path = Path(path)
    if not path.exists():
        return
    trash = path.with_name(f".{path.name}.deleting")
    shutil.rmtree(trash, ignore_errors=True)
    os.replace(path, trash)
    _fsync_dir(path.parent)
    shutil.rmtree(trash, ignore_errors=True)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def dir_size(path: str | Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())
