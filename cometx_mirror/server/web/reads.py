"""The JSON the page reads: the tree, a project's table, one experiment, metric series."""
from __future__ import annotations

from typing import Any

from ..state import ApiError

MAX_BUCKETS = 4000


def _records(state, keys: list[str]) -> list[dict]:
    exps = state.catalog()["experiments"]
    out = []
    for key in keys:
        if key not in exps:
            raise ApiError(404, f"no experiment {key!r}")
        out.append(exps[key])
    return out


def tree(state, query: dict) -> dict:
    catalog = state.catalog()
    counts: dict[str, int] = {}
    for e in catalog["experiments"].values():
        counts[e["projectId"]] = counts.get(e["projectId"], 0) + 1
    workspaces: dict[str, list] = {ws: [] for ws in catalog["workspaces"]}
    for p in catalog["projects"].values():
        workspaces[p["workspaceName"]].append({"project": p["projectName"], "projectId": p["projectId"],
                                               "experiments": counts.get(p["projectId"], 0),
                                               "description": p["projectDescription"]})
    return {"workspaces": [{"workspace": ws, "projects": sorted(ps, key=lambda p: p["project"])}
                           for ws, ps in sorted(workspaces.items())]}


def experiments(state, query: dict) -> dict:
    """A project's table: one row per experiment, its params and per-metric last/min/max."""
    project = state.find_project(query.get("workspace") or "", query.get("project") or "")
    if project is None:
        raise ApiError(404, "no such project")
    rows = [e for e in state.catalog()["experiments"].values() if e["projectId"] == project["projectId"]]
    ids = [e["_exp_id"] for e in rows]
    params: dict[str, dict] = {i: {} for i in ids}
    metrics: dict[str, dict] = {i: {} for i in ids}
    tags: dict[str, list] = {i: [] for i in ids}
    if ids:
        with state.connect() as con:
            con.execute("CREATE TEMP TABLE wanted (exp_id VARCHAR)")
            con.executemany("INSERT INTO wanted VALUES (?)", [[i] for i in ids])
            for exp_id, name, value in con.execute(
                    "SELECT exp_id, name, value FROM params JOIN wanted USING (exp_id)").fetchall():
                params[exp_id][name] = value
            for exp_id, tag in con.execute(
                    "SELECT exp_id, tag FROM tags JOIN wanted USING (exp_id) ORDER BY tag").fetchall():
                tags[exp_id].append(tag)
            for exp_id, name, last, low, high, n in con.execute("""
                    SELECT exp_id, name, arg_max(value, {'s': coalesce(step, -1), 't': coalesce(epoch_ms(timestamp), 0)}),
                           min(value), max(value), count(*)
                    FROM metrics JOIN wanted USING (exp_id) GROUP BY exp_id, name""").fetchall():
                metrics[exp_id][name] = {"last": last, "min": low, "max": high, "points": n}
    out = []
    for e in rows:
        start, end = e["startTimeMillis"], e["endTimeMillis"]
        out.append({"key": e["experimentKey"], "name": _name(e), "state": e["_state"], "source": e["_source"],
                    "start": start, "duration": (end - start) if start is not None and end is not None else None,
                    "tags": tags[e["_exp_id"]], "params": params[e["_exp_id"]],
                    "metrics": metrics[e["_exp_id"]]})
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
            "key": e["experimentKey"], "name": _name(e), "state": e["_state"], "source": e["_source"],
            "workspace": e["workspaceName"], "project": project["projectName"],
            "start": e["startTimeMillis"], "end": e["endTimeMillis"], "tags": list(e["tags"]),
            "params": {n: h[-1]["value"] for n, h in e["params"].items()},
            "others": {n: h[-1]["value"] for n, h in e["others"].items()},
            "system": {k: v for k, v in e["system"].items() if v not in (None, [], "")},
            "html": e["html"], "output": "".join(line["output"] for line in e["output"]),
            "metrics": metric_names,
            "assets": [{"id": a["assetId"], "name": a["fileName"], "type": a["type"], "size": a["fileSize"],
                        "step": a["step"], "remote": a["remote"], "link": a["link"] if a["remote"] else None}
                       for a in assets],
        }


def metric_names(state, query: dict) -> dict:
    records = _records(state, [k for k in (query.get("keys") or "").split(",") if k])
    with state.connect() as con:
        names = [r[0] for r in con.execute(
            "SELECT DISTINCT name FROM metrics WHERE list_contains(?, exp_id) ORDER BY name",
            [[e["_exp_id"] for e in records]]).fetchall()]
    return {"metrics": names}


def series(state, query: dict) -> dict:
    """Each run's points of one metric on x = step or time (ms), at most a min and a max per
    bucket of [lo, hi]; `points` says how many the range holds in all."""
    records = _records(state, [k for k in (query.get("keys") or "").split(",") if k])
    metric = query.get("metric") or ""
    x = "epoch_ms(timestamp)" if query.get("x") == "time" else "step"
    try:
        buckets = max(1, min(MAX_BUCKETS, int(query.get("buckets") or 1000)))
        lo = float(query["lo"]) if query.get("lo") not in (None, "") else None
        hi = float(query["hi"]) if query.get("hi") not in (None, "") else None
    except ValueError:
        raise ApiError(400, "buckets, lo and hi are numbers") from None
    out = []
    with state.connect() as con:
        for e in records:
            where = f"exp_id = ? AND name = ? AND {x} IS NOT NULL AND value IS NOT NULL"
            args: list = [e["_exp_id"], metric]
            if lo is not None:
                where += f" AND {x} >= ?"
                args.append(lo)
            if hi is not None:
                where += f" AND {x} <= ?"
                args.append(hi)
            n, x0, x1 = con.execute(f"SELECT count(*), min({x}), max({x}) FROM metrics WHERE {where}",
                                    args).fetchone()
            if not n:
                out.append({"key": e["experimentKey"], "name": _name(e), "points": 0, "x": [], "y": []})
                continue
            if n <= 2 * buckets:
                rows = con.execute(f"SELECT {x}, value FROM metrics WHERE {where} ORDER BY {x}", args).fetchall()
            else:
                width = (x1 - x0) / buckets or 1
                rows = con.execute(f"""
                    WITH p AS (SELECT {x} AS x, value, floor(({x} - ?) / ?) AS b FROM metrics WHERE {where}),
                    ends AS (SELECT b, arg_min(x, value) AS xlo, min(value) AS ylo,
                                       arg_max(x, value) AS xhi, max(value) AS yhi FROM p GROUP BY b)
                    SELECT x, y FROM (SELECT xlo AS x, ylo AS y FROM ends UNION ALL SELECT xhi, yhi FROM ends)
                    ORDER BY x""", [x0, width] + args).fetchall()
            out.append({"key": e["experimentKey"], "name": _name(e), "points": n,
                        "x": [r[0] for r in rows], "y": [r[1] for r in rows]})
    return {"metric": metric, "x": "time" if x != "step" else "step", "series": out}


READS = {"tree": tree, "experiments": experiments, "experiment": experiment, "metrics": metric_names,
         "series": series}
