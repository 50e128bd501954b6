"""``wrk`` (a compiled HTTP load generator) on a service's endpoint, for the rollout tests:
every error counter it keeps, so a test can assert that none moved."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

# wrk's done() hook: every error counter, to assert on (the summary omits zero counters).
WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d connect=%d read=%d write=%d status=%d timeout=%d p99_ms=%.1f\\n",
    summary.requests, e.connect, e.read, e.write, e.status, e.timeout, latency:percentile(99) / 1000))
end
"""


class Wrk:
    """``wrk`` on the endpoint in the background until ``stop`` (SIGINT: it prints its
    summary and the done() hook's counters)."""

    def __init__(self, url: str, script: Path, seconds: int = 900) -> None:
        script.write_text(WRK_DONE)
        self.proc = subprocess.Popen(
            ["wrk", "-t1", "-c4", f"-d{seconds}s", "--timeout", "10s", "-s", str(script), url],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def stop(self) -> tuple[dict[str, float], str]:
        assert self.proc.poll() is None, "wrk ended before the step did: the test saw no load across it"
        self.proc.send_signal(signal.SIGINT)
        output, _ = self.proc.communicate(timeout=60)
        return parse_wrk(output), output

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def parse_wrk(output: str) -> dict[str, float]:
    found = re.search(r"RESULT (.*)", output)
    assert found is not None, output
    return {k: float(v) for k, v in (pair.split("=") for pair in found.group(1).split())}


def assert_no_errors(counts: dict[str, float], output: str) -> None:
    """More than 100 requests, and not one connect, read, write, status or timeout error."""
    assert counts["requests"] > 100, output
    errors = {k: v for k, v in counts.items() if k not in ("requests", "p99_ms")}
    assert errors == dict.fromkeys(("connect", "read", "write", "status", "timeout"), 0.0), output
    assert "Non-2xx" not in output, output
    assert "Socket errors" not in output, output
