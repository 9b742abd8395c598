"""docs/config.md, generated from the config dataclasses in kdnlp/config.py:

    python -m kdnlp.configdoc > docs/config.md

The source is the documentation: each field's name, type annotation and default, its trailing `# comment` (with
the comment-only lines indented under it that continue it), comment lines at the field's own indentation as
group headings, class docstrings as section intros. Parsed with ast + tokenize, so nothing is written twice and a
field added to config.py shows up after a rerun; tests/test_configdoc.py fails while docs/config.md is stale.
"""
from __future__ import annotations

import ast
import io
import json
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

CONFIG_SOURCE = Path(__file__).with_name("config.py")
COMMAND = "python -m kdnlp.configdoc > docs/config.md"


@dataclass
class FieldDoc:
    name: str
    type: str
    default: str
    comment: str


@dataclass
class Group:
    heading: str | None  # a comment line above the fields, e.g. "bilstm"
    fields: list[FieldDoc] = field(default_factory=list)


@dataclass
class ClassDoc:
    name: str
    doc: str | None
    groups: list[Group]
    sections: dict[str, str]  # field name -> dataclass name, for fields that are whole sections (Config's)


def _comments(source: str) -> tuple[dict[int, tuple[int, str]], set[int]]:
    """{line: (column, text)} of every comment, and the lines that hold code."""
    comments, code = {}, set()
    skip = (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = (tok.start[1], tok.string.lstrip("#").strip())
        elif tok.type not in skip:
            code.update(range(tok.start[0], tok.end[0] + 1))
    return comments, code


def _literal(node: ast.AST, source: str):
    try:
        return ast.literal_eval(node)
    except ValueError:
        return _Source(ast.get_source_segment(source, node))


class _Source(str):
    """A default that is not a literal: shown as its source text."""


def _default(value: ast.AST | None, source: str, classes: set[str]) -> tuple[object, str | None]:
    """(default value, section class name if the field is a whole section)."""
    if value is None:
        return _Source("required"), None
    if isinstance(value, ast.Call) and getattr(value.func, "id", None) == "field":
        for kw in value.keywords:
            if kw.arg == "default":
                return _literal(kw.value, source), None
            if kw.arg == "default_factory":
                f = kw.value
                if isinstance(f, ast.Name) and f.id in classes:
                    return None, f.id
                if isinstance(f, ast.Lambda):
                    return _literal(f.body, source), None
                return _Source(ast.get_source_segment(source, f) + "()"), None
    return _literal(value, source), None


def parse(source: str) -> dict[str, ClassDoc]:
    """Every @dataclass in `source`, in order, with its documented fields."""
    tree = ast.parse(source)
    comments, code = _comments(source)
    classes = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    docs = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef) or not any(
                getattr(d, "id", getattr(d, "attr", None)) == "dataclass" for d in node.decorator_list):
            continue
        groups, sections = [Group(None)], {}
        prev_end = node.body[0].lineno - 1 if node.body else node.lineno
        for stmt in node.body:
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                prev_end = stmt.end_lineno
                continue
            col = stmt.col_offset
            # comment-only lines at the field's own indentation between the previous field and this one: a heading
            heading = [comments[ln][1] for ln in range(prev_end + 1, stmt.lineno)
                       if ln in comments and ln not in code and comments[ln][0] == col]
            if heading:
                groups.append(Group(" ".join(heading)))
            text = [comments[ln][1] for ln in range(stmt.lineno, stmt.end_lineno + 1) if ln in comments]
            end = stmt.end_lineno
            while end + 1 in comments and end + 1 not in code and comments[end + 1][0] > col:  # continuation lines
                end += 1
                text.append(comments[end][1])
            prev_end = end
            value, section = _default(stmt.value, source, classes)
            if section:
                sections[stmt.target.id] = section
                continue
            groups[-1].fields.append(FieldDoc(stmt.target.id, ast.get_source_segment(source, stmt.annotation),
                                              _format(value), " ".join(text)))
        docs[node.name] = ClassDoc(node.name, ast.get_docstring(node), [g for g in groups if g.fields], sections)
    return docs


def _format(value) -> str:
    """A default as it is written in YAML."""
    if isinstance(value, _Source):
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else '""'
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (list, dict)) else repr(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _prose(text: str) -> str:
    """A comment as markdown text: `<name>` would otherwise be read as an HTML tag and vanish."""
    return _cell(text).replace("<", "&lt;")


def _table(fields: list[FieldDoc], prefix: str) -> list[str]:
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    rows += [f"| `{prefix}{f.name}` | `{_cell(f.type)}` | `{_cell(f.default)}` | {_prose(f.comment)} |" for f in fields]
    return rows


def render(source: str, top_keys: list[str], root: str = "Config") -> str:
    """The markdown page: top-level keys of `root`, then one section per sub-dataclass, in `root`'s order.
    Only `top_keys` are documented (fields such as Config.source are not user keys)."""
    docs = parse(source)
    cfg = docs[root]
    module_doc = ast.get_docstring(ast.parse(source)) or ""
    out = ["# Configuration reference", "",
           f"<!-- Generated from kdnlp/config.py by `{COMMAND}`; do not edit by hand. -->", "",
           module_doc, "",
           "`kdnlp config --config X [--set ...]` prints a config with every default filled in; each training run "
           "writes the same to `<output_dir>/config.resolved.yaml`.", "",
           "## Top level", ""]
    top = [f for g in cfg.groups for f in g.fields if f.name in top_keys]
    out += _table(top, "") + [""]
    for name, cls_name in cfg.sections.items():
        if name not in top_keys:
            continue
        cls = docs[cls_name]
        out += [f"## `{name}`", ""]
        if cls.doc:
            out += [cls.doc, ""]
        for group in cls.groups:
            if group.heading:
                out += [f"*{_prose(group.heading)}*", ""]
            out += _table(group.fields, f"{name}.") + [""]
    return "\n".join(out).rstrip("\n") + "\n"


def main() -> None:
    from .config import _TOP_KEYS
    print(render(CONFIG_SOURCE.read_text(encoding="utf-8"), list(_TOP_KEYS)), end="")


if __name__ == "__main__":
    main()
