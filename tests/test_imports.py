"""No import circle among kdnlp's modules (issue 17, item 6).

The graph is read from the source with `ast`: an edge A -> B for every `import`/`from ... import` in A that names a
kdnlp module B (`from .students import bilstm` names kdnlp.students.bilstm). Imports under `if TYPE_CHECKING:`
never run and are left out. Two checks:
  - module-level imports (run when the module is imported): strictly no cycle;
  - module-level + function-level imports (run when the function is called): no cycle either, since a circle
    hidden in a function (config.validate -> students -> data -> config, the one issue 17 named) still ties the
    modules together.
Run `python tests/test_imports.py` to print the function-level imports and the graph.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "kdnlp"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or \
           (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, in_function: bool = False):
    """(node, in_function) for every import statement, skipping `if TYPE_CHECKING:` bodies."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, in_function
        elif isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                yield from _imports(ast.Module(body=[child], type_ignores=[]), in_function)
        else:
            inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            yield from _imports(node, inner)


def import_graph() -> tuple[dict[str, set[str]], dict[str, set[str]], set[str]]:
    """(module-level edges, function-level edges, all module names) of the kdnlp package."""
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(f) for f in files}
    top, local = {m: set() for m in modules}, {m: set() for m in modules}
    for f in files:
        me = module_name(f)
        package = me if f.name == "__init__.py" else me.rpartition(".")[0]
        for node, in_function in _imports(ast.parse(f.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                # `from X import name`: name is a submodule of X, or an attribute of module X
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for t in targets:
                if t in modules and t != me:
                    (local if in_function else top)[me].add(t)
    return top, local, modules


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (iterative DFS, three colours)."""
    state, stack_path = {}, []

    def visit(start: str) -> list[str] | None:
        stack = [(start, iter(sorted(edges.get(start, ()))))]
        state[start] = "open"
        stack_path.append(start)
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = "done"
                stack.pop()
                stack_path.pop()
            elif state.get(child) == "open":
                return stack_path[stack_path.index(child):] + [child]
            elif child not in state:
                state[child] = "open"
                stack_path.append(child)
                stack.append((child, iter(sorted(edges.get(child, ())))))
        return None

    for m in sorted(edges):
        if m not in state:
            if (cycle := visit(m)) is not None:
                return cycle
    return None


def test_graph_sees_the_package():
    top, local, modules = import_graph()
    assert {"kdnlp.config", "kdnlp.data", "kdnlp.trainer", "kdnlp.students", "kdnlp.students.bilstm"} <= modules
    assert "kdnlp.config" in top["kdnlp.trainer"]
    assert "kdnlp.students.bilstm" in top["kdnlp.students"]  # `from . import bilstm` in a package __init__
    assert "kdnlp.students.bilstm" in local["kdnlp.modeldir"]  # an import inside a function


def test_find_cycle_reports_the_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_cycle_among_module_level_imports():
    top, _, _ = import_graph()
    cycle = find_cycle(top)
    assert cycle is None, "import circle (module level): " + " -> ".join(cycle)


def test_no_cycle_including_function_level_imports():
    top, local, _ = import_graph()
    both = {m: top[m] | local[m] for m in top}
    cycle = find_cycle(both)
    assert cycle is None, "import circle (function-level imports included): " + " -> ".join(cycle)


if __name__ == "__main__":
    top, local, _ = import_graph()
    print("function-level imports:")
    for m in sorted(local):
        for t in sorted(local[m]):
            print(f"  {m} -> {t}")
    print("module-level imports:")
    for m in sorted(top):
        print(f"  {m} -> {', '.join(sorted(top[m])) or '-'}")
    both = {m: top[m] | local[m] for m in top}
    print("cycle (module level):", find_cycle(top))
    print("cycle (all):", find_cycle(both))
    sys.exit(0)
