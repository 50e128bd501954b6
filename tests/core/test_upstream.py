"""``one_line``: what of an upstream's error text reaches a client."""

from __future__ import annotations

from rayplane.common.upstream import LIMIT, one_line

TRACEBACK = """Traceback (most recent call last):
  File "/home/ray/anaconda3/lib/python3.11/site-packages/ray/dashboard/modules/job/job_head.py", line 341, in submit
    resp = await client.submit_job_internal(request)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
RuntimeError: cannot create /var/lib/ray/session_1/logs: [Errno 13] Permission denied
"""


def test_a_traceback_becomes_its_exception_line_without_paths() -> None:
    assert one_line(TRACEBACK) == "RuntimeError: cannot create <path>: [Errno 13] Permission denied"


def test_other_text_keeps_its_first_line_and_urls() -> None:
    text = "quota exceeded in eastus; see https://aka.ms/quota/x for limits\nrequest id 42\n"
    assert one_line(text) == "quota exceeded in eastus; see https://aka.ms/quota/x for limits"
    assert one_line("uses gcs://_ray_pkg_abc.zip") == "uses gcs://_ray_pkg_abc.zip"
    assert one_line(r"C:\Users\svc\app\main.py failed") == "<path> failed"
    assert one_line("cannot read ~/.kube/config") == "cannot read <path>"


def test_it_is_bounded_and_never_empty() -> None:
    assert len(one_line("x" * 10_000)) == LIMIT
    assert one_line("x" * 10_000).endswith("…")
    assert len(one_line("y " * 400, 50)) == 50
    assert one_line("  \n\n ") == "no detail given"
