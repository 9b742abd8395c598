"""Data files -> records, streamed: the one reader of JSON / JSON lines / CSV / TSV, for labelled splits (data.py),
unlabelled text and `kdnlp label` (transfer/sources.py) and teacher outputs (teacher_outputs.py).

    records(path, cfg)     (format, (where, {field: value}) per row), read line by line (a .json array: whole)
    read_text(path)        a whole file, with one clear line for a missing, unreadable, non-UTF-8 or empty file
    pick_text_field / pick_pair_field    which field holds the text, and the second text of a pair

CSV / TSV: quoting is decided per file (data.quoting), header-less files take data.columns, and every row must have
exactly the header's columns, so a row merged or split by a stray quote or tab stops the run. Why per file: GLUE
TSVs (RTE, MRPC, SST-2) must be read with quoting off: their fields may start with a literal `"`, and CSV quoting
would swallow the following lines into one field. GoEmotions instead CSV-quotes every text holding a `"` ("..."
with inner quotes doubled), which quoting off would keep verbatim. quoting: auto looks at the first SAMPLE_BYTES.
"""
from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

from .errors import UserError
from .pairs import auto_pair_fields, find_field

if TYPE_CHECKING:  # a type only (tests/test_imports.py: no import circle through config.py)
    from .config import DataConfig

TEXT_FIELDS = ("text", "sentence", "content")
SAMPLE_BYTES = 4 << 20  # what format and quoting detection read of a file: all of it up to 4 MB
_QUOTED_FIELD = re.compile(r'^"(?:[^"]|"")*"$')


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise UserError(f"{path}: is a directory, not a data file; point the config at the file inside it")
    if not path.is_file():
        raise UserError(f"{path}: file not found (check data.train/dev/test in the config; see data/README.md)")


def _not_utf8(path: Path, offset: int) -> UserError:
    return UserError(f"{path}: not UTF-8 (invalid byte at offset {offset}); re-save the file as UTF-8")


