"""REST v2 reads: account, workspaces, projects, experiments and per-experiment data."""
from __future__ import annotations

import io
import zipfile

from . import query as query_eval
from . import strict, total_fidelity
from .routing import Request, Response, route
from .sampling import CHART_LIMIT, SAMPLE_LIMIT, sample_each_metric
from .state import ApiError
from .views import (as_text, asset_view, experiment_name, experiment_view, metric_point_view,
                    metric_summary, project_view, summary_view)


def _workspace(req: Request, name_param: str = "workspaceName") -> str:
    ws = req.arg(name_param) or req.user.default_workspace
    if ws not in req.state.data["workspaces"] or not req.state.can_access(req.user, ws):
        raise ApiError(404, f"workspace {ws!r} not found")
    return ws


def _project(req: Request) -> dict:
    state = req.state
    if req.arg("projectId"):
        project = state.data["projects"].get(req.arg("projectId"))
        if project and state.can_access(req.user, project["workspaceName"]):
            return project
        raise ApiError(404, "project not found")
    ws = _workspace(req)
    project = state.find_project(ws, req.arg("projectName") or "")
    if project is None:
        raise ApiError(404, "project not found")
    return project


def _exp(req: Request) -> dict:
    return req.state.experiment(req.arg("experimentKey"), req.user)


@route("GET", "clientlib", "isAlive/ver", auth=False)
def is_alive_ver(req: Request):
    # A recent backend version: the SDK gates get-all metrics, get-by-name, ... on it.
    return {"version": "4.10.0"}


@route("GET", "clientlib", "health/ping", auth=False)
def health_ping(req: Request):
    return {"status": "ok"}


@route("GET", "rest", "account-details")
def account_details(req: Request):
    user = req.user
    return {"userName": user.name, "defaultWorkspaceName": user.default_workspace,
            "email": f"{user.name}@example.invalid", "workspaceNames": list(user.workspaces)}


@route("GET", "rest", "workspaces")
def workspaces(req: Request):
    with req.state.lock:
        names = [w for w in req.state.data["workspaces"] if req.state.can_access(req.user, w)]
    return {"workspaceNames": names}


@route("GET", "rest", "projects")
def projects(req: Request):
    with req.state.lock:
        ws = _workspace(req)
        items = [project_view(req.state, p) for p in req.state.data["projects"].values()
                 if p["workspaceName"] == ws]
    return {"projects": items}


@route("GET", "rest", "project")
def project(req: Request):
    with req.state.lock:
        return project_view(req.state, _project(req))


@route("GET", "rest", "project/notes")
def project_notes(req: Request):
    with req.state.lock:
        return {"notes": _project(req)["notes"]}


@route("GET", "rest", "project/column-names")
def column_names(req: Request):
    with req.state.lock:
        project = _project(req)
        exps = [e for e in req.state.data["experiments"].values() if e["projectId"] == project["projectId"]]
        return {"columns": query_eval.columns(exps)}


def _project_experiments(req: Request, project: dict, archived: bool) -> list:
    """The project's experiments, and those symlinked into it from its workspace's other projects."""
    links = set(project.get("symlinks", ()))
    return [e for e in req.state.data["experiments"].values()
            if (e["projectId"] == project["projectId"] or e["experimentKey"] in links)
            and e["archived"] == archived]


@route("GET", "rest", "experiments")
def experiments(req: Request):
    with req.state.lock:
        project = _project(req)
        exps = _project_experiments(req, project, req.arg_bool("archived"))
        sort_by = req.arg("sortBy")
        if sort_by in ("startTime", "endTime"):
            field = sort_by + "Millis"
            exps.sort(key=lambda e: (e[field] or 0), reverse=(req.arg("sortOrder") == "desc"))
        else:
            exps.sort(key=lambda e: e["createdAt"])
        size = req.arg_int("size")
        page = req.arg_int("page")
        if size and page:
            exps = exps[(page - 1) * size: page * size]
        return {"experiments": [experiment_view(req.state, e) for e in exps]}


@route("POST", "rest", "project/query")
def project_query(req: Request):
    body = req.json()
    with req.state.lock:
        ws = body.get("workspaceName") or req.user.default_workspace
        if not req.state.can_access(req.user, ws):
            raise ApiError(404, "workspace not found")
        project = req.state.find_project(ws, body.get("projectName") or "")
        if project is None:
            raise ApiError(404, "project not found")
        exps = _project_experiments(req, project, bool(body.get("archived")))
        keys = [e["experimentKey"] for e in exps if query_eval.matches_predicates(e, body.get("predicates") or [])]
    return {"experimentKeys": keys}


