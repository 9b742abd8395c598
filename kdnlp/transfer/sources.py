"""data.unlabeled: files and globs of unlabelled in-domain text, read as a stream of rows, never all at once.

    resolve()        the config's specs -> files (a glob that matches nothing, a missing or empty file: one line)
    check_files()    preflight: each file's format, its text column(s), pairs vs single texts (reads one row each)
    UnlabeledRows    the rows of every file in order, blank rows skipped, rows equal to a dev/test text dropped
    TrainTexts       the labelled training texts, then the pile's: what student vocabularies are built from

Formats: .txt (one text per line; for a sentence-pair task, two tab-separated texts), .jsonl / .csv / .tsv (read
line by line by kdnlp/readers.py, as labelled files are: the same quoting rules), .json (one JSON array: read whole,
or JSON lines), .parquet (record batches through pyarrow). Data files pick
their text (and pair) field as the labelled data do (data.text_field, data.text_pair_field); a label column, if
any, is ignored.
"""
from __future__ import annotations

import dataclasses
import glob
import unicodedata
from pathlib import Path
from typing import Iterator

from ..errors import UserError
from ..readers import lines, pick_pair_field, pick_text_field, records

FORMATS = (".txt", ".jsonl", ".json", ".csv", ".tsv", ".parquet")


def normalise(text: str) -> str:
    """The form two texts are compared in: Unicode NFC, whitespace runs collapsed to one space, ends stripped."""
    return unicodedata.normalize("NFC", " ".join(text.split()))


def row_key(text: str, text_b: str | None) -> str:
    return normalise(text) if text_b is None else normalise(text) + "\t" + normalise(text_b)


def resolve(specs) -> list[Path]:
    """data.unlabeled (a path, a glob, or a list of them) -> the files, in order, each once."""
    specs = [specs] if isinstance(specs, str) else list(specs)
    files: list[Path] = []
    for spec in specs:
        if any(c in spec for c in "*?["):
            found = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
            if not found:
                raise UserError(f"data.unlabeled: '{spec}' matches no file; check the pattern (relative paths are "
                                "relative to where kdnlp runs)")
        else:
            found = [Path(spec)]
            if not found[0].is_file():
                raise UserError(f"data.unlabeled: {spec}: file not found")
        for p in found:
            if p.suffix.lower() not in FORMATS:
                raise UserError(f"data.unlabeled: {p}: unknown format '{p.suffix}'; use {', '.join(FORMATS)}")
            if p.stat().st_size == 0:
                raise UserError(f"data.unlabeled: {p}: file is empty; fill it or drop it from data.unlabeled")
            if p not in files:
                files.append(p)
    return files


def _txt(path: Path, pairs: bool) -> Iterator[tuple[str, tuple]]:
    for lineno, line in enumerate(lines(path), 1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        if not pairs:
            yield f"line {lineno}", (line, None)
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise UserError(f"data.unlabeled: {path} line {lineno}: a sentence-pair task needs two tab-separated "
                            f"texts per line, got {len(parts)} field(s)")
        yield f"line {lineno}", (parts[0], parts[1])


def _records(path: Path, cfg) -> Iterator[tuple[str, dict]]:
    """kdnlp/readers.py's records, the format from the suffix (data.format is the labelled files'), and parquet."""
    if path.suffix.lower() != ".parquet":
        yield from records(path, dataclasses.replace(cfg, format="auto"))[1]
        return
    import pyarrow.parquet as pq
    n = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=8192):
        for rec in batch.to_pylist():
            n += 1
            yield f"row {n}", rec


def _fields(path: Path, cfg, keys: list) -> tuple[str, str | None]:
    try:
        field = pick_text_field(path, keys, cfg.text_field)
        return field, pick_pair_field(path, keys, field, cfg.text_pair_field)
    except UserError as e:
        raise UserError(f"data.unlabeled: {e}") from None


def file_has_pairs(path: Path, cfg) -> bool:
    """Whether a data file's rows are sentence pairs (its first row's fields; a .txt holds single texts)."""
    if path.suffix.lower() == ".txt":
        return False
    first = next(_records(path, cfg), None)
    return first is not None and isinstance(first[1], dict) and _fields(path, cfg, list(first[1]))[1] is not None


