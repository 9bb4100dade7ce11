"""Ingestion (`/clientlib/...`): what `Experiment`, `OfflineExperiment` uploads and
file uploads send.  Metrics are stored unsampled, every point, as sent."""
from __future__ import annotations

import json
from typing import Any, Optional

from .routing import Request, route
from .state import ApiError, State, new_id, now_ms

# comet_ml error codes (comet_ml.exceptions)
NO_WRITE_ACCESS = 90210
NON_EXISTING_TEAM = 90219
EXPERIMENT_ALREADY_EXISTS = 90999

# The SDK uploads 3D histograms as "histogram3d"; Comet lists them as "histogram_combined_3d".
UPLOAD_TYPE_ALIASES = {"histogram3d": "histogram_combined_3d"}
ASSET_DIRS = {"asset": "assets", "image": "images", "audio": "audio", "video": "video",
              "source_code": "code", "notebook": "notebooks"}


def handshake(req: Request, exp: dict) -> dict:
    project = req.state.project_of(exp)
    return {
        "runId": exp["runId"], "project_id": exp["projectId"],
        "focusUrl": f"{req.base_url}/{exp['workspaceName']}/{project['projectName']}/",
        "lastOffset": max((line["offset"] for line in exp["output"]), default=0),
        "name": exp["name"], "featureToggles": [], "githubEnabled": False,
        "upload_file_size_limit_in_mb": 200, "uploadVideoMaxSizeMB": 200,
        "asset_upload_file_size_limit_in_mb": 100 * 1024,
        "cometWebAssetUrl": None, "cometWebImageUrl": None,
        "cometRestApiAssetUrl": None, "cometRestApiImageUrl": None,
        "s3DirectAccessEnabled": False, "artifactNameMaxLength": 256,
        "assetNameMaxLength": 1024, "imageNameMaxLength": 1024, "msg": None,
    }


def _key_of(req: Request, body: Optional[dict] = None) -> Optional[str]:
    body = body if body is not None else (req.json() if req.body and not req.parts() else {})
    return (body.get("experimentKey") if isinstance(body, dict) else None) \
        or req.arg("experimentKey") or req.arg("experimentId")


def writable_experiment(req: Request, body: Optional[dict] = None) -> dict:
    return req.state.experiment(_key_of(req, body), req.user)


@route("POST", "clientlib", "logger/add/run")
def add_run(req: Request):
    body = req.json()
    state: State = req.state
    ws = body.get("teamName") or req.user.default_workspace
    with state.lock:
        if not state.can_access(req.user, ws):
            raise ApiError(400, f"workspace {ws!r} does not exist", NON_EXISTING_TEAM)
        key = body.get("experimentKey") or new_id()
        existing = state.data["experiments"].get(key)
        if existing is not None:
            if not body.get("getOrCreateEnabled") or not state.can_access(req.user, existing["workspaceName"]):
                raise ApiError(400, f"experiment {key} already exists", EXPERIMENT_ALREADY_EXISTS)
            return handshake(req, existing)
        project = state.ensure_project(ws, body.get("projectName") or "general", req.user.name)
        exp = state.new_experiment(key, project, None, req.user.name)
        exp["offline"] = bool(body.get("offline"))
        exp["running"] = not exp["offline"]
        return handshake(req, exp)


@route("POST", "clientlib", "logger/get/run")
def get_run(req: Request):
    body = req.json()
    with req.state.lock:
        exp = req.state.data["experiments"].get(body.get("previousExperiment") or "")
        if exp is None or not req.state.can_access(req.user, exp["workspaceName"]):
            raise ApiError(400, "experiment not found", NO_WRITE_ACCESS)
        return handshake(req, exp)


@route("POST", "clientlib", "asset/3d-limits")
def limits_3d(req: Request):
    return {"maxPoints": 1_000_000, "maxPointsFileSizeInBytes": 100 << 20,
            "maxBoxes": 100_000, "maxBoxesFileSizeInBytes": 100 << 20}