@route("POST", "rest", "experiments/search")
def experiments_search(req: Request):
    body = req.json()
    with req.state.lock:
        project = req.state.data["projects"].get(body.get("projectId") or "")
        if project is None or not req.state.can_access(req.user, project["workspaceName"]):
            raise ApiError(404, "project not found")
        exps = _project_experiments(req, project, bool(body.get("deleted")))
        hits = [e for e in exps if query_eval.matches_tree(e, body.get("rulesTree"))]
        limit, page = body.get("limit"), body.get("page")
        if limit and page:
            hits = hits[(page - 1) * limit: page * limit]
        return {"experiments": [experiment_view(req.state, e) for e in hits], "total": len(hits)}


@route("GET", "rest", "experiment/metadata")
def experiment_metadata(req: Request):
    with req.state.lock:
        return experiment_view(req.state, _exp(req))


@route("GET", "rest", "experiment/parameters")
def experiment_parameters(req: Request):
    with req.state.lock:
        exp = _exp(req)
        return {"values": [summary_view(n, h, True) for n, h in exp["params"].items() if h]}


@route("GET", "rest", "experiment/log-other")
def experiment_others(req: Request):
    with req.state.lock:
        exp = _exp(req)
        return {"values": [summary_view(n, h, False) for n, h in exp["others"].items() if h]}


@route("GET", "rest", "experiment/metrics/summary")
def metrics_summary(req: Request):
    with req.state.lock:
        exp = _exp(req)
        by_name = metric_summary(exp["metrics"])
        values = [summary_view(n, h, True) for n, h in by_name.items()]
        if req.state.settings.strict:
            values = [strict.summary_numbers(v) for v in values]
        return {"values": values}


def _sorted_points(points: list) -> list:
    return sorted(points, key=lambda p: (p["metricName"], p["step"] if p["step"] is not None else -1,
                                         p["timestamp"] or 0, p["offset"]))


def _answered_points(req: Request, exp: dict, points: list, limit: int = SAMPLE_LIMIT) -> list:
    """The points a metric read answers: each metric sampled like Comet's (unless the
    server was started without sampling); in strict mode, in no particular order."""
    points = sample_each_metric(_sorted_points(points), limit if req.state.settings.sampling else None)
    if req.state.settings.strict:
        points = strict.shuffled(points, exp["experimentKey"])
    return points


def _point_view(req: Request, point: dict, key=None) -> dict:
    view = metric_point_view(point, key)
    if req.state.settings.strict:
        view["offset"] = strict.big_offset(view["offset"])
    return view


@route("GET", "rest", "experiment/metrics/get-all")
def metrics_get_all(req: Request):
    with req.state.lock:
        exp = _exp(req)
        points = _answered_points(req, exp, exp["metrics"])
    return {"metrics": [_point_view(req, p) for p in points]}


@route("GET", "rest", "experiment/metrics/get-metric")
def metrics_get_metric(req: Request):
    name = req.arg("metricName")
    with req.state.lock:
        exp = _exp(req)
        points = _answered_points(req, exp, [p for p in exp["metrics"] if p["metricName"] == name])
    key = exp["experimentKey"]
    return {"experimentKey": key, "metricName": name,
            "metrics": [_point_view(req, p, key) for p in points]}


@route("POST", "rest", "experiments/multi-metric-chart")
def multi_metric_chart(req: Request):
    body = req.json()
    wanted = body.get("metrics") or []
    params = body.get("params")
    # fetchFull: up to 15,000 values per metric; without it, about 500
    limit = SAMPLE_LIMIT if body.get("fetchFull") else CHART_LIMIT
    out = {}
    with req.state.lock:
        for key in body.get("targetedExperiments") or []:
            exp = req.state.data["experiments"].get(key)
            if exp is None or not req.state.can_access(req.user, exp["workspaceName"]):
                continue
            series = []
            for name in wanted:
                points = sample_each_metric(_sorted_points([p for p in exp["metrics"] if p["metricName"] == name]),
                                            limit if req.state.settings.sampling else None)
                if not points:
                    continue
                series.append({
                    "metricName": name,
                    "values": [_chart_value(p["metricValue"]) for p in points],
                    "steps": [p["step"] for p in points], "epochs": [p["epoch"] for p in points],
                    "timestamps": [p["timestamp"] for p in points],
                    "durations": [p["timestamp"] - points[0]["timestamp"]
                                  if p["timestamp"] is not None and points[0]["timestamp"] is not None else None
                                  for p in points],
                })
            steps = sorted({p["step"] for p in exp["metrics"] if p["step"] is not None})
            epochs = sorted({p["epoch"] for p in exp["metrics"] if p["epoch"] is not None})
            param_values = None
            if params:
                param_values = {n: as_text(max(exp["params"][n], key=lambda h: h["seq"])["value"])
                                for n in params if exp["params"].get(n)}
            out[key] = {"experimentKey": key, "experimentName": experiment_name(exp),
                        "steps": steps, "epochs": epochs, "metrics": series, "params": param_values}
    return {"experiments": out, "empty": not out}