def read_text(path: Path) -> str:
    _check_file(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise UserError(f"{path}: cannot read the file ({e.strerror or e}); check its permissions") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise _not_utf8(path, e.start) from None
    if not text.strip():
        raise UserError(f"{path}: file is empty; check the path in the config or fill the file")
    return text


def lines(path: Path) -> Iterator[str]:
    """The file's lines, ends kept (what csv.reader wants), read as they are needed; a line that is not UTF-8 is
    one error naming it (decoded line by line: a text decoder's chunks would hide which line it was)."""
    try:
        with path.open("rb") as f:
            for n, raw in enumerate(f, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise UserError(f"{path} line {n}: not UTF-8 (invalid byte at column {e.start + 1}); re-save the "
                                    "file as UTF-8") from None
                yield line[1:] if n == 1 and line.startswith("\ufeff") else line
    except OSError as e:
        raise UserError(f"{path}: cannot read the file ({e.strerror or e}); check its permissions") from None


def sample(path: Path) -> str:
    """The head of a file (up to SAMPLE_BYTES, cut at a line end), for format and quoting detection."""
    _check_file(path)
    try:
        with path.open("rb") as f:
            raw = f.read(SAMPLE_BYTES)
    except OSError as e:
        raise UserError(f"{path}: cannot read the file ({e.strerror or e}); check its permissions") from None
    if len(raw) == SAMPLE_BYTES and b"\n" in raw:
        raw = raw[:raw.rindex(b"\n") + 1]
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise _not_utf8(path, e.start) from None


def detect_format(path: Path, fmt: str, head: str) -> str:
    if fmt != "auto":
        return fmt
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv", ".jsonl"):
        return suffix[1:]
    if suffix == ".json":
        # The seed's files are one JSON array; CLUE's *.json files are JSON lines.
        return "json" if head.lstrip().startswith("[") else "jsonl"
    if head.lstrip().startswith(("[", "{")):
        return "json" if head.lstrip().startswith("[") else "jsonl"
    return "tsv"


def pick_text_field(path: Path, keys, text_field: str) -> str:
    if text_field != "auto":
        if text_field not in keys:
            raise UserError(f"{path}: no field '{text_field}' (fields: {', '.join(map(str, keys))}); set data.text_field")
        return text_field
    # auto: up to case (headers such as Sentence1 / Sentence2 or Text are common); a pair file's first side is its text
    pair = auto_pair_fields(keys)
    if pair is not None:
        return pair[0]
    for name in TEXT_FIELDS:
        if (found := find_field(keys, name)) is not None:
            return found
    raise UserError(f"{path}: no text field among {', '.join(map(str, keys))}; set data.text_field")


def pick_pair_field(path: Path, keys, text_field: str, pair_field: str) -> str | None:
    """The second text's field: data.text_pair_field, or the partner of a known pair (sentence1 -> sentence2)."""
    if pair_field == "none":
        return None
    if pair_field != "auto":
        if pair_field not in keys:
            raise UserError(f"{path}: no field '{pair_field}' (fields: {', '.join(map(str, keys))}); set data.text_pair_field")
        return pair_field
    pair = auto_pair_fields(keys)
    return pair[1] if pair is not None and pair[0] == text_field else None


def records_json(path: Path, source: str | Iterable[str], fmt: str):
    """(where, record) of a JSON array (`source`: the whole text) or of JSON lines (the text, or its lines)."""
    if fmt == "json":
        try:
            data = json.loads(source if isinstance(source, str) else "".join(source))
        except json.JSONDecodeError as e:
            raise UserError(f"{path} line {e.lineno}: invalid JSON ({e.msg}); expected an array of objects") from None
        if not isinstance(data, list):
            raise UserError(f"{path}: expected a JSON array of objects like [{{\"text\": ..., \"label\": ...}}]")
        # Line numbers are not kept by json.loads; report the record number instead.
        for i, rec in enumerate(data, 1):
            yield f"record {i}", rec
        return
    for lineno, line in enumerate(source.splitlines() if isinstance(source, str) else source, 1):
        if not line.strip():
            continue
        try:
            yield f"line {lineno}", json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path} line {lineno}: invalid JSON ({e.msg})") from None


def csv_quoted(path: Path, head: str, delim: str, quoting: str) -> bool:
    """Whether to read a CSV/TSV with CSV quoting. auto: CSV files yes; a TSV only when every field of `head` that
    holds a `"` is a whole CSV-quoted field ("...", inner quotes doubled), as a CSV writer leaves it (GoEmotions).
    GLUE TSVs have fields that merely start with `"` (RTE, MRPC): CSV quoting would merge their rows."""
    if quoting != "auto":
        return quoting == "csv"
    if delim == ",":
        return True
    fields = [f for line in head.splitlines() if '"' in line for f in line.split(delim) if '"' in f]
    if fields and all(_QUOTED_FIELD.match(f) for f in fields):
        print(f"data: {path}: {len(fields)} fields are CSV-quoted, reading with quoting on "
              "(set data.quoting: none if the quotes are part of the texts)")
        return True
    return False


def records_delimited(path: Path, source: str | Iterable[str], fmt: str, cfg: DataConfig, head: str | None = None):
    """(where, {column: value}) per row of a CSV/TSV (`source`: the text or its lines; `head`: what quoting is
    decided on, by default the text); every row must have exactly the header's columns."""
    delim = "\t" if fmt == "tsv" else ","
    quoted = csv_quoted(path, source if head is None else head, delim, cfg.quoting)
    reader = csv.reader(io.StringIO(source) if isinstance(source, str) else source, delimiter=delim,
                        quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE)
    header = list(cfg.columns) if cfg.columns else next(reader, [])
    for rec in reader:
        if not rec:
            continue
        # a TSV text never spans lines: a quoted one that does is an opening quote that swallowed line ends
        if quoted and delim == "\t" and any("\n" in f or "\r" in f for f in rec):
            raise UserError(f"{path} line {reader.line_num}: a quoted field runs over several lines (rows merged by "
                            "a stray quote?); set data.quoting: none, or fix the quotes")
        if len(rec) != len(header):  # a merged or split row is data loss: never guess
            raise UserError(f"{path} line {reader.line_num}: expected {len(header)} {fmt.upper()} columns, got "
                            f"{len(rec)} (columns: {', '.join(header)}); fix the row"
                            + ("" if cfg.quoting != "auto" else " or set data.quoting (none|csv)"))
        yield f"line {reader.line_num}", dict(zip(header, rec))


def records(path: Path, cfg: DataConfig) -> tuple[str, Iterator[tuple[str, dict]]]:
    """A JSON / JSON lines / CSV / TSV file -> (its format, (where, record) per row, streamed). data.format picks
    the format (auto: the suffix, else the first character); a JSON array is the one format read whole."""
    head = sample(path)
    if not head.strip():
        raise UserError(f"{path}: file is empty; check the path in the config or fill the file")
    fmt = detect_format(path, cfg.format, head)
    if fmt in ("json", "jsonl"):
        return fmt, records_json(path, lines(path), fmt)
    return fmt, records_delimited(path, lines(path), fmt, cfg, head=head)