def read_rows(path: Path, cfg, pairs: bool, ids: bool = False) -> Iterator[tuple[str, tuple]]:
    """(where, (text, text_b or None)) for every non-blank row of one file; ids=True: (where, (text, text_b, id or
    None)), the id from data.id_field (kdnlp label keys its output rows by it)."""
    if path.suffix.lower() == ".txt":
        for where, row in _txt(path, pairs):
            yield where, row + (None,) if ids else row
        return
    field = pair = None
    for where, rec in _records(path, cfg):
        if not isinstance(rec, dict):
            raise UserError(f"data.unlabeled: {path} {where}: expected an object with a text field")
        if field is None:
            field, pair = _fields(path, cfg, list(rec))
            if (pair is not None) != pairs:
                raise UserError(f"data.unlabeled: {path}: " + (
                    f"has sentence pairs ({field}, {pair}) but the labelled data are single texts; set "
                    "data.text_pair_field: none to read only the first text, or give single texts" if pair else
                    f"has single texts ({field}) but the labelled data are sentence pairs; give both texts "
                    "(data.text_pair_field names the second)"))
        text, second = rec.get(field), rec.get(pair) if pair else None
        if not isinstance(text, str) or not text.strip() or (pair and (not isinstance(second, str) or not second.strip())):
            continue  # a blank or missing text: nothing to label
        rid = rec.get(cfg.id_field) if ids else None
        yield where, (text, second, None if rid is None else str(rid)) if ids else (text, second)


def check_files(specs, cfg, pairs: bool) -> list[Path]:
    """Preflight: every file exists, is non-empty, and its first row has the text field(s) the task needs."""
    files = resolve(specs)
    for path in files:
        if path.suffix.lower() == ".parquet":
            try:
                import pyarrow.parquet as pq
            except ImportError:
                raise UserError(f"data.unlabeled: {path}: reading .parquet needs pyarrow: pip install "
                                f"'kdnlp[parquet]' (or pyarrow), or give the texts as .txt/.jsonl") from None
            try:
                schema = pq.read_schema(path)
            except Exception as e:  # pyarrow raises ArrowInvalid and friends for a non-parquet file
                raise UserError(f"data.unlabeled: {path}: not a readable parquet file ({e.__class__.__name__})") from None
            field, pair = _fields(path, cfg, list(schema.names))
            if (pair is not None) != pairs:
                next(read_rows(path, cfg, pairs), None)  # the shape error, with its wording
        if next(read_rows(path, cfg, pairs), None) is None:
            raise UserError(f"data.unlabeled: {path}: no non-blank text; fill it or drop it from data.unlabeled")
    return files


class UnlabeledRows:
    """The rows of every file, in order: blank rows skipped, rows whose normalised text equals a dev or test text
    dropped (counted in `dropped`). Iterating twice gives the same rows (the shard layout depends on it)."""

    def __init__(self, files: list[Path], cfg, pairs: bool, exclude: set[str]):
        self.files, self.cfg, self.pairs, self.exclude = files, cfg, pairs, exclude
        self.dropped = 0

    def __iter__(self) -> Iterator[tuple[str, str | None]]:
        self.dropped = 0
        for path in self.files:
            for _, (text, second) in read_rows(path, self.cfg, self.pairs):
                text, second = text.strip(), second.strip() if second is not None else None
                if self.exclude and row_key(text, second) in self.exclude:
                    self.dropped += 1
                    continue
                yield text, second

    def chunks(self, size: int) -> Iterator[tuple[int, list]]:
        """(chunk number, up to `size` rows) in order: shard k holds rows k*size .. (k+1)*size - 1."""
        chunk, k = [], 0
        for row in self:
            chunk.append(row)
            if len(chunk) == size:
                yield k, chunk
                chunk, k = [], k + 1
        if chunk:
            yield k, chunk


def exclusion_keys(examples) -> set[str]:
    """Normalised dev/test texts (a pair: both sides together), which unlabelled rows must not repeat."""
    keys = set()
    for e in examples:
        b = getattr(e, "text_b", None)
        keys.add(row_key(e.text, b))
    return keys


class TrainTexts:
    """Every training text (both sides of pairs), then every pile text: what vocabularies (a static or BiLSTM
    student's words, a from-scratch teacher's vocab.txt) are built from, so words seen only in the pile are in
    them. Streamed from the files on each iteration (a builder may pass twice), never held all at once."""

    def __init__(self, labelled: list[str], pile: UnlabeledRows):
        self.labelled, self.pile = labelled, pile

    def __iter__(self) -> Iterator[str]:
        yield from self.labelled
        for text, second in self.pile:
            yield text
            if second is not None:
                yield second
