"""House rules that keep the layers apart."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN_IN_CORE = {"fastapi", "starlette", "celery", "api", "workers"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_core_imports_neither_web_nor_task_frameworks() -> None:
    offenders = {}
    for path in (ROOT / "rayplane").rglob("*.py"):
        bad = _imports(path) & FORBIDDEN_IN_CORE
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}


def test_modules_stay_small() -> None:
    big = {}
    for package in ("rayplane", "api", "workers", "cli", "ops", "emulators"):
        for path in (ROOT / package).rglob("*.py"):
            lines = len(path.read_text().splitlines())
            if lines > 500:
                big[str(path.relative_to(ROOT))] = lines
    assert big == {}


def test_no_sql_outside_repositories_and_db() -> None:
    """Query construction lives in repository modules (and db/, migrations, maintenance)."""
    allowed = {"repository.py", "models.py", "idempotency.py", "maintenance.py"}
    offenders = []
    for path in (ROOT / "rayplane").rglob("*.py"):
        if path.name in allowed or path.name.endswith("store.py") or "db" in path.parts:
            continue
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "sqlalchemy":
                names |= {a.name for a in node.names}
        if names & {"select", "update", "delete", "insert", "text"}:
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_only_the_state_machine_writes_cluster_state() -> None:
    """``transition`` in rayplane/clusters/states.py is the one writer of ``Cluster.state``."""
    offenders = []
    for package in ("rayplane", "api", "workers"):
        for path in (ROOT / package).rglob("*.py"):
            if path == ROOT / "rayplane" / "clusters" / "states.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                targets = (
                    node.targets
                    if isinstance(node, ast.Assign)
                    else [node.target]
                    if isinstance(node, (ast.AugAssign, ast.AnnAssign))
                    else []
                )
                for t in targets:
                    elts = t.elts if isinstance(t, ast.Tuple) else [t]
                    for e in elts:
                        if (
                            isinstance(e, ast.Attribute)
                            and e.attr == "state"
                            and not (isinstance(e.value, ast.Name) and e.value.id in ("request", "app"))
                        ):
                            offenders.append(f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}")
    assert offenders == []
