"""What each Comet REST v2 read answers, checked once, where every read passes.

A server that answers valid JSON of another shape (a list where Comet sends an
object, a string, null, rows without their key) is not Comet's API for that
path; fetch and normalize index into these bodies, so without this check the
answer surfaces later as a TypeError.  Each shape names only what this package
reads: a key in REQUIRED is indexed with [], others are read with .get() and
may be absent or null, but must have the right type when present.  Extra keys
are always welcome: Comet adds fields over time.
"""
from __future__ import annotations

from typing import Any

from .. import SourceError

OBJECT = dict
TEXT = str
NUMBER = (int, float)
SCALAR = (str, int, float)


class Required:
    """A key that must be present (and not null)."""

    def __init__(self, spec: Any):
        self.spec = spec


def rows(**fields: Any) -> list:
    """A list of objects with these fields."""
    return [dict(fields)]


def _values(**extra: Any) -> dict:
    return {"values": rows(name=Required(TEXT), **extra)}


# endpoint -> shape.  Every endpoint answers a JSON object; the shape says what is in it.
SHAPES: dict[str, Any] = {
    "workspaces": {"workspaceNames": [TEXT]},
    "projects": {"projects": rows(projectName=Required(TEXT))},
    "project": {"projectId": TEXT, "lastUpdated": SCALAR, "numberOfExperiments": NUMBER},
    "experiments": {"experiments": rows(experimentKey=Required(TEXT), experimentName=TEXT)},
    "experiment/metadata": {"experimentKey": Required(TEXT), "workspaceName": TEXT, "experimentName": TEXT},
    "experiment/tags": {"tags": [SCALAR]},
    "experiment/parameters": _values(),
    "experiment/log-other": _values(),
    "experiment/metrics/get-all": {"metrics": rows(metricName=Required(TEXT))},
    "experiment/system-details": {"installedPackages": [TEXT]},
    "experiment/html": {"html": TEXT},
    "experiment/code": {"code": TEXT},
    "experiment/output": {"output": TEXT},
    "experiment/graph": {"graph": TEXT},
    "experiment/asset/list": {"assets": rows(assetId=TEXT, fileName=TEXT, fileSize=NUMBER, type=TEXT,
                                             link=TEXT)},
    "artifacts/get-all": {"artifacts": rows(name=TEXT)},
    "artifacts/get": {"versions": rows(artifactVersionId=TEXT, alias=[TEXT])},
    "artifacts/version/files": {"files": rows(assetId=TEXT, fileName=TEXT, fileSize=NUMBER)},
    "registry-model": {"registryModels": rows(modelName=TEXT)},
    "registry-model/details": {"versions": rows(stages=[TEXT])},
    "code-panel/get-all": {"codePanelTemplateRows": rows(templateId=Required(SCALAR), templateName=TEXT)},
}


class NotCometApi(SourceError):
    """The server answered, but not as Comet's API does for that path."""


def not_comet(host: str, endpoint: str, detail: str) -> NotCometApi:
    return NotCometApi(f"the server at {host} answered something that is not Comet's API for "
                       f"{endpoint.split('?')[0]} ({detail})")


def problem(endpoint: str, body: Any) -> str | None:
    """None when `body` has the shape Comet answers for `endpoint`, else what is wrong."""
    return _check(SHAPES.get(endpoint, {}), body, "the answer")


def item_problem(endpoint: str, key: str, index: int, item: Any) -> str | None:
    """`problem` for one entry of the answer's list `key`, checked as it is read (json_stream)."""
    return _check(SHAPES[endpoint][key][0], item, f"{key!r}[{index}]")


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"
            }.get(type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)


def _check(spec: Any, value: Any, where: str) -> str | None:
    if isinstance(spec, Required):
        spec = spec.spec
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            return f"{where} is {_kind(value)}, not an object"
        for key, sub in spec.items():
            if key not in value or value[key] is None:
                if isinstance(sub, Required):
                    return f"{where} has no {key!r}"
                continue
            found = _check(sub, value[key], f"{key!r}")
            if found:
                return found
        return None
    if isinstance(spec, list):
        if not isinstance(value, list):
            return f"{where} is {_kind(value)}, not a list"
        for i, item in enumerate(value):
            found = _check(spec[0], item, f"{where}[{i}]")
            if found:
                return found
        return None
    types = spec if isinstance(spec, tuple) else (spec,)
    if isinstance(value, bool) and bool not in types:
        return f"{where} is a boolean"
    if not isinstance(value, types):
        return f"{where} is {_kind(value)}"
    return None
