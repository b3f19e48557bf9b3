"""The layout docs/architecture.md draws, checked on the source: no import cycles (every import
counts, also inside functions and under TYPE_CHECKING), `aco` never imports `aco_lab`, the
lab's stages import one way, and no module is longer than MAX_LINES.
"""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("aco", "aco_lab")
MAX_LINES = 500
# aco_lab's stages, lowest first: a module may import from its own stage and from earlier ones.
# aco_lab/files.py sits below all of them, aco_lab/launcher.py (the console script) above;
# simulate and importers stand alone (they need only aco and files).
LAB_LAYERS = ("files", "traces", "controls", "train", "evaluate", "report", "cli", "launcher")
LAB_ALONE = ("simulate", "importers")


def module_files() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The module `name` is, or the innermost known module it lies in."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every project module `name` imports, wherever the import statement is."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(_known(alias.name, modules) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            for alias in node.names:  # `from pkg import module` imports the module itself
                full = f"{base}.{alias.name}"
                found.add(full if full in modules else _known(base, modules))
    found.discard(None)
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path back to its start) per strongly connected group of modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(v: str) -> None:  # Tarjan; the graph is a few hundred modules deep at most
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_in(group, graph) for group in groups]


def _cycle_in(group: set[str], graph: dict[str, set[str]]) -> list[str]:
    """A path from the group's first module back to itself, staying inside the group."""
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & group):
                if w == start:
                    return paths[v] + [start]
                if w not in paths:
                    paths[w] = paths[v] + [w]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle found in {sorted(group)}")


def lab_stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "aco_lab" and len(parts) > 1 else None


def test_no_import_cycles() -> None:
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_cycle_finder_names_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]


def test_relative_and_function_level_imports_count(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text("def f():\n    from . import sibling\n    import aco_lab.traces.schema\n")
    modules = {"aco_lab.x.m": path, "aco_lab.x.sibling": path, "aco_lab.traces.schema": path}
    assert imports_of("aco_lab.x.m", path, modules) == {
        "aco_lab.x.sibling",
        "aco_lab.traces.schema",
    }


def test_the_runtime_never_imports_the_lab() -> None:
    wrong = sorted(
        f"{m} -> {i}"
        for m, deps in import_graph().items()
        if m.split(".")[0] == "aco"
        for i in deps
        if i.split(".")[0] == "aco_lab"
    )
    assert not wrong, wrong


def test_lab_stages_import_one_way() -> None:
    rank = {stage: i for i, stage in enumerate(LAB_LAYERS)}
    wrong = []
    for module, deps in import_graph().items():
        stage = lab_stage(module)
        if stage is None:
            continue
        assert stage in rank or stage in LAB_ALONE, f"{module}: aco_lab/{stage} is in no layer"
        for dep in deps:
            dep_stage = lab_stage(dep)
            if dep_stage is None or dep_stage == stage:
                continue
            if stage in LAB_ALONE or dep_stage in LAB_ALONE:
                allowed = (dep_stage in LAB_ALONE and stage == "cli") or dep_stage == "files"
            else:
                allowed = rank[dep_stage] < rank[stage]
            if not allowed:
                wrong.append(f"{module} -> {dep}")
    assert not wrong, "imports against the stage order: " + ", ".join(sorted(wrong))


def test_the_lab_is_grouped_in_subpackages() -> None:
    subpackages = [p.parent.name for p in (REPO / "aco_lab").glob("*/__init__.py")]
    assert len(subpackages) >= 4, subpackages
    loose = sorted(p.name for p in (REPO / "aco_lab").glob("*.py") if p.name != "__init__.py")
    assert loose == ["files.py", "launcher.py"], loose


def test_no_module_is_longer_than_the_limit() -> None:
    long = {
        str(path.relative_to(REPO)): n
        for path in module_files().values()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"
