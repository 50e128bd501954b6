"""The API's complaints in the user's words: spec paths, not request paths; rules, not regexes."""

from __future__ import annotations

from cli.client import ApiError
from cli.context import problem_line
from cli.messages import DNS_NAME, detail_text, field_errors, field_message, field_path


def test_field_paths_are_the_spec_files_paths() -> None:
    assert field_path("body.worker_groups.0.max_nodes") == "worker_groups[0].max_nodes"
    assert field_path("body.worker_groups.12") == "worker_groups[12]"
    assert field_path("body.head.vm_size") == "head.vm_size"
    assert field_path("body.labels.team") == "labels.team"
    assert field_path("body") == "(the whole spec)"
    assert field_path("query.limit") == "query.limit"


def test_pattern_rules_read_as_words() -> None:
    regex = "String should match pattern '^[a-z]([-a-z0-9]*[a-z0-9])?$'"
    assert field_message(regex) == f"must be {DNS_NAME}"
    assert "[a-z]" not in field_message(regex)
    assert field_message("String should match pattern '^x+$'") == "must match the pattern ^x+$"
    assert field_message("Input should be greater than or equal to 0") == "Input should be greater than or equal to 0"


def test_a_rejected_spec_names_yaml_paths_in_the_line_and_the_fields() -> None:
    errors = [
        {"field": "body.name", "message": "String should match pattern '^[a-z]([-a-z0-9]*[a-z0-9])?$'"},
        {"field": "body.worker_groups.0.max_nodes", "message": "Input should be less than or equal to 1000"},
    ]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    exc = ApiError(422, {"title": "Invalid input", "detail": detail, "errors": errors})
    assert problem_line(exc) == "Invalid input"  # the detail only repeats the fields
    assert field_errors(exc.field_errors) == [
        ("name", f"must be {DNS_NAME}"),
        ("worker_groups[0].max_nodes", "Input should be less than or equal to 1000"),
    ]
    assert detail_text("body.head.vm_size: unknown VM size 'X'") == "head.vm_size: unknown VM size 'X'"
