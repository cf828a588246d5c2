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


def test_an_import_of_our_own_inside_a_function_says_why():
    """Our own modules are imported at the top, where a reader sees the dependency; inside a
    function only to keep torch off a fast path (help, the model list), said in a comment."""
    unexplained = []
    for path in ROOT.rglob("*.py"):
        lines = path.read_text(encoding="utf-8").splitlines()
        tree = ast.parse("\n".join(lines))
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                ours = (isinstance(node, ast.ImportFrom) and
                        (node.level or (node.module or "").startswith("vitprobe"))) or \
                    (isinstance(node, ast.Import) and
                     any(a.name.startswith("vitprobe") for a in node.names))
                if ours and "torch" not in lines[node.lineno - 1]:
                    unexplained.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}")
    assert unexplained == []
