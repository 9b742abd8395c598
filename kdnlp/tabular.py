"""CSV / TSV rows for data.py: quoting decided per file (data.quoting), header-less files (data.columns), and every
row checked to have exactly the header's columns, so a row merged or split by a stray quote or tab stops the run.

Why per file: GLUE TSVs (RTE, MRPC, SST-2) must be read with quoting off: their fields may start with a literal `"`,
and CSV quoting would swallow the following lines into one field. GoEmotions instead CSV-quotes every text holding a
`"` ("..." with inner quotes doubled), which quoting off would keep verbatim.
"""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import UserError

if TYPE_CHECKING:  # a type only (tests/test_imports.py: no import circle through config.py)
    from .config import DataConfig

_QUOTED_FIELD = re.compile(r'^"(?:[^"]|"")*"$')


def _quoted(path: Path, text: str, delim: str, quoting: str) -> bool:
    """Whether to read `text` with CSV quoting. auto: CSV files yes; a TSV only when every field that holds a `"`
    is a whole CSV-quoted field ("...", inner quotes doubled), as a CSV writer leaves it (GoEmotions). GLUE TSVs
    have fields that merely start with `"` (RTE, MRPC): CSV quoting would merge their rows, so quoting stays off."""
    if quoting != "auto":
        return quoting == "csv"
    if delim == ",":
        return True
    fields = [f for line in text.splitlines() if '"' in line for f in line.split(delim) if '"' in f]
    if fields and all(_QUOTED_FIELD.match(f) for f in fields):
        print(f"data: {path}: {len(fields)} fields are CSV-quoted, reading with quoting on "
              "(set data.quoting: none if the quotes are part of the texts)")
        return True
    return False


def records_delimited(path: Path, text: str, fmt: str, cfg: DataConfig):
    """(line number, {column: value}) per row of a CSV/TSV; every row must have exactly the header's columns."""
    delim = "\t" if fmt == "tsv" else ","
    quoted = _quoted(path, text, delim, cfg.quoting)
    reader = csv.reader(io.StringIO(text), delimiter=delim, quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE)
    header = list(cfg.columns) if cfg.columns else next(reader)
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
