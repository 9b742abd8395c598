"""docs/config.md is generated from kdnlp/config.py (kdnlp/configdoc.py) and must not go stale."""
import dataclasses
from pathlib import Path

from kdnlp import config
from kdnlp.configdoc import COMMAND, CONFIG_SOURCE, parse, render

DOC = Path(__file__).resolve().parents[1] / "docs" / "config.md"


def test_docs_config_md_is_fresh():
    expected = render(CONFIG_SOURCE.read_text(encoding="utf-8"), list(config._TOP_KEYS))
    assert DOC.is_file(), f"docs/config.md is missing: run `{COMMAND}`"
    assert DOC.read_text(encoding="utf-8") == expected, f"docs/config.md is stale: run `{COMMAND}`"


def test_every_user_key_is_documented_with_its_default():
    text = DOC.read_text(encoding="utf-8")
    for section, cls in config._SECTION_CLASSES.items():
        for f in dataclasses.fields(cls):
            assert f"| `{section}.{f.name}` |" in text, f"{section}.{f.name} missing from docs/config.md"
    assert "| `data.max_length` | `int` | `128` |" in text
    assert "source" not in [line.split("`")[1] for line in text.splitlines() if line.startswith("| `")]


SYNTHETIC = '''"""Module intro."""
from dataclasses import dataclass, field


@dataclass
class PartConfig:
    """Part section intro."""
    size: int = 3                     # how big
    # group heading
    names: list = field(default_factory=lambda: ["a", "b"])  # first line
                                      # continued here | with a pipe
    path: Optional[str] = None        # <output_dir>/x
    plain: str = "x"


@dataclass
class Config:
    task: str = "t"
    part: PartConfig = field(default_factory=PartConfig)
    output_dir: Optional[str] = None  # where
    source: str = "<defaults>"        # not a user key
'''


def test_generator_picks_up_new_fields_comments_and_groups():
    docs = parse(SYNTHETIC)
    groups = docs["PartConfig"].groups
    assert [g.heading for g in groups] == [None, "group heading"]
    names = groups[1].fields[0]
    assert (names.name, names.type, names.default) == ("names", "list", '["a", "b"]')
    assert names.comment == "first line continued here | with a pipe"
    assert groups[1].fields[2].comment == ""  # `plain` has no comment; the one above is not borrowed
    page = render(SYNTHETIC, ["task", "output_dir", "part"])
    assert "Part section intro." in page and "Module intro." in page
    assert "| `part.names` | `list` | `[\"a\", \"b\"]` | first line continued here \\| with a pipe |" in page
    assert "&lt;output_dir>/x" in page and "*group heading*" in page
    assert "`source`" not in page and "| `output_dir` |" in page
