"""api/ is layered one way: routes -> services -> store and library; nothing imports back up."""

from __future__ import annotations

import ast
from pathlib import Path

API = Path(__file__).resolve().parents[1] / "api"


def _imports(path: Path) -> set[str]:
    """Modules a file imports at run time (``if TYPE_CHECKING:`` blocks are type-only, left out)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                 and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING"
                 for n in ast.walk(node)}
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return out


def _module(path: Path) -> str:
    return ".".join(path.relative_to(API.parent).with_suffix("").parts).removesuffix(".__init__")


def test_no_import_circle_and_layers_point_one_way() -> None:
    modules = {_module(p): {i for i in _imports(p) if i.startswith("api")} for p in API.rglob("*.py")}
    known = set(modules)
    graph = {m: {i for i in deps if i in known and i != m} for m, deps in modules.items()}
    for m, deps in graph.items():
        if m.startswith("api.services"):
            assert not any(d.startswith("api.routes") or d == "api.app" for d in deps), (m, deps)
        if not m.startswith(("api.routes", "api.app")):
            assert not any(d.startswith("api.routes") for d in deps), (m, deps)
        if m in ("api.context", "api.deps", "api.problems", "api.schemas", "api.library", "api.middleware"):
            assert not any(d.startswith("api.services") for d in deps), (m, deps)
    seen: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:  # depth-first: a module met again on the path is a circle
        state = seen.get(m, 0)
        assert state != 1, " -> ".join([*path, m])
        if state == 2:
            return
        seen[m] = 1
        for d in sorted(graph[m]):
            visit(d, [*path, m])
        seen[m] = 2

    for m in sorted(graph):
        visit(m, [])
    assert not (API / "fastpath.py").exists() and not (API / "batching.py").exists()
