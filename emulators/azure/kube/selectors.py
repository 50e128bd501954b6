"""Label and field selectors (``?labelSelector=`` / ``?fieldSelector=`` and ``LabelSelector`` objects).

String label selectors accept the full syntax of ``k8s.io/apimachinery/pkg/labels``:
``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k`` (exists), ``!k``
(does not exist), comma-separated (AND). Field selectors accept ``path=value``,
``path==value`` and ``path!=value`` over dotted paths of the object (``metadata.name``,
``status.phase``, ``spec.nodeName``...). A malformed selector raises :class:`ValueError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Predicate = Callable[[Mapping[str, str]], bool]
_SET_RE = re.compile(r"^\s*(!?)\s*([^\s!=(),]+)\s*(?:(in|notin)\s*\(([^)]*)\))?\s*$")
_EQ_RE = re.compile(r"^\s*([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)\s*$")


def _split_terms(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    terms: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(ch)
    terms.append("".join(current))
    return [t for t in terms if t.strip()]


def _term(text: str) -> Predicate:
    eq = _EQ_RE.match(text)
    if eq:
        key, op, value = eq.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    st = _SET_RE.match(text)
    if not st:
        raise ValueError(f"unable to parse requirement: {text.strip()!r}")
    negate, key, op, values_text = st.groups()
    if op is None:
        return (lambda labels: key not in labels) if negate else (lambda labels: key in labels)
    if negate:
        raise ValueError(f"unable to parse requirement: {text.strip()!r}")
    values = {v.strip() for v in values_text.split(",") if v.strip()}
    if op == "in":
        return lambda labels: labels.get(key) in values
    return lambda labels: labels.get(key) not in values


def parse_label_selector(text: str | None) -> Predicate:
    """A predicate over a label map; the empty selector matches everything."""
    if not text or not text.strip():
        return lambda labels: True
    preds = [_term(t) for t in _split_terms(text)]
    return lambda labels: all(p(labels) for p in preds)


def match_label_selector(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether ``labels`` satisfy a ``metav1.LabelSelector`` (matchLabels AND matchExpressions).

    A null selector matches nothing, an empty one everything (as ``LabelSelectorAsSelector``).
    """
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), set(expr.get("values") or [])
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def _dig(obj: Mapping[str, Any], path: str) -> str:
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return ""
        current = current.get(part)
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


def parse_field_selector(text: str | None) -> Callable[[Mapping[str, Any]], bool]:
    """A predicate over a whole object."""
    if not text or not text.strip():
        return lambda obj: True
    checks: list[tuple[str, bool, str]] = []
    for term in _split_terms(text):
        match = _EQ_RE.match(term)
        if not match:
            raise ValueError(f"invalid selector: {text!r}; can't understand {term.strip()!r}")
        path, op, value = match.groups()
        checks.append((path, op != "!=", value))
    return lambda obj: all((_dig(obj, p) == v) == eq for p, eq, v in checks)