@route("POST", "clientlib", "status-report/update")
def status_update(req: Request):
    body = req.json()
    with req.state.lock:
        exp = writable_experiment(req, body)
        alive = bool(body.get("is_alive"))
        exp["running"] = alive
        if not exp["offline"] or not alive:
            exp["endTimeMillis"] = now_ms()
        req.state.touch()
    # The two *_millis keys are required by the SDK (ValueError otherwise).
    return {"is_alive_beat_duration_millis": 10_000, "gpu_monitor_interval_millis": 60_000,
            "cpu_monitor_interval_millis": 60_000, "parameter_update_interval_millis": 5_000,
            "pending_rpcs": False}


@route("POST", "clientlib", "status-report/offline-metadata")
def offline_metadata(req: Request):
    body = req.json()
    with req.state.lock:
        exp = writable_experiment(req, body)
        if body.get("startTimestamp") is not None:
            exp["startTimeMillis"] = int(body["startTimestamp"])
        if body.get("endTimestamp") is not None:
            exp["endTimeMillis"] = int(body["endTimestamp"])
        exp["running"] = False
        req.state.touch()
    return {}


@route("POST", "clientlib", "notification/experiment")
def notification(req: Request):
    return {}


@route("GET", "clientlib", "rpc/get-pending-rpcs")
def pending_rpcs(req: Request):
    return {"remoteProcedureCalls": []}


def add_metric_points(state: State, exp: dict, values: list) -> None:
    for v in values:
        state.data["seq"] += 1
        exp["metrics"].append({
            "metricName": v.get("metricName"), "metricValue": v.get("metricValue"),
            "step": _int_or_none(v.get("step")), "epoch": _int_or_none(v.get("epoch")),
            "timestamp": v.get("timestamp"), "runContext": v.get("context", v.get("runContext")),
            "offset": state.data["seq"],
        })
    state.touch()


def add_parameters(state: State, exp: dict, values: list) -> None:
    for v in values:
        name = v.get("parameterName")
        if name is None:
            continue
        exp["params"].setdefault(name, []).append({
            "value": v.get("parameterValue"), "step": _int_or_none(v.get("step")),
            "timestamp": v.get("timestamp"), "source": v.get("source"),
            "context": v.get("context"), "seq": state.next_seq(),
        })
    state.touch()


@route("POST", "clientlib", "batch/logger/experiment/metric")
def batch_metric(req: Request):
    body = req.json()
    with req.state.lock:
        add_metric_points(req.state, writable_experiment(req, body), body.get("values") or [])
    return {}


@route("POST", "clientlib", "batch/logger/experiment/parameter")
def batch_parameter(req: Request):
    body = req.json()
    with req.state.lock:
        add_parameters(req.state, writable_experiment(req, body), body.get("values") or [])
    return {}


def add_tags(exp: dict, tags: list) -> None:
    for tag in tags or []:
        if tag not in exp["tags"]:
            exp["tags"].append(tag)


@route("POST", "clientlib", "tags/add-tags-to-experiment")
def add_tags_route(req: Request):
    body = req.json()
    with req.state.lock:
        add_tags(writable_experiment(req, body), body.get("addedTags"))
        req.state.touch()
    return {}


def _int_or_none(value: Any) -> Optional[int]:
    if value is None or value == "" or str(value).lower() in ("none", "null"):
        return None
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _metadata_text(req: Request) -> Optional[str]:
    text = req.part_text("metadata")
    if text in (None, "", "null", "{}"):
        return None if text in (None, "", "null") else text
    return text


