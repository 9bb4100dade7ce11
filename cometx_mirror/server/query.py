"""Evaluating the SDK's query predicates (`API.query`, `API.search`) over experiments.

A leaf rule is `{"field", "type", "operator", "value"[, "source"]}`; groups are
`{"condition": "AND"|"OR", "rules": [...]}`.  `project/query` sends a list of
`{"source", "query": group}` predicates that must all hold.
"""
from __future__ import annotations

from typing import Any, Optional

from .views import as_text, experiment_name

METADATA_FIELDS = {
    "experimentName": ("string", lambda e: experiment_name(e)),
    "experimentKey": ("string", lambda e: e["experimentKey"]),
    "start_server_timestamp": ("datetime", lambda e: e["startTimeMillis"]),
    "end_server_timestamp": ("datetime", lambda e: e["endTimeMillis"]),
    "duration": ("timenumber", lambda e: ((e["endTimeMillis"] or 0) - (e["startTimeMillis"] or 0)) / 1000.0),
    "file_name": ("string", lambda e: e["fileName"]),
    "file_path": ("string", lambda e: e["filePath"]),
    "hasCrashed": ("boolean", lambda e: e["hasCrashed"]),
}


def _latest(history: list) -> Any:
    return max(history, key=lambda h: h["seq"])["value"] if history else None


def _last_metric(exp: dict, name: str) -> Any:
    points = [p for p in exp["metrics"] if p["metricName"] == name]
    return max(points, key=lambda p: p["offset"])["metricValue"] if points else None


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "double"
    return "string"


def columns(exps: list) -> list:
    seen: dict[tuple, str] = {}
    for exp in exps:
        for p in exp["metrics"]:
            seen.setdefault((p["metricName"], "metrics"), "double")
        for name, history in exp["params"].items():
            seen.setdefault((name, "params"), _kind(_latest(history)))
        for name, history in exp["others"].items():
            seen.setdefault((name, "log_other"), _kind(_latest(history)))
        for tag in exp["tags"]:
            seen.setdefault((tag, "tag"), "string")
        for key, value in exp["system"].items():
            if isinstance(value, (str, int, float)) and not isinstance(value, bool):
                seen.setdefault((key, "env_details"), _kind(value))
    for name, (kind, _) in METADATA_FIELDS.items():
        seen.setdefault((name, "metadata"), kind)
    return [{"name": n, "id": f"{n}--{s}", "type": t, "source": s} for (n, s), t in seen.items()]


def value_of(exp: dict, source: Optional[str], field: str) -> Any:
    if source == "metrics":
        return _last_metric(exp, field)
    if source == "params":
        return _latest(exp["params"].get(field, []))
    if source == "log_other":
        return _latest(exp["others"].get(field, []))
    if source == "tag":
        return field in exp["tags"]
    if source == "env_details":
        return exp["system"].get(field)
    if source == "metadata" and field in METADATA_FIELDS:
        return METADATA_FIELDS[field][1](exp)
    return None


def _num(value: Any) -> Optional[float]:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _compare(op: str, actual: Any, wanted: Any) -> bool:
    if op == "is_null":
        return actual is None
    if op == "is_not_null":
        return actual is not None
    if op == "is_empty":
        return actual in (None, "")
    if op == "is_not_empty":
        return actual not in (None, "")
    if actual is None:
        return op.startswith("not_") or op == "not_equal"
    text, want_text = as_text(actual), as_text(wanted)
    a, b = _num(actual), _num(wanted)
    numeric = a is not None and b is not None
    if op in ("equal", "not_equal"):
        same = (a == b) if numeric else (str(text).lower() == str(want_text).lower())
        return same if op == "equal" else not same
    if op in ("less", "less_or_equal", "greater", "greater_or_equal"):
        if not numeric:
            a, b = text, want_text
        return {"less": a < b, "less_or_equal": a <= b, "greater": a > b, "greater_or_equal": a >= b}[op]
    if op in ("between", "not_between"):
        low, high = (_num(v) for v in wanted)
        inside = a is not None and low <= a <= high
        return inside if op == "between" else not inside
    positive = {"contains": str(want_text) in str(text),
                "begins_with": str(text).startswith(str(want_text)),
                "ends_with": str(text).endswith(str(want_text))}
    if op in positive:
        return positive[op]
    if op.startswith("not_") and op[4:] in positive:
        return not positive[op[4:]]
    return False


def _eval(exp: dict, node: Any, source: Optional[str]) -> bool:
    if not isinstance(node, dict):
        return True
    if "rules" in node:
        results = [_eval(exp, r, node.get("source", source)) for r in node["rules"]]
        if not results:
            return True
        return any(results) if str(node.get("condition", "AND")).upper() == "OR" else all(results)
    src = node.get("source", source)
    if src == "tag":
        has = node.get("field") in exp["tags"]
        return has if node.get("operator") in ("equal", "is_not_null", "is_not_empty", None) else not has
    return _compare(node.get("operator"), value_of(exp, src, node.get("field")), node.get("value"))


def matches_predicates(exp: dict, predicates: list) -> bool:
    return all(_eval(exp, p.get("query"), p.get("source")) for p in predicates)


def matches_tree(exp: dict, tree: Any) -> bool:
    return _eval(exp, tree, None) if tree else True
