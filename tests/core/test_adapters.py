"""The adapters' borders: the CLI speaks HTTP only, nothing shipped imports the emulators, and
the production wheel holds no emulator (emulators/ is the rayplane-emulators distribution)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOT_IN_CLI = {"rayplane", "api", "workers", "emulators", "ops"}
NOT_SHIPPED = {"emulators", "tests", "benchmarks"}
SHIPPED = ("rayplane", "api", "workers", "cli", "ops")
DYNAMIC_IMPORTERS = {"import_module", "__import__"}


def imported_modules(path: Path) -> set[str]:
    """Absolute names of every module the file at ``path`` (under ROOT) imports."""
    # A module's package and an __init__.py's package are both its directory.
    return scan_imports(path.read_text(), path.relative_to(ROOT).parts[:-1], str(path))


def scan_imports(source: str, package: tuple[str, ...], filename: str = "<probe>") -> set[str]:
    """Absolute names of every module ``source`` imports, anywhere in it (function bodies too).

    Relative imports are resolved against ``package``; ``importlib.import_module`` and
    ``__import__`` with a literal name count as imports.
    """
    names: set[str] = set()
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            else:
                # `from . import x` in cli/a.py is cli.x; each extra dot climbs one package.
                parent = package[: len(package) - (node.level - 1)] if node.level - 1 <= len(package) else ()
                base = ".".join([*parent, *([node.module] if node.module else [])])
            names |= {f"{base}.{alias.name}" if base else alias.name for alias in node.names}
            if base:
                names.add(base)
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if called in DYNAMIC_IMPORTERS and node.args and isinstance(node.args[0], ast.Constant):
                names.add(str(node.args[0].value))
    return names


def offenders(packages: tuple[str, ...], forbidden: set[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            bad = sorted(name for name in imported_modules(path) if name.split(".")[0] in forbidden)
            if bad:
                found[str(path.relative_to(ROOT))] = bad
    return found


def test_import_scan_sees_function_level_relative_and_dynamic_imports() -> None:
    source = (
        "import os\n"
        "def f():\n"
        "    from rayplane.settings import Settings\n"
        "    import api.app\n"
        "    from .. import workers\n"
        "    from . import output\n"
        "    importlib.import_module('emulators.azure')\n"
    )
    names = scan_imports(source, ("cli",))
    assert {"rayplane.settings", "api.app", "workers", "cli.output", "emulators.azure"} <= names
    assert not any(name.startswith("tests") for name in names)


def test_the_cli_imports_no_server_operator_or_emulator_code() -> None:
    """cli/ is an adapter that speaks HTTP only: no rayplane, api, workers, ops or emulators."""
    assert list((ROOT / "cli").rglob("*.py")), "cli/ has moved?"
    assert offenders(("cli",), NOT_IN_CLI) == {}


def test_shipped_packages_import_no_emulator_test_or_benchmark_code() -> None:
    assert offenders(SHIPPED, NOT_SHIPPED) == {}


def test_the_core_imports_no_adapter() -> None:
    assert offenders(("rayplane",), {"api", "workers", "cli", "ops", "emulators"}) == {}


def test_the_emulator_distribution_lists_every_emulator_package() -> None:
    """emulators/pyproject.toml names its packages (setuptools cannot prefix a find); none is missed."""
    config = tomllib.loads((ROOT / "emulators" / "pyproject.toml").read_text())
    on_disk = {
        ".".join(("emulators", *init.parent.relative_to(ROOT / "emulators").parts))
        for init in (ROOT / "emulators").rglob("__init__.py")
    }
    assert config["project"]["name"] == "rayplane-emulators"
    assert config["tool"]["setuptools"]["package-dir"] == {"emulators": "."}
    assert set(config["tool"]["setuptools"]["packages"]) == on_disk


def test_the_wheel_holds_the_adapters_and_no_emulator(tmp_path: Path) -> None:
    """Build the rayplane wheel from a copy of the tree (emulators/ included, as in a checkout)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "*.pyc")
    for package in (*SHIPPED, "migrations", "emulators"):
        shutil.copytree(ROOT / package, src / package, ignore=ignore)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--quiet", "-w", str(tmp_path / "dist")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("rayplane-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        entry_points = next(zf.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
    tops = {name.split("/")[0] for name in names}
    assert "emulators" not in tops
    assert [name for name in names if name.startswith("emulators/")] == []
    assert {"rayplane", "api", "workers", "cli", "ops", "migrations"} <= tops
    assert "rayplane = cli.main:app" in entry_points


def test_the_image_copies_the_adapters_and_not_the_emulators() -> None:
    """infra/Dockerfile copies the shipped packages, and .dockerignore's allow-list lets them in."""
    copied = {
        line.split()[1]
        for line in (ROOT / "infra" / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ") and not line.startswith("COPY --")
    }
    allowed = {line[1:] for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")}
    for listed in (copied, allowed):
        assert {"rayplane", "api", "workers", "cli", "ops", "migrations"} <= listed
        assert "emulators" not in listed
