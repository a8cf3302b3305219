"""The package's layers, read from its imports: every folder sits on a floor and imports only
from floors below its own (no upward arrow, no sideways one, so no cycle between folders), and
``core`` never imports ``handlers``: the runner is handed its handlers. docs/design.md "Layout"
names the floors."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import otf_dagster

PACKAGE = Path(otf_dagster.__file__).parent

# Lower floors first; a folder imports only from floors strictly below its own.
FLOORS: dict[str, int] = {
    "__init__": 0,
    "exceptions": 0,
    "settings": 1,
    "config": 2,
    "vocab": 2,  # tasks, task types, URL templates, the poll vocabulary
    "feeds": 3,  # feed clients and parsers
    "core/store": 4,  # every SQL the core runs
    "views": 4,
    "simulator": 4,
    "handlers": 5,  # what a poll does, by kind of task
    "core": 5,  # the Task Manager, the runner, the pool: handed the handlers, never importing them
    "core/delivery": 6,
    "api": 7,
    "local": 7,
    "defs": 8,  # the only Dagster code
    "cli": 9,
    "definitions": 9,
}


def room(module: str) -> str:
    """The folder (or top-level module) ``module`` belongs to: core's sub-packages are their own."""
    parts = module.split(".")[1:]
    if not parts:
        return "__init__"
    if parts[0] == "core" and len(parts) > 1 and parts[1] in ("store", "delivery"):
        return f"core/{parts[1]}"
    return parts[0]


def module_of(path: Path, package: Path = PACKAGE) -> str:
    rel = path.relative_to(package.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(source: str) -> list[str]:
    """The project modules ``source`` imports, lazy imports inside functions included."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "otf_dagster"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != "otf_dagster":
                continue
            if node.module == "otf_dagster":  # from otf_dagster import settings
                found += [f"otf_dagster.{a.name}" for a in node.names]
            else:
                found.append(node.module)
    return found


def arrows(package: Path = PACKAGE) -> dict[tuple[str, str], list[str]]:
    """(from room, to room) -> the files with such an import."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in sorted(package.rglob("*.py")):
        src = room(module_of(path, package))
        for target in imports(path.read_text()):
            dst = room(target)
            if dst != src:
                edges[(src, dst)].append(str(path.relative_to(package)))
    return edges


def cycles(edges: dict[tuple[str, str], list[str]]) -> list[list[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
    found, state = [], {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                found.append(trail[trail.index(nxt) :] + [nxt] if nxt in trail else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_every_folder_has_a_floor():
    rooms = {room(module_of(p)) for p in PACKAGE.rglob("*.py")}
    assert rooms - set(FLOORS) == set(), "a new folder: give it a floor in FLOORS"
    assert set(FLOORS) - rooms == set(), "a floor for a folder that is gone"


def test_imports_only_go_down():
    upward = {
        f"{a} (floor {FLOORS[a]}) imports {b} (floor {FLOORS[b]}): {', '.join(files)}"
        for (a, b), files in arrows().items()
        if FLOORS[b] >= FLOORS[a]
    }
    assert upward == set()


def test_core_never_imports_handlers():
    leaks = {
        f"{a} -> {b}: {files}"
        for (a, b), files in arrows().items()
        if a.startswith("core") and b == "handlers"
    }
    assert leaks == set()


def test_no_cycles_between_folders():
    assert cycles(arrows()) == []


def test_the_checks_see_a_planted_arrow(tmp_path):
    """The graph is read from the files: an upward import and a cycle, planted in a copy, show."""
    pkg = tmp_path / "otf_dagster"
    for folder in ("vocab", "core", "handlers"):
        (pkg / folder).mkdir(parents=True)
        (pkg / folder / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "vocab" / "tasks.py").write_text("def f():\n    from otf_dagster.core import runner\n")
    (pkg / "core" / "runner.py").write_text("from otf_dagster.vocab.tasks import f\n")
    (pkg / "core" / "pool.py").write_text("from otf_dagster import handlers\n")
    edges = arrows(pkg)
    assert ("vocab", "core") in edges and ("core", "handlers") in edges
    assert cycles(edges) in (
        [["core", "vocab", "core"]],
        [["vocab", "core", "vocab"]],
    )


STATEMENT_CALLS = {"execute", "executemany", "copy", "cursor"}


def statements_outside_the_store(package: Path = PACKAGE) -> list[str]:
    """Calls that run SQL (``.execute(...)`` and the like) in ``core/`` outside ``core/store/``."""
    found = []
    for path in sorted((package / "core").rglob("*.py")):
        if (package / "core" / "store") in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in STATEMENT_CALLS
            ):
                found.append(f"{path.relative_to(package)}:{node.lineno} .{node.func.attr}(")
    return found


def test_every_statement_of_the_core_is_in_the_store():
    assert statements_outside_the_store() == []


def test_a_planted_statement_shows(tmp_path):
    pkg = tmp_path / "otf_dagster"
    (pkg / "core" / "store").mkdir(parents=True)
    (pkg / "core" / "store" / "ok.py").write_text("def f(c):\n    c.execute('SELECT 1')\n")
    (pkg / "core" / "policy.py").write_text("def g(c):\n    return c.execute('SELECT 2')\n")
    assert statements_outside_the_store(pkg) == ["core/policy.py:2 .execute("]


# The store's SQL reads no key of a task's params: what a task's params mean (a game's teams, its
# label) is its handler's to say (issue 18: a run's label is the handler's, not the claim's).
# The score timeline reads the events' payloads, the derived events' own vocabulary.
PARAMS_KEY = re.compile(r"params\s*(->>?|#>>?|\?)\s*'")


def params_keys_in_the_store(package: Path = PACKAGE) -> list[str]:
    found = []
    for path in sorted((package / "core" / "store").rglob("*.sql")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if PARAMS_KEY.search(line.split("--", 1)[0]):
                found.append(f"{path.name}:{n}")
    return found


def test_the_stores_sql_reads_no_params_key():
    assert params_keys_in_the_store() == []


def test_a_planted_params_key_shows(tmp_path):
    queries = tmp_path / "otf_dagster" / "core" / "store" / "queries"
    queries.mkdir(parents=True)
    (queries / "q.sql").write_text(
        "-- t.params ->> 'home' in a comment is fine\nSELECT t.params ->> 'away' AS a;\n"
    )
    assert params_keys_in_the_store(tmp_path / "otf_dagster") == ["q.sql:2"]