def _chart_value(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


@route("GET", "rest", "experiment/tags")
def experiment_tags(req: Request):
    with req.state.lock:
        return {"tags": list(_exp(req)["tags"])}


@route("GET", "rest", "experiment/html")
def experiment_html(req: Request):
    with req.state.lock:
        return {"html": _exp(req)["html"]}


@route("GET", "rest", "experiment/code")
def experiment_code(req: Request):
    with req.state.lock:
        return {"code": _exp(req)["code"]}


@route("GET", "rest", "experiment/output")
def experiment_output(req: Request):
    with req.state.lock:
        lines = sorted(_exp(req)["output"], key=lambda line: (line["offset"], line["seq"]))
        return {"output": "".join(line["output"] for line in lines)}


@route("GET", "rest", "experiment/graph")
def experiment_graph(req: Request):
    with req.state.lock:
        return {"graph": _exp(req)["graph"]}


@route("GET", "rest", "experiment/system-details")
def experiment_system_details(req: Request):
    with req.state.lock:
        exp = _exp(req)
        details = dict(exp["system"])
        details["systemMetricNames"] = sorted({p["metricName"] for p in exp["metrics"]
                                               if p["metricName"].startswith("sys.")})
        details["experimentKey"] = exp["experimentKey"]
        return details


@route("GET", "rest", "experiment/git/metadata")
def experiment_git_metadata(req: Request):
    with req.state.lock:
        git = _exp(req)["git"]
    return git or {"user": None, "root": None, "branch": None, "parent": None, "origin": None}


@route("GET", "rest", "experiment/git/patch")
def experiment_git_patch(req: Request):
    with req.state.lock:
        digest = _exp(req)["gitPatch"]
    if not digest:
        # The SDK treats a body starting with {"msg" as "no patch".
        return {"msg": "no git patch"}
    return Response(body=req.state.blobs.get(digest), content_type="application/octet-stream")


def _asset_list(exp: dict, kind: str, state=None) -> list:
    if state is not None:
        total_fidelity.refresh(state, exp)
    assets = sorted((a for a in exp["assets"].values() if state is None or total_fidelity.visible(state, a)),
                    key=lambda a: a["seq"])
    if kind and kind != "all":
        assets = [a for a in assets if a["type"] == kind]
    return assets


@route("GET", "rest", "experiment/asset/list")
def asset_list(req: Request):
    with req.state.lock:
        assets = _asset_list(_exp(req), req.arg("type", "all"), req.state)
        return {"assets": [_asset_view(req, a) for a in assets]}


def _asset_view(req: Request, asset: dict) -> dict:
    view = asset_view(req.base_url, asset)
    return strict.asset_view(view, req.base_url) if req.state.settings.strict else view


@route("GET", "rest", "experiment/asset/get-by-name")
def asset_get_by_name(req: Request):
    name = req.arg("assetName")
    with req.state.lock:
        assets = [a for a in _asset_list(_exp(req), req.arg("type", "all"), req.state) if a["fileName"] == name]
        return {"assets": [_asset_view(req, a) for a in assets]}


def find_asset(req: Request) -> dict:
    """An experiment asset (by experimentKey) or an artifact file (by artifactVersionId)."""
    state = req.state
    asset_id = req.arg("assetId")
    version_id = req.arg("artifactVersionId")
    if version_id:
        for artifact in state.data["artifacts"].values():
            for version in artifact["versions"]:
                if version["artifactVersionId"] == version_id and asset_id in version["files"]:
                    if not state.can_access(req.user, artifact["workspaceName"]):
                        break
                    return version["files"][asset_id]
        raise ApiError(404, "asset not found")
    exp = _exp(req)
    total_fidelity.refresh(state, exp)
    asset = exp["assets"].get(asset_id)
    if asset is None or not total_fidelity.visible(state, asset):
        raise ApiError(404, "asset not found")
    return asset


@route("GET", "rest", "experiment/asset/get-asset")
def get_asset(req: Request):
    with req.state.lock:
        asset = find_asset(req)
    if asset["remote"] or not asset.get("blob"):
        raise ApiError(404, "remote asset has no stored bytes")
    if req.state.settings.strict and req.arg_bool("allow301") and asset.get("experimentKey") \
            and not asset.get("artifactVersionId"):
        # Comet hands large downloads to object storage: a redirect to a presigned URL
        return Response(status=302, body=b"", content_type="text/plain", headers={
            "Location": strict.presigned_url(req.base_url, asset["experimentKey"], asset["assetId"])})
    digest = asset["blob"]
    # A plain 200 with the bytes, streamed, also when allow301=True outside strict mode.
    return Response(body=req.state.blobs.iter(digest), length=req.state.blobs.size(digest),
                    content_type="application/octet-stream")


@route("GET", "rest", "experiment/asset/presigned", auth=False)
def presigned_asset(req: Request):
    """What a presigned object-storage URL answers: the bytes (byte ranges too), and a
    refusal for any request that also carries an Authorization header."""
    if req.headers.get("Authorization"):
        raise ApiError(400, "Only one auth mechanism allowed; only the X-Amz-Algorithm query "
                            "parameter, Signature query string parameter or the Authorization "
                            "header should be specified")
    key, asset_id = req.arg("experimentKey"), req.arg("assetId")
    if not strict.signature_ok(key, asset_id, req.arg("X-Amz-Signature")):
        raise ApiError(403, "SignatureDoesNotMatch")
    with req.state.lock:
        exp = req.state.data["experiments"].get(key or "")
        asset = (exp or {}).get("assets", {}).get(asset_id)
    if asset is None or not asset.get("blob"):
        raise ApiError(404, "NoSuchKey")
    digest, size = asset["blob"], req.state.blobs.size(asset["blob"])
    byte_range = _byte_range(req.headers.get("Range"), size)
    if byte_range is None:
        return Response(body=req.state.blobs.iter(digest), length=size,
                        content_type="application/octet-stream", headers={"Accept-Ranges": "bytes"})
    start, end = byte_range
    return Response(status=206, body=req.state.blobs.iter_range(digest, start, end + 1), length=end + 1 - start,
                    content_type="application/octet-stream",
                    headers={"Content-Range": f"bytes {start}-{end}/{size}", "Accept-Ranges": "bytes"})


def _byte_range(header, size: int):
    """(first, last) of a `Range: bytes=a-b` header, or None for the whole body."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[len("bytes="):].partition("-")
    try:
        if first == "":
            start, end = max(0, size - int(last)), size - 1
        else:
            start, end = int(first), min(size - 1, int(last)) if last else size - 1
    except ValueError:
        return None
    if start > end or start >= size:
        raise ApiError(416, "InvalidRange")
    return start, end


@route("GET", "rest", "experiment/model")
def experiment_models(req: Request):
    with req.state.lock:
        exp = _exp(req)
        return {"models": [{"experimentModelId": mid, "experimentKey": exp["experimentKey"], "modelName": name}
                           for name, mid in exp["models"].items()]}


def model_assets(exp: dict, name: str) -> list:
    return [a for a in _asset_list(exp, "model-element") if a.get("groupingName") == name]


@route("GET", "rest", "experiment/model/asset/list")
def experiment_model_assets(req: Request):
    with req.state.lock:
        assets = model_assets(_exp(req), req.arg("modelName"))
        return {"assets": [_asset_view(req, a) for a in assets]}


def model_zip(state, assets: list) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for asset in assets:
            if asset.get("blob"):
                zf.writestr(asset["fileName"], state.blobs.get(asset["blob"]))
    return buf.getvalue()


@route("GET", "rest", "experiment/model/download")
def experiment_model_download(req: Request):
    with req.state.lock:
        assets = model_assets(_exp(req), req.arg("modelName"))
    if not assets:
        raise ApiError(404, "model not found")
    return Response(body=model_zip(req.state, assets), content_type="application/octet-stream")