def store_upload(req: Request, exp: Optional[dict], kind: str, file_name: str, asset_id: str,
                 extra: Optional[dict] = None) -> dict:
    """Store one uploaded file (or remote link) as an experiment asset or an artifact file."""
    state = req.state
    part = req.parts().get("file")
    is_remote = req.arg_bool("isRemote") or ("link" in req.parts() and part is None)
    link = req.part_text("link") if is_remote else None
    data = part[0] if part else b""
    blob = None if is_remote else state.blobs.put(data)
    grouping = req.arg("groupingName")
    kind = UPLOAD_TYPE_ALIASES.get(kind, kind)
    asset = {
        "assetId": asset_id, "fileName": file_name, "fileSize": 0 if is_remote else len(data),
        "type": kind, "step": _int_or_none(req.arg("step")), "epoch": _int_or_none(req.arg("epoch")),
        "runContext": req.arg("context"), "metadata": _metadata_text(req), "createdAt": now_ms(),
        "dir": f"models/{grouping}" if kind == "model-element" and grouping else ASSET_DIRS.get(kind, kind),
        "remote": is_remote, "link": link, "blob": blob, "groupingName": grouping,
        "extension": req.arg("extension"), "overwrite": req.arg_bool("overwrite"),
        "artifactVersionId": req.arg("artifactVersionId"),
        "experimentKey": exp["experimentKey"] if exp else None, "tags": [], "etag": None,
    }
    if extra:
        asset.update(extra)
    with state.lock:
        asset["seq"] = state.next_seq()
        if asset["artifactVersionId"]:
            version = find_version(state, asset["artifactVersionId"])
            version["files"][asset_id] = asset
        else:
            if asset["overwrite"]:
                # overwrite=True replaces earlier assets of the same name and type
                for old_id in [a["assetId"] for a in exp["assets"].values()
                               if a["fileName"] == file_name and a["type"] == kind and a["assetId"] != asset_id]:
                    del exp["assets"][old_id]
            exp["assets"][asset_id] = asset
            if kind == "model-element" and grouping and grouping not in exp["models"]:
                exp["models"][grouping] = new_id()
        state.touch()
    return asset


def find_version(state: State, version_id: str) -> dict:
    for artifact in state.data["artifacts"].values():
        for version in artifact["versions"]:
            if version["artifactVersionId"] == version_id:
                return version
    raise ApiError(400, f"artifact version {version_id!r} not found")


def _upload_experiment(req: Request) -> Optional[dict]:
    key = req.arg("experimentId") or req.arg("experimentKey")
    if req.arg("artifactVersionId") and not key:
        return None
    return req.state.experiment(key, req.user)


@route("POST", "clientlib", "asset/upload")
def asset_upload(req: Request):
    exp = _upload_experiment(req)
    kind = req.arg("type") or "asset"
    asset = store_upload(req, exp, kind, req.arg("fileName") or "file", req.arg("assetId") or new_id())
    return {"assetId": asset["assetId"], "web": asset_link_or_none(req, asset)}


def asset_link_or_none(req: Request, asset: dict) -> Optional[str]:
    from .views import asset_link
    return asset_link(req.base_url, asset)


@route("POST", "clientlib", "visualizations/upload")
def visualization_upload(req: Request):
    exp = _upload_experiment(req)
    asset = store_upload(req, exp, "image", req.arg("figName") or "image",
                         req.arg("imageId") or new_id())
    return {"imageId": asset["assetId"]}


@route("POST", "clientlib", "git-patch/upload")
def git_patch_upload(req: Request):
    exp = _upload_experiment(req)
    part = req.parts().get("file")
    with req.state.lock:
        exp["gitPatch"] = req.state.blobs.put(part[0] if part else b"")
        req.state.touch()
    return {}


@route("POST", "clientlib", "asset/log-remote-model")
def log_remote_model(req: Request):
    body = req.json()
    with req.state.lock:
        exp = writable_experiment(req, body)
        name = body.get("modelName")
        for entity in body.get("remoteEntities") or []:
            asset_id = new_id()
            exp["assets"][asset_id] = {
                "assetId": asset_id, "fileName": entity.get("fileName") or entity.get("uri"),
                "fileSize": 0, "type": "model-element", "step": None, "epoch": None, "runContext": None,
                "metadata": json.dumps(entity.get("metadata")) if entity.get("metadata") else None,
                "createdAt": now_ms(), "dir": f"models/{name}", "remote": True, "link": entity.get("uri"),
                "blob": None, "groupingName": name, "extension": None, "overwrite": False,
                "artifactVersionId": None, "experimentKey": exp["experimentKey"], "tags": [],
                "etag": None, "seq": req.state.next_seq(),
            }
        if name and name not in exp["models"]:
            exp["models"][name] = new_id()
        req.state.touch()
    return {}
