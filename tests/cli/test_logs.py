"""``rayplane logs``: usage errors before any request (the live reads are in
tests/e2e/test_logs_local.py)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from cli.context import CliError
from cli.logs import parse_since
from tests.cli.support import Cli, assert_clean_failure


def test_since_takes_a_number_and_a_unit() -> None:
    assert parse_since("90s") == timedelta(seconds=90)
    assert parse_since("10m") == timedelta(minutes=10)
    assert parse_since(" 2h") == timedelta(hours=2)
    assert parse_since("7d") == timedelta(days=7)
    for bad in ("10", "m", "1.5h", "-3m", "10 minutes"):
        with pytest.raises(CliError):
            parse_since(bad)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--grep", "ERROR"), "--grep and --job go together"),
        (("--job", "job_1"), "--grep and --job go together"),
        (("--since", "soon"), "--since 'soon'"),
    ],
)
def test_usage_errors_exit_2_without_a_request(tmp_path: Path, args: tuple[str, ...], said: str) -> None:
    # An address nothing listens on: a request would fail with another message and code.
    cli = Cli(tmp_path, {"RAYPLANE_API_URL": "http://127.0.0.1:9", "RAYPLANE_API_KEY": "rpk_x"})
    result = cli("logs", "demo", *args, timeout=60)
    assert_clean_failure(result)
    assert result.returncode == 2
    assert said in result.stderr
