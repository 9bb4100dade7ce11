"""Turning stored records into the JSON shapes the SDK and cometx read.

Values read back as strings, as Comet returns them ("0.5", "true", "[1, 2]").
"""
from __future__ import annotations

import json
from typing import Any, Optional
from urllib.parse import urlencode

from .state import State


def as_text(value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def project_view(state: State, project: dict) -> dict:
    count = sum(1 for e in state.data["experiments"].values() if e["projectId"] == project["projectId"])
    return {
        "projectId": project["projectId"], "projectName": project["projectName"],
        "ownerUserName": project["ownerUserName"], "projectDescription": project["projectDescription"],
        "workspaceName": project["workspaceName"], "public": project["public"],
        "isPublic": project["public"], "numberOfExperiments": count,
        "lastUpdated": project["lastUpdated"], "createdAt": project["createdAt"],
    }


def experiment_name(exp: dict) -> Optional[str]:
    history = exp["others"].get("Name")
    if history:
        return as_text(_latest(history)["value"])
    return exp["name"]


def experiment_view(state: State, exp: dict) -> dict:
    project = state.project_of(exp)
    start, end = exp["startTimeMillis"], exp["endTimeMillis"]
    return {
        "experimentKey": exp["experimentKey"], "experimentName": experiment_name(exp),
        "optimizationId": exp["optimizationId"], "projectId": exp["projectId"],
        "projectName": project["projectName"], "workspaceName": exp["workspaceName"],
        "filePath": exp["filePath"], "fileName": exp["fileName"],
        "durationMillis": (end - start) if (start is not None and end is not None) else None,
        "startTimeMillis": start, "endTimeMillis": end,
        "archived": exp["archived"], "running": exp["running"], "hasCrashed": exp["hasCrashed"],
        "throttle": exp["throttle"], "throttleMessage": None, "throttleReasons": [],
        "userName": exp["ownerUserName"],
    }


def _latest(history: list) -> dict:
    # Latest by arrival: the SDK decides what is current; timestamps may be missing.
    return max(history, key=lambda h: h["seq"])


def summary_view(name: str, history: list, with_steps: bool) -> dict:
    current = _latest(history)
    numeric = [(n, h) for h in history if (n := _number(h["value"])) is not None]
    if numeric and len(numeric) == len(history):
        low = min(numeric, key=lambda t: t[0])[1]
        high = max(numeric, key=lambda t: t[0])[1]
    else:
        low = high = current
    out = {
        "name": name,
        "valueMax": as_text(high["value"]), "valueMin": as_text(low["value"]),
        "valueCurrent": as_text(current["value"]),
        "timestampMax": high.get("timestamp"), "timestampMin": low.get("timestamp"),
        "timestampCurrent": current.get("timestamp"), "editable": False,
    }
    if with_steps:
        out.update(stepMax=high.get("step"), stepMin=low.get("step"), stepCurrent=current.get("step"))
    return out


def metric_point_view(point: dict, key: Optional[str] = None) -> dict:
    out = {
        "metricName": point["metricName"], "metricValue": as_text(point["metricValue"]),
        "timestamp": point["timestamp"], "step": point["step"], "epoch": point["epoch"],
        "runContext": point["runContext"], "offset": point["offset"],
    }
    if key:
        out["experimentKey"] = key
    return out


def metric_summary(points: list) -> dict:
    """Latest/min/max per metric name, from raw points."""
    by_name: dict[str, list] = {}
    for p in points:
        by_name.setdefault(p["metricName"], []).append(
            {"value": p["metricValue"], "timestamp": p["timestamp"], "step": p["step"], "seq": p["offset"]})
    return by_name


def asset_link(base_url: str, asset: dict) -> str:
    if asset.get("remote"):
        return asset.get("link")
    params = {"assetId": asset["assetId"]}
    if asset.get("artifactVersionId"):
        params["artifactVersionId"] = asset["artifactVersionId"]
    else:
        params["experimentKey"] = asset["experimentKey"]
    return f"{base_url}/api/rest/v2/experiment/asset/get-asset?{urlencode(params)}"


def asset_view(base_url: str, asset: dict) -> dict:
    link = asset_link(base_url, asset)
    kind = asset["type"]
    return {
        "assetId": asset["assetId"], "fileName": asset["fileName"], "fileSize": asset["fileSize"],
        "type": kind, "step": asset["step"], "epoch": asset.get("epoch"),
        "runContext": asset["runContext"], "metadata": asset["metadata"], "createdAt": asset["createdAt"],
        "dir": asset["dir"], "remote": asset["remote"], "link": link,
        "compressedAssetLink": link, "s3Link": link, "canView": kind == "image",
        "audio": kind == "audio", "video": kind == "video", "histogram": kind == "histogram_combined_3d",
        "image": kind == "image", "tags": list(asset.get("tags") or []),
        "curlDownload": f'curl "{link}" -H"Authorization: <Your Api Key>" > {asset["fileName"]}',
        "experimentKey": asset["experimentKey"], "items": [], "etag": asset.get("etag"),
        "groupingName": asset.get("groupingName"), "extension": asset.get("extension"),
    }


def artifact_file_view(base_url: str, asset: dict, artifact_id: str) -> dict:
    return {
        "artifactId": artifact_id, "artifactVersionId": asset["artifactVersionId"],
        "assetId": asset["assetId"], "fileName": asset["fileName"], "fileSize": asset["fileSize"],
        "link": asset_link(base_url, asset), "dir": asset["dir"], "type": asset["type"],
        "metadata": asset["metadata"], "remote": asset["remote"], "experimentKey": asset["experimentKey"],
        "step": asset["step"],
    }
