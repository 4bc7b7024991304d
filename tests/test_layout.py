"""The house: no import cycle inside src/facedist, no import back up the stages, and the bench's
code off the runtime path. Read from the sources with `ast` (imports inside functions count:
they are dependencies too), so it costs nothing to run."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "facedist"


def module_name(path: Path) -> str:
    parts = ("facedist",) + path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the facedist modules it imports (anywhere in its source)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                for alias in node.names:
                    target = f"{base}.{alias.name}"
                    graph[name].add(target if target in modules else base)
            elif isinstance(node, ast.Import):
                graph[name].update(alias.name for alias in node.names)
        graph[name] = {t for t in graph[name] if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles (strongly connected groups of more than one module), Tarjan's way."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_runs_back_up():
    """Stages below never import what orchestrates them; the engines never import the pipeline;
    the compute object knows no engine; only the command line and the API reach the API."""
    graph = import_graph()

    def reaches(module: str, target: str) -> bool:
        seen, todo = set(), [module]
        while todo:
            m = todo.pop()
            if m == target:
                return True
            if m not in seen:
                seen.add(m)
                todo.extend(graph[m])
        return False

    for low, high in [("facedist.compute", "facedist.pipeline"),
                      ("facedist.compute", "facedist.engines.local"),
                      ("facedist.engines.local", "facedist.pipeline"),
                      ("facedist.engines.ray", "facedist.pipeline"),
                      ("facedist.pipeline", "facedist.api"),
                      ("facedist.facedb", "facedist.pipeline"),
                      ("facedist.store", "facedist.people"),
                      ("facedist.compare", "facedist.report"),
                      ("facedist.models", "facedist.embed"),
                      ("facedist.backend", "facedist.models"),
                      ("facedist.kernels", "facedist.align")]:
        assert not reaches(low, high), f"{low} imports {high}, which is above it"
    runtime = [m for m in graph if not m.startswith(("facedist.bench", "facedist.cli"))]
    assert not [m for m in runtime if any(t.startswith("facedist.bench") for t in graph[m])]


def test_pipeline_only_orchestrates():
    """pipeline.py holds no per-photo work and no engine: no model, thread pool or Ray."""
    source = (PACKAGE / "pipeline.py").read_text()
    for word in ("ThreadPoolExecutor", "MtcnnDetector", "build_embedder", "import ray",
                 "torch.set_num_threads", "mallopt"):
        assert word not in source, word
