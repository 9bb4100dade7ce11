"""The slice of NQL (Neptune Query Language) neptune-query sends, evaluated over one run.

    `sys/name`:string == "x"      `last(`loss`:floatSeries)` > "0.5"
    `sys/tags`:stringSet CONTAINS "a"     `x` MATCHES "^a.*"     `x` EXISTS
    (a) AND (b)     (a) OR (b)     NOT (a)

Values arrive as quoted strings; a comparison is numeric when both sides are numbers.
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Any, Callable

_TOKEN = re.compile(r'\s*(?:(?P<name>`(?:[^`\\]|\\.)*`(?::\w+)?)|(?P<str>"(?:[^"\\]|\\.)*")'
                    r'|(?P<op>==|!=|>=|<=|>|<|\(|\))|(?P<word>[A-Za-z_]+))')
_BINARY = ("==", "!=", ">", ">=", "<", "<=", "MATCHES", "NOT MATCHES", "CONTAINS", "NOT CONTAINS")


class NqlError(ValueError):
    pass


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise NqlError(f"cannot parse NQL at {text[pos:pos + 20]!r}")
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


def compile_query(text: str | None) -> Callable[[Callable[[str, str | None], Any]], bool]:
    """A predicate over `lookup(name, aggregation)` → the attribute's value (None if absent)."""
    if not text or not text.strip():
        return lambda lookup: True
    toks = _tokens(text)
    pos = 0

    def peek(i: int = 0):
        return toks[pos + i] if pos + i < len(toks) else (None, None)

    def take():
        nonlocal pos
        pos += 1
        return toks[pos - 1]

    def expr():
        left = term()
        while peek()[1] == "OR":
            take()
            right = term()
            left = (lambda a, b: lambda lk: a(lk) or b(lk))(left, right)
        return left

    def term():
        left = factor()
        while peek()[1] == "AND":
            take()
            right = factor()
            left = (lambda a, b: lambda lk: a(lk) and b(lk))(left, right)
        return left

    def factor():
        kind, value = peek()
        if value == "NOT" and peek(1)[1] not in ("MATCHES", "CONTAINS"):
            take()
            inner = factor()
            return lambda lk: not inner(lk)
        if value == "(":
            take()
            inner = expr()
            if take()[1] != ")":
                raise NqlError("unbalanced parentheses in NQL")
            return inner
        return predicate()

    def attribute():
        kind, value = take()
        aggregation = None
        if kind == "word" and peek()[1] == "(":      # last(`x`:floatSeries)
            aggregation = value
            take()
            kind, value = take()
            if take()[1] != ")":
                raise NqlError("unbalanced aggregation in NQL")
        if kind != "name":
            raise NqlError(f"expected an attribute, got {value!r}")
        name = value[1:value.rindex("`")].replace("\\`", "`")
        return name, aggregation

    def predicate():
        name, aggregation = attribute()
        kind, op = take()
        if op == "EXISTS":
            return lambda lk: lk(name, aggregation) is not None
        if op == "NOT" and peek()[1] in ("MATCHES", "CONTAINS"):
            op = "NOT " + take()[1]
        if op not in _BINARY:
            raise NqlError(f"unknown NQL operator {op!r}")
        k, literal = take()
        if k != "str":
            raise NqlError("expected a quoted value in NQL")
        right = literal[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        return lambda lk: _compare(lk(name, aggregation), op, right)

    result = expr()
    if pos != len(toks):
        raise NqlError(f"unexpected {toks[pos][1]!r} in NQL")
    return result


def _number(value: Any):
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _compare(left: Any, op: str, right: str) -> bool:
    if left is None:
        return op.startswith("NOT") or op == "!="
    if op in ("MATCHES", "NOT MATCHES"):
        hit = re.search(right, str(left)) is not None
        return hit if op == "MATCHES" else not hit
    if op in ("CONTAINS", "NOT CONTAINS"):
        hit = right in left if isinstance(left, (list, set, tuple)) else right in str(left)
        return hit if op == "CONTAINS" else not hit
    if isinstance(left, bool):
        left, right = str(left).lower(), right.lower()
    elif isinstance(left, int) and not isinstance(left, bool) and _is_datetime(right):
        right = str(_iso_ms(right))
    a, b = _number(left), _number(right)
    if a is None or b is None:
        a, b = str(left), right
    return {"==": a == b, "!=": a != b, ">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b}[op]


def _is_datetime(text: str) -> bool:
    return bool(re.match(r"^\d{4}-\d\d-\d\dT", text))


def _iso_ms(text: str) -> int:
    return int(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
