"""House rules that keep the layers apart, read from the source with ``ast``.

The import-linter contracts in pyproject.toml check the import graph between packages
(`lint-imports`, run by `make test`); these tests check what a graph cannot: SQL that is
written where it should not be, writes of ``Cluster.state`` outside the state machine,
module size. Every package is walked; nothing is skipped. Imports are read wherever they
are (inside functions too), and relative imports are resolved to the module they name.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = ("rayplane", "api", "workers", "cli", "ops")
FORBIDDEN_IN_CORE = {"fastapi", "starlette", "uvicorn", "celery", "kombu", "typer", "api", "workers", "cli", "ops"}
FORBIDDEN_IN_PRODUCTION = {"emulators", "tests", "benchmarks"}
# Where SQL may be written: repositories (async), stores (sync), shared statements, models,
# and the db package; plus two cross-cutting modules that are their own repositories.
SQL_MODULES = {"repository.py", "statements.py", "models.py", "idempotency.py", "maintenance.py"}
SQL_NAMES = {"select", "update", "delete", "insert", "text", "func", "and_", "or_", "tuple_"}
STATE_MACHINE = ROOT / "rayplane" / "clusters" / "states.py"


def _files(*packages: str) -> Iterator[Path]:
    for package in packages:
        yield from sorted((ROOT / package).rglob("*.py"))


def _module_of(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, root: Path = ROOT) -> set[str]:
    """Every module ``path`` imports, anywhere in the file, relative imports resolved."""
    tree = ast.parse(path.read_text())
    package = _module_of(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.add(module)
            names |= {f"{module}.{alias.name}" for alias in node.names}
    return names


def _roots(names: set[str]) -> set[str]:
    return {n.split(".")[0] for n in names}


def test_the_import_reader_sees_function_level_and_relative_imports(tmp_path: Path) -> None:
    fake = tmp_path / "rayplane" / "clusters" / "probe.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("def f():\n    import celery\n    from ..billing import budgets\n    from . import states\n")
    found = imports(fake, tmp_path)
    assert "celery" in found
    assert "rayplane.billing.budgets" in found
    assert "rayplane.clusters.states" in found


def test_core_imports_neither_web_nor_task_frameworks() -> None:
    offenders = {}
    for path in _files("rayplane"):
        bad = _roots(imports(path)) & FORBIDDEN_IN_CORE
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}


def test_production_code_imports_no_emulator_test_or_benchmark() -> None:
    offenders = {}
    for path in _files(*PRODUCTION):
        bad = _roots(imports(path)) & FORBIDDEN_IN_PRODUCTION
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}


def test_modules_stay_small() -> None:
    big = {}
    for path in _files(*PRODUCTION, "emulators"):
        lines = len(path.read_text().splitlines())
        if lines > 500:
            big[str(path.relative_to(ROOT))] = lines
    assert big == {}


def _sql_offenders(paths: Iterator[Path]) -> list[str]:
    offenders = []
    for path in paths:
        if path.name in SQL_MODULES or path.name.endswith("store.py") or "db" in path.relative_to(ROOT).parts:
            continue
        found = imports(path)
        sqlalchemy = {n.split(".")[-1] for n in found if n.startswith("sqlalchemy.")}
        if sqlalchemy & SQL_NAMES or any(n.startswith("psycopg") for n in found):
            offenders.append(str(path.relative_to(ROOT)))
    return offenders


def test_no_sql_outside_repositories_stores_and_db() -> None:
    """Query construction, raw SQL and psycopg live in repositories, stores and db/."""
    assert _sql_offenders(_files("rayplane")) == []


def test_adapters_write_no_sql() -> None:
    """The API and the workers call services; they build no statement and open no cursor."""
    assert _sql_offenders(_files("api", "workers")) == []


def _state_writes(path: Path) -> list[str]:
    """Places in ``path`` that write a ``state`` attribute or column, other than a request's
    or an app's own ``state`` (Starlette's)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        line = f"{path}:{getattr(node, 'lineno', 0)}"
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for t in targets:
            for e in t.elts if isinstance(t, ast.Tuple) else [t]:
                owner = e.value if isinstance(e, ast.Attribute) else None
                starlette = isinstance(owner, ast.Name) and owner.id in ("request", "app")
                starlette |= isinstance(owner, ast.Attribute) and owner.attr == "app"
                if isinstance(e, ast.Attribute) and e.attr == "state" and not starlette:
                    found.append(line)
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            keywords = {k.arg for k in node.keywords}
            if name in ("Cluster", "values") and "state" in keywords:
                found.append(line)
            if name == "setattr" and len(node.args) > 1:
                attr = node.args[1]
                if isinstance(attr, ast.Constant) and attr.value == "state":
                    found.append(line)
            if name in ("values", "update") and any(
                isinstance(a, ast.Dict) and any(isinstance(k, ast.Constant) and k.value == "state" for k in a.keys)
                for a in node.args
            ):
                found.append(line)
    return found


def test_only_the_state_machine_writes_cluster_state() -> None:
    """``transition`` in rayplane/clusters/states.py is the one writer of ``Cluster.state``:
    no assignment, constructor keyword, ``setattr`` or ``.values(state=…)`` elsewhere."""
    offenders = [w for path in _files(*PRODUCTION) if path != STATE_MACHINE for w in _state_writes(path)]
    assert offenders == []


@pytest.mark.parametrize(
    "source",
    [
        "cluster.state = 'RUNNING'",
        "c.state, c.reason = x, y",
        "Cluster(id='x', state='RUNNING')",
        "setattr(cluster, 'state', 'RUNNING')",
        "update(Cluster).values(state='RUNNING')",
        "update(Cluster).values({'state': 'RUNNING'})",
    ],
)
def test_the_state_write_check_sees_each_way_of_writing(source: str, tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(source + "\n")
    assert _state_writes(probe) != []


def test_the_state_write_check_leaves_starlettes_state_alone(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("request.state.x = 1\napp.state = 2\nrequest.app.state = 3\n")
    assert _state_writes(probe) == []
