"""The import graph of vitprobe/ (its models and studies included), read from the source
with every import counted — at the top, inside functions, under TYPE_CHECKING: no cycle,
and no module-level ``__getattr__`` that hides where a name comes from."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "vitprobe"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Every project module ``path`` imports, wherever the import statement is."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in ROOT.rglob("*.py")}
    return {name: imports(path, name, set(files)) for name, path in files.items()}


def test_the_import_graph_has_no_cycle():
    g = graph()
    assert "vitprobe.studies.hessian" in g and "vitprobe.models.vit" in g
    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(g[node]):
            # a package imports its own modules to re-export them; a module importing its
            # package (for a sibling) is not a cycle through that package's code
            if nxt.startswith(node + ".") or node.startswith(nxt + "."):
                continue
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(g):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles[:5]


def test_no_module_level_getattr_hides_a_name():
    hidden = [module_name(p) for p in ROOT.rglob("*.py")
              if any(isinstance(n, ast.FunctionDef) and n.name == "__getattr__"
                     for n in ast.parse(p.read_text(encoding="utf-8")).body)]
    assert hidden == []
