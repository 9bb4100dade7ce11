"""`--query`: Comet's query expressions, parsed with `ast` and evaluated safely.

Accepted, as in Comet's Python query language:
    Metric("loss") < 0.5 & Parameter("lr") == 0.01 | Tag("best") & ~Other("x").contains("y")
Calls: Metadata, Metric, Parameter, Other, Tag (Environment is not supported);
operators: == != < <= > >=, & | ~ (and/or/not too), and the methods
.contains / .startswith / .endswith on a value.  Nothing is ever eval()ed:
anything else in the expression is rejected with one line.  Each experiment
costs only the requests its terms need (tags, parameters, others, metric summary).
"""
from __future__ import annotations

import ast
import operator
from typing import Any

from .. import SourceError

_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
            ast.Gt: operator.gt, ast.GtE: operator.ge}
_METHODS = {"contains": lambda a, b: b in a, "startswith": lambda a, b: a.startswith(b),
            "endswith": lambda a, b: a.endswith(b)}
_TERMS = {"Metadata", "Metric", "Parameter", "Other", "Tag"}
_ENDPOINT = {"Metric": ("experiment/metrics/summary", "values"),
             "Parameter": ("experiment/parameters", "values"),
             "Other": ("experiment/log-other", "values")}


def _number(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


class _Evaluation:
    def __init__(self, reader, listing: dict):
        self.reader = reader
        self.listing = listing
        self.cache: dict[str, Any] = {}

    def _summary(self, kind: str) -> dict:
        if kind not in self.cache:
            endpoint, field = _ENDPOINT[kind]
            rows = self.reader.experiment_json(endpoint, self.listing["experimentKey"]).get(field, [])
            self.cache[kind] = {r["name"]: r.get("valueCurrent") for r in rows}
        return self.cache[kind]

    def term(self, kind: str, name: str) -> Any:
        if kind == "Metadata":
            return self.listing.get(name)
        if kind == "Tag":
            if "Tag" not in self.cache:
                self.cache["Tag"] = set(self.reader.experiment_json(
                    "experiment/tags", self.listing["experimentKey"]).get("tags", []))
            return name in self.cache["Tag"]
        return _number(self._summary(kind).get(name))

    def eval(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return self.eval(node.body)
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            return self.term(node.func.id, node.args[0].value)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            value = self.eval(node.func.value)
            arg = self.eval(node.args[0])
            return value is not None and _METHODS[node.func.attr](str(value), str(arg))
        if isinstance(node, ast.Compare):
            left = self.eval(node.left)
            for op, right_node in zip(node.ops, node.comparators):
                right = self.eval(right_node)
                try:
                    if not _COMPARE[type(op)](left, right):
                        return False
                except TypeError:
                    return False   # e.g. a missing metric compared with a number
                left = right
            return True
        if isinstance(node, ast.BinOp):
            a, b = bool(self.eval(node.left)), bool(self.eval(node.right))
            return a and b if isinstance(node.op, ast.BitAnd) else a or b
        if isinstance(node, ast.BoolOp):
            values = (bool(self.eval(v)) for v in node.values)
            return all(values) if isinstance(node.op, ast.And) else any(values)
        if isinstance(node, ast.UnaryOp):
            return not bool(self.eval(node.operand))
        raise AssertionError("validated away")


def _validate(node: ast.AST, text: str) -> None:
    def bad(what: str):
        raise SourceError(f"cannot use {what} in --query {text!r}")
    callees = {id(n.func) for n in ast.walk(node) if isinstance(n, ast.Call)}
    for n in ast.walk(node):
        if isinstance(n, (ast.Expression, ast.Compare, ast.BoolOp, ast.And, ast.Or, ast.Load,
                          ast.BitAnd, ast.BitOr, ast.Not, ast.Invert)) or type(n) in _COMPARE:
            continue
        if isinstance(n, ast.Constant):
            if not isinstance(n.value, (str, int, float, bool)) and n.value is not None:
                bad(repr(n.value))
        elif isinstance(n, ast.BinOp):
            if not isinstance(n.op, (ast.BitAnd, ast.BitOr)):
                bad("arithmetic")
        elif isinstance(n, ast.UnaryOp):
            if not isinstance(n.op, (ast.Not, ast.Invert)):
                bad("that operator")
        elif isinstance(n, ast.Call):
            if isinstance(n.func, ast.Name):
                if n.func.id not in _TERMS:
                    bad(f"{n.func.id}()")
                if len(n.args) != 1 or n.keywords or not isinstance(n.args[0], ast.Constant) \
                        or not isinstance(n.args[0].value, str):
                    bad(f"{n.func.id}() without one quoted name")
            elif isinstance(n.func, ast.Attribute):
                if n.func.attr not in _METHODS or len(n.args) != 1 or n.keywords:
                    bad(f".{n.func.attr}()")
            else:
                bad("that call")
        elif isinstance(n, (ast.Name, ast.Attribute)):
            if id(n) not in callees:
                bad(f"the bare name {ast.unparse(n)!r}")
        else:
            bad(type(n).__name__)


class CompiledQuery:
    def __init__(self, text: str):
        try:
            self.tree = ast.parse(text, mode="eval")
        except SyntaxError:
            raise SourceError(f"cannot parse --query {text!r}") from None
        _validate(self.tree, text)

    def matches(self, reader, listing: dict) -> bool:
        return bool(_Evaluation(reader, listing).eval(self.tree))


def compile_query(text: str) -> CompiledQuery:
    return CompiledQuery(text)
