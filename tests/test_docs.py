"""The documentation stays true: every command in README.md and docs/*.md is a valid command with a valid config,
every complete config snippet loads, and every relative link points to an existing file (and heading).

Commands are the fenced-code lines that run `kdnlp ...` or `python distill.py ...`, also after `&&`, after an
environment assignment or after a launcher (`accelerate launch ... distill.py`, `torchrun ... -m kdnlp ...`).
Each is parsed by the CLI's own argparse parser; one that names a config in configs/ also loads that config with
the command's overrides (--set and the shortcuts), exactly as the CLI would before doing any work.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from kdnlp.cli import _overrides, _parser
from kdnlp.config import _TOP_KEYS, config_from_dict, load_config
from kdnlp.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PLACEHOLDER = re.compile(r"<[^>]*>|…|\.\.\.")  # <model>, TEXT…: a pattern, not a command to run
LAUNCHERS = ("accelerate", "torchrun")


def fenced_blocks(text: str) -> list[tuple[int, str, list[str]]]:
    """(first line number, info string, lines) of every ``` block."""
    blocks, current = [], None
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            if current is None:
                current = (number + 1, line.strip()[3:].strip(), [])
            else:
                blocks.append(current)
                current = None
        elif current is not None:
            current[2].append(line)
    return blocks


def kdnlp_argv(words: list[str]) -> list[str] | None:
    """The argv for kdnlp.cli of one shell command, or None when it does not run kdnlp."""
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):  # CUDA_VISIBLE_DEVICES= ...
        words = words[1:]
    if not words:
        return None
    if words[0] in LAUNCHERS:  # the launcher's own flags come first, then the script and its arguments
        for i, w in enumerate(words):
            if w == "distill.py":
                return ["distill", *words[i + 1:]]
            if w == "-m" and i + 1 < len(words) and words[i + 1] == "kdnlp":
                return words[i + 2:]
        return None
    if words[0] == "kdnlp":
        return words[1:]
    if words[:2] == ["python", "distill.py"]:
        return ["distill", *words[2:]]
    if words[:3] == ["python", "-m", "kdnlp"]:
        return words[3:]
    return None


def documented_commands() -> list[tuple[str, list[str]]]:
    """(where, argv) for every kdnlp command in a fenced block of README.md and docs/*.md."""
    found = []
    for page in PAGES:
        for start, _, lines in fenced_blocks(page.read_text(encoding="utf-8")):
            joined, first = "", None
            for offset, line in enumerate(lines):
                if first is None:
                    first = start + offset
                if line.rstrip().endswith("\\"):  # a command continued on the next line
                    joined += line.rstrip()[:-1] + " "
                    continue
                joined += line
                command, where, joined, first = joined, f"{page.relative_to(ROOT)}:{first}", "", None
                if PLACEHOLDER.search(command):
                    continue
                try:
                    words = shlex.split(command, comments=True)  # drops a trailing `# comment`
                except ValueError:
                    continue  # not shell (a JSON line, a Python snippet)
                for segment in " ".join(shlex.quote(w) for w in words).split(" '&&' ") if "&&" in words else [command]:
                    argv = kdnlp_argv(shlex.split(segment, comments=True))
                    if argv is not None:
                        found.append((where, argv))
    return found


COMMANDS = documented_commands()


def check_command(argv: list[str]) -> None:
    """Parse argv as the CLI does; load its config when it is one of the repository's configs/."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:  # argparse prints the reason to stderr
        raise AssertionError(f"kdnlp {' '.join(argv)}: argparse refused it (exit {e.code})") from None
    if args.command == "label":
        return  # needs no config
    config = Path(args.config)
    if config.parts[:1] == ("configs",):
        assert (ROOT / config).is_file(), f"{config}: no such config in the repository"
        load_config(ROOT / config, _overrides(args))


def test_docs_have_commands():
    pages = {where.split(":")[0] for where, _ in COMMANDS}
    assert len(COMMANDS) >= 30, COMMANDS
    assert {"README.md", "docs/cli.md", "docs/distributed.md", "docs/ner.md", "docs/deployment.md"} <= pages
    commands = {argv[0] for _, argv in COMMANDS}
    assert {"distill", "train-teacher", "train-student", "cache-logits", "evaluate", "predict", "export", "bench",
            "pretrain", "label", "config", "plot", "augment", "fastbert-speeds"} <= commands


@pytest.mark.parametrize("where,argv", COMMANDS, ids=[f"{w} {a[0]}" for w, a in COMMANDS])
def test_documented_command_is_valid(where, argv):
    check_command(argv)


def test_the_check_catches_a_wrong_flag_and_a_wrong_override():
    check_command(["train-student", "--config", "configs/sst2.yaml", "--set", "student.num_layers=3"])
    with pytest.raises(AssertionError, match="argparse refused"):
        check_command(["train-student", "--config", "configs/sst2.yaml", "--num-layers", "3"])
    with pytest.raises(UserError, match="alhpa"):
        check_command(["distill", "--config", "configs/sst2.yaml", "--set", "distill.alhpa=1"])
    with pytest.raises(AssertionError, match="no such config"):
        check_command(["distill", "--config", "configs/nope.yaml"])


def test_launcher_and_chained_commands_are_found():
    assert kdnlp_argv(shlex.split("CUDA_VISIBLE_DEVICES= accelerate launch --num_processes 2 -m kdnlp distill")) == ["distill"]
    assert kdnlp_argv(shlex.split("torchrun --nproc_per_node 4 distill.py --config c.yaml")) == ["distill", "--config", "c.yaml"]
    assert kdnlp_argv(["pip", "install", "-e", "."]) is None
    readme = [argv for where, argv in COMMANDS if where.startswith("README.md")]
    assert ["distill", "--config", "configs/demo.yaml"] in readme  # the quickstart, after `pip install ... &&`


def config_snippets() -> list[tuple[str, dict]]:
    """YAML blocks that are whole configs or whole config sections (every top-level key is a config key)."""
    found = []
    for page in PAGES:
        for start, info, lines in fenced_blocks(page.read_text(encoding="utf-8")):
            if info not in ("yaml", "yml"):
                continue
            raw = yaml.safe_load("\n".join(lines))
            if isinstance(raw, dict) and raw and set(raw) <= set(_TOP_KEYS):
                found.append((f"{page.relative_to(ROOT)}:{start}", raw))
    return found


SNIPPETS = config_snippets()


def test_docs_have_config_snippets():
    assert any(where.startswith("README.md") and "teacher" in raw for where, raw in SNIPPETS)


@pytest.mark.parametrize("where,raw", SNIPPETS, ids=[w for w, _ in SNIPPETS])
def test_config_snippet_is_valid(where, raw):
    raw = dict(raw)
    raw.setdefault("data", {"train": "train.json", "test": "test.json"})  # a section on its own needs data paths
    config_from_dict(raw, source=where)


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors of a markdown page, plus explicit <a id=...>."""
    text = page.read_text(encoding="utf-8")
    found = set(re.findall(r'<a id="([^"]+)"', text))
    inside = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            inside = not inside
        elif not inside and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


def relative_links() -> list[tuple[Path, str]]:
    links = []
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        text = re.sub(r"`[^`\n]*`", "", text)  # code spans are not links
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if not re.match(r"[a-z]+:", target):  # http:, https:, mailto:
                links.append((page, target))
    return links


def test_relative_links_point_to_existing_files_and_headings():
    links = relative_links()
    assert len(links) >= 20
    broken = []
    for page, target in links:
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)
