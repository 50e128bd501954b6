"""The ``--workers`` syntax, labels, spec files and working-dir zips (no server needed)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest

from cli.jobs import zip_directory
from cli.specs import SpecError, build_spec, format_workers, load_spec_file, parse_labels, parse_workers


@pytest.mark.parametrize(
    ("text", "group"),
    [
        (
            "cpu=Standard_D8s_v5:0-4:spot",
            {"name": "cpu", "vm_size": "Standard_D8s_v5", "min_nodes": 0, "max_nodes": 4, "spot": True},
        ),
        ("cpu=Standard_D8s_v5:1-2", {"name": "cpu", "vm_size": "Standard_D8s_v5", "min_nodes": 1, "max_nodes": 2}),
        ("big-1=Standard_E8s_v5:3", {"name": "big-1", "vm_size": "Standard_E8s_v5", "min_nodes": 3, "max_nodes": 3}),
        (
            "gpu=Standard_NC6s_v3:0-8:spot:fallback",
            {
                "name": "gpu",
                "vm_size": "Standard_NC6s_v3",
                "min_nodes": 0,
                "max_nodes": 8,
                "spot": True,
                "fallback_to_on_demand": True,
            },
        ),
        (
            "gpu=Standard_NC6s_v3:0-2:SPOT",
            {"name": "gpu", "vm_size": "Standard_NC6s_v3", "min_nodes": 0, "max_nodes": 2, "spot": True},
        ),
    ],
)
def test_parse_workers(text: str, group: dict[str, Any]) -> None:
    assert parse_workers(text) == group


def test_format_workers_round_trips() -> None:
    for text in ("cpu=Standard_D8s_v5:0-4:spot", "a=B:1-1", "g=Standard_NC6s_v3:0-8:spot:fallback"):
        assert format_workers(parse_workers(text)) == text


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("Standard_D8s_v5:0-4", "expected NAME=SIZE:MIN-MAX"),
        ("cpu=", "expected NAME=SIZE:MIN-MAX"),
        ("cpu=Standard_D8s_v5", "node count is missing"),
        ("cpu=Standard_D8s_v5:4-1", "MIN (4) is larger than MAX (1)"),
        ("cpu=Standard_D8s_v5:a-b", "must be MIN-MAX"),
        ("cpu=Standard_D8s_v5:1-", "must be MIN-MAX"),
        ("CPU=Standard_D8s_v5:0-1", "lowercase"),
        ("cpu=Standard_D8s_v5:0-1:cheap", "unknown option 'cheap'"),
        ("cpu=:0-1", "expected NAME=SIZE:MIN-MAX"),
    ],
)
def test_parse_workers_rejects_with_a_reason(text: str, complaint: str) -> None:
    with pytest.raises(SpecError, match=complaint.replace("(", r"\(").replace(")", r"\)")):
        parse_workers(text)


def test_labels() -> None:
    assert parse_labels(["team=ml", "tier = gold", "empty="]) == {"team": "ml", "tier": "gold", "empty": ""}
    with pytest.raises(SpecError, match="key=value"):
        parse_labels(["nolabel"])


def test_flags_override_the_spec_file(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(
        "name: from-file\nhead: {vm_size: Standard_D4s_v5}\nlabels: {a: '1'}\n"
        "worker_groups:\n  - {name: cpu, vm_size: Standard_D8s_v5, min_nodes: 0, max_nodes: 4}\n"
    )
    spec = build_spec(
        load_spec_file(str(path)),
        name="demo",
        workers=["gpu=Standard_NC6s_v3:0-1:spot"],
        labels=["b=2"],
        idle_timeout=30,
        ray_version="2.60.0",
    )
    assert spec == {
        "name": "demo",
        "head": {"vm_size": "Standard_D4s_v5"},
        "labels": {"a": "1", "b": "2"},
        "worker_groups": [{"name": "gpu", "vm_size": "Standard_NC6s_v3", "min_nodes": 0, "max_nodes": 1, "spot": True}],
        "ray_version": "2.60.0",
        "idle_timeout_minutes": 30,
    }


def test_spec_needs_a_name_and_a_readable_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="needs a name"):
        build_spec(None, head="Standard_D2s_v5")
    with pytest.raises(SpecError, match="cannot read"):
        load_spec_file(str(tmp_path / "missing.yaml"))
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(SpecError, match="expected a mapping"):
        load_spec_file(str(tmp_path / "list.yaml"))
    (tmp_path / "broken.json").write_text('{"name": "x",\n  not json}')
    with pytest.raises(SpecError, match=r"broken.json is not valid JSON: line 2, column 3: Expecting property name"):
        load_spec_file(str(tmp_path / "broken.json"))


def test_yaml_errors_name_the_line_and_column(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: demo\nhead:\n  vm_size: Standard_D4s_v5\n   bad: x\n")
    with pytest.raises(SpecError) as raised:
        load_spec_file(str(spec))
    assert str(raised.value) == f"{spec} is not valid YAML: line 4, column 7: mapping values are not allowed here"


def test_working_dir_zip_skips_junk_and_is_reproducible(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("x = 1\n")
    (tmp_path / "train.py").write_text("print('hi')\n")
    (tmp_path / "stale.pyc").write_bytes(b"\0")
    for junk in (".git", "__pycache__", ".venv", ".rayplane", "pkg/__pycache__"):
        (tmp_path / junk).mkdir(parents=True, exist_ok=True)
        (tmp_path / junk / "file").write_text("junk")
    data = zip_directory(tmp_path)
    assert zipfile.ZipFile(io.BytesIO(data)).namelist() == ["train.py", "pkg/mod.py"]
    assert zip_directory(tmp_path) == data
