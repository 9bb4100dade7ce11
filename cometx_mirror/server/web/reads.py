"""The JSON the page reads: the tree, a project's table, one experiment, metric series.

Light parts come from `state.data`, which the in-memory State and a mirror's MirrorState
both offer; the heavy reads (a table's stats, metric names, series) go to index_reads
(SQL over a mirror's index) or memory_reads (the State's own records), chosen in `_heavy`.
"""
from __future__ import annotations

from typing import Any

from ..state import ApiError
from ..views import summary_view
from . import index_reads, memory_reads

MAX_BUCKETS = 4000


def _heavy(state):
    return index_reads if hasattr(state, "connect") else memory_reads


def _state_of(e: dict) -> str:
    if "_state" in e:
        return e["_state"]
    return "crashed" if e.get("hasCrashed") else "running" if e.get("running") else "finished"


def _records(state, keys: list[str]) -> list[dict]:
    exps = state.data["experiments"]
    out = []
    for key in keys:
        if key not in exps:
            raise ApiError(404, f"no experiment {key!r}")
        out.append(exps[key])
    return out


def tree(state, query: dict) -> dict:
    with state.lock:
        data = state.data
        counts: dict[str, int] = {}
        for e in data["experiments"].values():
            counts[e["projectId"]] = counts.get(e["projectId"], 0) + 1
        workspaces: dict[str, list] = {ws: [] for ws in data["workspaces"]}
        for p in data["projects"].values():
            workspaces.setdefault(p["workspaceName"], []).append(
                {"project": p["projectName"], "projectId": p["projectId"],
                 "experiments": counts.get(p["projectId"], 0), "description": p["projectDescription"]})
    return {"workspaces": [{"workspace": ws, "projects": sorted(ps, key=lambda p: p["project"])}
                           for ws, ps in sorted(workspaces.items())]}


def experiments(state, query: dict) -> dict:
    """A project's table: one row per experiment, its params and per-metric last/min/max."""
    with state.lock:
        project = state.find_project(query.get("workspace") or "", query.get("project") or "")
        if project is None:
            raise ApiError(404, "no such project")
        rows = [e for e in state.data["experiments"].values() if e["projectId"] == project["projectId"]]
    stats = _heavy(state).table_stats(state, rows)
    out = []
    for e in rows:
        start, end = e["startTimeMillis"], e["endTimeMillis"]
        s = stats[e["runId"]]
        out.append({"key": e["experimentKey"], "name": _name(e), "state": _state_of(e),
                    "source": e.get("_source", "comet"), "start": start,
                    "duration": (end - start) if start is not None and end is not None else None,
                    "tags": s["tags"], "params": s["params"], "metrics": s["metrics"]})
    return {"workspace": project["workspaceName"], "project": project["projectName"], "experiments": out}


def _name(e: dict) -> Any:
    history = e["others"].get("Name")
    return history[0]["value"] if history else e["name"]


def experiment(state, query: dict) -> dict:
    with state.lock:
        e = _records(state, [query.get("key") or ""])[0]
        metric_names = sorted({p["metricName"] for p in e["metrics"]})
        assets = sorted(e["assets"].values(), key=lambda a: a["seq"])
        project = state.project_of(e)
        return {
            "key": e["experimentKey"], "name": _name(e), "state": _state_of(e),
            "source": e.get("_source", "comet"), "workspace": e["workspaceName"], "project": project["projectName"],
            "start": e["startTimeMillis"], "end": e["endTimeMillis"], "tags": list(e["tags"]),
            "params": {n: summary_view(n, h, False)["valueCurrent"] for n, h in e["params"].items() if h},
            "others": {n: summary_view(n, h, False)["valueCurrent"] for n, h in e["others"].items() if h},
            "system": {k: v for k, v in e["system"].items() if v not in (None, [], "")},
            "html": e["html"], "output": "".join(line["output"] for line in e["output"]),
            "metrics": metric_names,
            "assets": [{"id": a["assetId"], "name": a["fileName"], "type": a["type"], "size": a["fileSize"],
                        "step": a["step"], "remote": a["remote"], "link": a["link"] if a["remote"] else None}
                       for a in assets],
        }


def metric_names(state, query: dict) -> dict:
    records = _records(state, [k for k in (query.get("keys") or "").split(",") if k])
    return {"metrics": _heavy(state).metric_names(state, records)}


def series(state, query: dict) -> dict:
    """Each run's points of one metric on x = step or time (ms), at most a min and a max per
    bucket of [lo, hi]; `points` says how many the range holds in all."""
    records = _records(state, [k for k in (query.get("keys") or "").split(",") if k])
    metric = query.get("metric") or ""
    by_time = query.get("x") == "time"
    try:
        buckets = max(1, min(MAX_BUCKETS, int(query.get("buckets") or 1000)))
        lo = float(query["lo"]) if query.get("lo") not in (None, "") else None
        hi = float(query["hi"]) if query.get("hi") not in (None, "") else None
    except ValueError:
        raise ApiError(400, "buckets, lo and hi are numbers") from None
    answers = _heavy(state).series(state, records, metric, by_time, lo, hi, buckets)
    return {"metric": metric, "x": "time" if by_time else "step",
            "series": [{"key": e["experimentKey"], "name": _name(e), "points": n, "x": xs, "y": ys}
                       for e, (n, xs, ys) in zip(records, answers)]}


READS = {"tree": tree, "experiments": experiments, "experiment": experiment, "metrics": metric_names,
         "series": series}
