"""The house rule "imports point one way": no cycle among harness's modules, counting the imports made inside
functions too (a function-level import can hide a cycle that a top-level one would show)."""

import ast
from pathlib import Path

HARNESS = Path(__file__).resolve().parent.parent / "harness"


def module_graph() -> dict[str, set[str]]:
    """module -> the harness modules it imports anywhere in its file (a package's own parents left out: importing
    harness.tasks from harness.tasks.user is how a package works, not a cycle)."""
    mods = {}
    for path in HARNESS.rglob("*.py"):
        name = ".".join(path.relative_to(HARNESS.parent).with_suffix("").parts).removesuffix(".__init__")
        mods[name] = path

    def resolve(name: str) -> str:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            for target in (resolve(n) for n in names if n.split(".")[0] == "harness"):
                if target and target != mod and not mod.startswith(target + "."):
                    graph[mod].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_harness_imports_point_one_way():
    graph = module_graph()
    assert len(graph) > 40 and "harness.load" in graph["harness.estimate"]  # the graph is read, not empty
    assert cycles(graph) == []
