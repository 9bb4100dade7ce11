"""Artifacts (versions, aliases, files), the model registry and code panels."""
from __future__ import annotations

import io
import json
import zipfile
from typing import Optional

from .handlers_read import model_assets, model_zip
from .routing import Request, Response, route
from .state import ApiError, State, new_id, now_ms
from .views import artifact_file_view, asset_link

NO_ARTIFACT_FOUND = 624522
ARTIFACT_VERSION_NOT_FOUND = 624523
ARTIFACT_VERSION_EXISTS = 90399
PANEL_TEMPLATE_FILE = "tempVisualizationTemplate.json"


# ----- artifacts ------------------------------------------------------------------------

def _version_key(version: str) -> tuple:
    parts = []
    for piece in str(version).split("."):
        try:
            parts.append(int(piece))
        except ValueError:
            parts.append(0)
    return tuple(parts)


def _find_artifact(state: State, req: Request, workspace: Optional[str], name: Optional[str],
                   artifact_id: Optional[str]) -> dict:
    if artifact_id:
        artifact = state.data["artifacts"].get(artifact_id)
    else:
        ws = workspace or req.user.default_workspace
        artifact = next((a for a in state.data["artifacts"].values()
                         if a["workspaceName"] == ws and a["name"] == name), None)
    if artifact is None or not state.can_access(req.user, artifact["workspaceName"]):
        raise ApiError(400, "artifact not found", NO_ARTIFACT_FOUND)
    return artifact


def _latest_version(artifact: dict) -> Optional[dict]:
    if not artifact["versions"]:
        return None
    return max(artifact["versions"], key=lambda v: _version_key(v["version"]))


def _select_version(artifact: dict, version_id=None, version=None, alias=None, version_or_alias=None) -> dict:
    versions = artifact["versions"]
    found = None
    if version_id:
        found = next((v for v in versions if v["artifactVersionId"] == version_id), None)
    elif version:
        found = next((v for v in versions if v["version"] == version), None)
    else:
        wanted = alias or version_or_alias or "latest"
        found = next((v for v in versions if v["version"] == wanted), None)
        if found is None:
            found = next((v for v in versions
                          if wanted.lower() in (a.lower() for a in v["alias"])), None)
        if found is None and wanted.lower() == "latest":
            # "Latest" is the system alias of the highest version (queried in lower case).
            found = _latest_version(artifact)
    if found is None:
        raise ApiError(400, "artifact version not found", ARTIFACT_VERSION_NOT_FOUND)
    return found


def _version_size(version: dict) -> int:
    return sum(f["fileSize"] for f in version["files"].values())


def _artifact_summary(artifact: dict) -> dict:
    latest = _latest_version(artifact)
    return {
        "artifactId": artifact["artifactId"], "name": artifact["name"], "type": artifact["type"],
        "workspaceName": artifact["workspaceName"], "project": artifact.get("project"),
        "description": artifact.get("description"), "tags": list(artifact["tags"]),
        "isPublic": False, "emoji": None, "latestVersion": latest["version"] if latest else None,
        "sizeInBytes": sum(_version_size(v) for v in artifact["versions"]),
        "versionCount": len(artifact["versions"]), "createdAt": artifact["createdAt"],
        "lastUpdated": artifact["lastUpdated"],
    }


def _version_summary(version: dict) -> dict:
    return {
        "artifactVersionId": version["artifactVersionId"], "version": version["version"],
        "owner": version["owner"], "metadata": version["metadata"], "createdFrom": version["experimentKey"],
        "experimentKey": version["experimentKey"], "sizeInBytes": _version_size(version),
        "state": version["state"], "added": version["added"], "alias": list(version["alias"]),
        "tags": list(version["tags"]),
    }


@route("POST", "rest", "write/artifacts/upsert")
def artifact_upsert(req: Request):
    body = req.json()
    state = req.state
    with state.lock:
        exp = state.experiment(body.get("experimentKey"), req.user)
        ws = exp["workspaceName"]
        name = body.get("artifactName")
        artifact = next((a for a in state.data["artifacts"].values()
                         if a["workspaceName"] == ws and a["name"] == name), None)
        if artifact is None:
            artifact = {"artifactId": new_id(), "name": name, "type": body.get("artifactType"),
                        "workspaceName": ws, "project": state.project_of(exp)["projectName"],
                        "description": None, "tags": [], "createdAt": now_ms(),
                        "lastUpdated": now_ms(), "versions": []}
            state.data["artifacts"][artifact["artifactId"]] = artifact
        previous = _latest_version(artifact)
        version = body.get("version")
        if version and any(v["version"] == version for v in artifact["versions"]):
            raise ApiError(400, f"artifact version {version} already exists", ARTIFACT_VERSION_EXISTS)
        if not version:
            major = _version_key(previous["version"])[0] + 1 if previous else 1
            version = f"{major}.0.0"
        aliases = list(body.get("alias") or [])
        for other in artifact["versions"]:  # an alias names one version only
            other["alias"] = [a for a in other["alias"] if a not in aliases]
        record = {"artifactVersionId": new_id(), "version": version, "owner": req.user.name,
                  "metadata": body.get("versionMetadata"), "experimentKey": exp["experimentKey"],
                  "state": "OPEN", "added": now_ms(), "alias": aliases,
                  "tags": list(body.get("versionTags") or []), "files": {}}
        artifact["versions"].append(record)
        if body.get("artifactType"):
            artifact["type"] = body["artifactType"]
        artifact["lastUpdated"] = now_ms()
        state.touch()
        return {"artifactId": artifact["artifactId"], "artifactVersionId": record["artifactVersionId"],
                "currentVersion": version, "previousVersion": previous["version"] if previous else None}


def _version_by_id(state: State, req: Request, version_id: str) -> tuple[dict, dict]:
    for artifact in state.data["artifacts"].values():
        for version in artifact["versions"]:
            if version["artifactVersionId"] == version_id:
                if not state.can_access(req.user, artifact["workspaceName"]):
                    break
                return artifact, version
    raise ApiError(400, "artifact version not found", ARTIFACT_VERSION_NOT_FOUND)


@route("POST", "rest", "write/artifacts/state")
def artifact_state(req: Request):
    body = req.json()
    with req.state.lock:
        _, version = _version_by_id(req.state, req, body.get("artifactVersionId"))
        version["state"] = body.get("state") or version["state"]
        req.state.touch()
    return {}


@route("POST", "rest", "write/artifacts/details")
def artifact_details_update(req: Request):
    body = req.json()
    with req.state.lock:
        artifact = _find_artifact(req.state, req, None, None, body.get("artifactId"))
        if body.get("artifactType"):
            artifact["type"] = body["artifactType"]
        if body.get("tags") is not None:
            artifact["tags"] = list(body["tags"])
        req.state.touch()
    return {}


@route("POST", "rest", "write/artifacts/version/labels")
def artifact_version_labels(req: Request):
    body = req.json()
    with req.state.lock:
        artifact, version = _version_by_id(req.state, req, body.get("artifactVersionId"))
        if body.get("alias") is not None:
            aliases = list(body["alias"])
            for other in artifact["versions"]:
                other["alias"] = [a for a in other["alias"] if a not in aliases]
            version["alias"] = aliases
        if body.get("versionTags") is not None:
            version["tags"] = list(body["versionTags"])
        if body.get("versionMetadata") is not None:
            version["metadata"] = body["versionMetadata"]
        req.state.touch()
    return {}


@route("POST", "rest", "write/artifact/assets/remote/batch")
def artifact_remote_batch(req: Request):
    body = req.json()
    state = req.state
    with state.lock:
        for item in body.get("remoteArtifactAssetRequests") or []:
            _, version = _version_by_id(state, req, item.get("artifactVersionId"))
            asset_id = item.get("assetId") or new_id()
            version["files"][asset_id] = {
                "assetId": asset_id, "fileName": item.get("fileName"), "fileSize": 0,
                "type": item.get("type") or "asset", "step": item.get("step"), "epoch": None,
                "runContext": None, "metadata": item.get("metadata"), "createdAt": now_ms(),
                "dir": "assets", "remote": True, "link": item.get("link"), "blob": None,
                "groupingName": None, "extension": item.get("extension"), "overwrite": False,
                "artifactVersionId": version["artifactVersionId"],
                "experimentKey": req.arg("experimentKey"), "tags": [], "etag": None,
                "seq": state.next_seq()}
        state.touch()
    return {}


@route("GET", "rest", "artifacts/get-all")
def artifacts_get_all(req: Request):
    ws = req.arg("workspace") or req.user.default_workspace
    kind = req.arg("type")
    with req.state.lock:
        if not req.state.can_access(req.user, ws):
            raise ApiError(404, "workspace not found")
        items = [_artifact_summary(a) for a in req.state.data["artifacts"].values()
                 if a["workspaceName"] == ws and (not kind or a["type"] == kind)]
    return {"artifacts": items}


@route("GET", "rest", "artifacts/get")
def artifacts_get(req: Request):
    with req.state.lock:
        artifact = _find_artifact(req.state, req, req.arg("workspace"), req.arg_name("artifactName"),
                                  req.arg("artifact_id") or req.arg("artifactId"))
        out = _artifact_summary(artifact)
        out["versions"] = [_version_summary(v) for v in sorted(artifact["versions"],
                                                                key=lambda v: _version_key(v["version"]))]
    return out


def _requested_version(req: Request) -> tuple[dict, dict]:
    state = req.state
    version_id = req.arg("versionId") or req.arg("artifactVersionId")
    if version_id and not (req.arg("artifactName") or req.arg("artifactId") or req.arg("artifact_id")):
        return _version_by_id(state, req, version_id)
    artifact = _find_artifact(state, req, req.arg("workspace"), req.arg_name("artifactName"),
                              req.arg("artifactId") or req.arg("artifact_id"))
    version = _select_version(artifact, version_id, req.arg("version"), req.arg("alias"),
                              req.arg("versionOrAlias"))
    return artifact, version


@route("GET", "rest", "artifacts/version")
def artifacts_version(req: Request):
    with req.state.lock:
        artifact, version = _requested_version(req)
        return {
            "artifact": {"artifactId": artifact["artifactId"], "artifactName": artifact["name"],
                         "artifactType": artifact["type"], "workspaceName": artifact["workspaceName"],
                         "tags": list(artifact["tags"]), "project": artifact.get("project")},
            "artifactVersionId": version["artifactVersionId"], "artifactVersion": version["version"],
            "metadata": version["metadata"], "alias": list(version["alias"]),
            "sizeInBytes": _version_size(version), "experimentKey": version["experimentKey"],
            "tags": list(version["tags"]), "state": version["state"], "owner": version["owner"],
            "added": version["added"],
        }


@route("GET", "rest", "artifacts/version/files")
def artifacts_version_files(req: Request):
    with req.state.lock:
        artifact, version = _requested_version(req)
        files = sorted(version["files"].values(), key=lambda f: f["seq"])
        return {"files": [artifact_file_view(req.base_url, f, artifact["artifactId"]) for f in files]}


# ----- model registry ---------------------------------------------------------------------

def _experiment_model(state: State, model_id: str) -> tuple[dict, str]:
    for exp in state.data["experiments"].values():
        for name, mid in exp["models"].items():
            if mid == model_id:
                return exp, name
    raise ApiError(400, "experiment model not found")


def _registry_model(state: State, req: Request, ws: Optional[str], name: Optional[str]) -> dict:
    ws = ws or req.user.default_workspace
    model = next((m for m in state.data["registry"].values()
                  if m["workspaceName"] == ws and m["modelName"] == name), None)
    if model is None or not state.can_access(req.user, ws):
        raise ApiError(404, "registry model not found")
    return model


def _registry_version_view(version: dict) -> dict:
    return {k: (list(v) if isinstance(v, list) else v) for k, v in version.items() if k not in ("assetIds", "zip")}


def _registry_summary(model: dict) -> dict:
    versions = sorted(model["versions"], key=lambda v: _version_key(v["version"]))
    return {
        "registryModelId": model["registryModelId"], "modelName": model["modelName"],
        "workspaceName": model["workspaceName"], "description": model["description"],
        "isPublic": model["isPublic"], "createdAt": model["createdAt"], "lastUpdated": model["lastUpdated"],
        "userName": model["userName"], "numberOfVersions": len(versions),
        "latestVersion": _registry_version_view(versions[-1]) if versions else None,
    }


def _add_registry_version(state: State, req: Request, model: dict, body: dict) -> dict:
    exp, exp_model_name = _experiment_model(state, body.get("experimentModelId"))
    version = body.get("version") or "1.0.0"
    if any(v["version"] == version for v in model["versions"]):
        raise ApiError(400, f"version {version} already exists")
    record = {
        "registryModelItemId": new_id(), "version": version, "stages": list(body.get("stages") or []),
        "comment": body.get("comment") or "", "createdAt": now_ms(), "lastUpdated": now_ms(),
        "userName": req.user.name, "restApiUrl": None, "tags": list(body.get("stages") or []),
        "status": body.get("status"),
        "experimentModel": {"experimentModelId": body.get("experimentModelId"),
                            "experimentModelName": exp_model_name, "experimentKey": exp["experimentKey"]},
        "assetIds": [a["assetId"] for a in model_assets(exp, exp_model_name)],
    }
    model["versions"].append(record)
    model["lastUpdated"] = now_ms()
    state.touch()
    return record


@route("POST", "rest", "write/registry-model")
def registry_create(req: Request):
    body = req.json()
    state = req.state
    with state.lock:
        exp, _ = _experiment_model(state, body.get("experimentModelId"))
        if not state.can_access(req.user, exp["workspaceName"]):
            raise ApiError(400, "experiment model not found")
        ws = exp["workspaceName"]
        name = body.get("registryModelName")
        if any(m["workspaceName"] == ws and m["modelName"] == name for m in state.data["registry"].values()):
            raise ApiError(400, f"registry model {name!r} already exists")
        model = {"registryModelId": new_id(), "modelName": name, "workspaceName": ws,
                 "description": body.get("description") or "", "isPublic": bool(body.get("isPublic")),
                 "createdAt": now_ms(), "lastUpdated": now_ms(), "userName": req.user.name,
                 "notes": "", "versions": []}
        state.data["registry"][model["registryModelId"]] = model
        record = _add_registry_version(state, req, model, body)
    return {"registryModelId": model["registryModelId"], "registryModelItemId": record["registryModelItemId"]}


@route("POST", "rest", "write/registry-model/item")
def registry_add_version(req: Request):
    body = req.json()
    state = req.state
    with state.lock:
        exp, _ = _experiment_model(state, body.get("experimentModelId"))
        model = _registry_model(state, req, exp["workspaceName"], body.get("registryModelName"))
        record = _add_registry_version(state, req, model, body)
    return {"registryModelId": model["registryModelId"], "registryModelItemId": record["registryModelItemId"]}


def _registry_item(state: State, req: Request, item_id: str) -> tuple[dict, dict]:
    for model in state.data["registry"].values():
        for version in model["versions"]:
            if version["registryModelItemId"] == item_id and state.can_access(req.user, model["workspaceName"]):
                return model, version
    raise ApiError(404, "registry model version not found")


def _experiment_model_by_name(state: State, req: Request, key: str, name: str) -> str:
    exp = state.experiment(key, req.user)
    model_id = exp["models"].get(name)
    if model_id is None:
        raise ApiError(400, f"experiment has no model {name!r}")
    return model_id


@route("POST", "rest", "write/registry-model/item/create")
def registry_item_create(req: Request):
    """The "novel" registry API (backend >= 3.5.42): creates the model if needed, then a version.
    Its tags play the role of the old stages; status is kept beside them."""
    body = req.json()
    state = req.state
    with state.lock:
        model_id = _experiment_model_by_name(state, req, body.get("experimentKey"), body.get("experimentModelName"))
        exp = state.data["experiments"][body.get("experimentKey")]
        ws = exp["workspaceName"]
        name = body.get("registryModelName") or body.get("experimentModelName")
        model = next((m for m in state.data["registry"].values()
                      if m["workspaceName"] == ws and m["modelName"] == name), None)
        if model is None:
            model = {"registryModelId": new_id(), "modelName": name, "workspaceName": ws,
                     "description": body.get("registryModelDescription") or "",
                     "isPublic": bool(body.get("publicModel")), "createdAt": now_ms(),
                     "lastUpdated": now_ms(), "userName": req.user.name, "notes": "", "versions": []}
            state.data["registry"][model["registryModelId"]] = model
        record = _add_registry_version(state, req, model, {
            "experimentModelId": model_id, "version": body.get("version"),
            "comment": body.get("versionComment"), "stages": body.get("tags") or []})
        record["tags"] = list(body.get("tags") or [])
        record["status"] = body.get("status")
    return {"registryModelId": model["registryModelId"], "registryModelItemId": record["registryModelItemId"]}


@route("GET", "rest", "registry-model/compact-details")
def registry_compact(req: Request):
    with req.state.lock:
        model = _registry_model(req.state, req, req.arg("workspaceName"), req.arg("modelName"))
        return {"registryModelId": model["registryModelId"], "modelName": model["modelName"],
                "workspaceName": model["workspaceName"]}


@route("GET", "rest", "registry-model/items")
def registry_items(req: Request):
    with req.state.lock:
        model = _registry_model(req.state, req, req.arg("workspaceName"), req.arg("modelName"))
        items = sorted(model["versions"], key=lambda v: _version_key(v["version"]))
        if req.arg("tag"):
            items = [v for v in items if req.arg("tag") in v.get("tags", v["stages"])]
        if req.arg("status"):
            items = [v for v in items if v.get("status") == req.arg("status")]
        if req.arg("versionPrefix"):
            items = [v for v in items if v["version"].startswith(req.arg("versionPrefix"))]
        return {"items": [_registry_version_view(v) for v in items]}


@route("GET", "rest", "registry-model/item/details")
def registry_item_details(req: Request):
    with req.state.lock:
        model = _registry_model(req.state, req, req.arg("workspaceName"), req.arg("modelName"))
        version = _registry_version(model, req.arg("version"), None)
        out = _registry_version_view(version)
        out.setdefault("tags", list(version["stages"]))
        out.setdefault("status", None)
        out["experimentKey"] = version["experimentModel"]["experimentKey"]
        return out


@route("POST", "rest", "write/registry-model/item/update")
def registry_item_update(req: Request):
    body = req.json()
    with req.state.lock:
        model, version = _registry_item(req.state, req, body.get("registryModelItemId"))
        if body.get("comment") is not None:
            version["comment"] = body["comment"]
        if body.get("stages") is not None:
            version["stages"] = list(body["stages"])
        version["lastUpdated"] = model["lastUpdated"] = now_ms()
        req.state.touch()
    return {}


@route("GET", "rest", "write/registry-model/item/stage")
def registry_add_stage(req: Request):
    with req.state.lock:
        _, version = _registry_item(req.state, req, req.arg("modelItemId"))
        if req.arg("stage") not in version["stages"]:
            version["stages"].append(req.arg("stage"))
        req.state.touch()
    return {}


@route("GET", "rest", "write/registry-model/item/stage/delete")
def registry_delete_stage(req: Request):
    with req.state.lock:
        _, version = _registry_item(req.state, req, req.arg("modelItemId"))
        version["stages"] = [s for s in version["stages"] if s != req.arg("stage")]
        req.state.touch()
    return {}


@route("GET", "rest", "write/registry-model/item/delete")
def registry_delete_item(req: Request):
    with req.state.lock:
        model, version = _registry_item(req.state, req, req.arg("modelItemId"))
        model["versions"].remove(version)
        req.state.touch()
    return {}


@route("GET", "rest", "write/registry-model/delete")
def registry_delete(req: Request):
    with req.state.lock:
        model = _registry_model(req.state, req, req.arg("workspaceName"), req.arg("modelName"))
        del req.state.data["registry"][model["registryModelId"]]
        req.state.touch()
    return {}


@route("POST", "rest", "write/registry-model/update")
def registry_update(req: Request):
    body = req.json()
    with req.state.lock:
        model = req.state.data["registry"].get(body.get("registryModelId") or "")
        if model is None or not req.state.can_access(req.user, model["workspaceName"]):
            raise ApiError(404, "registry model not found")
        if body.get("registryModelName"):
            model["modelName"] = body["registryModelName"]
        if body.get("description") is not None:
            model["description"] = body["description"]
        if body.get("isPublic") is not None:
            model["isPublic"] = bool(body["isPublic"])
        model["lastUpdated"] = now_ms()
        req.state.touch()
    return {}


@route("POST", "rest", "write/registry-model/notes")
def registry_notes_write(req: Request):
    body = req.json()
    with req.state.lock:
        model = _registry_model(req.state, req, body.get("workspaceName"), body.get("registryModelName"))
        model["notes"] = body.get("notes") or ""
        req.state.touch()
    return {}


@route("GET", "rest", "registry-model")
def registry_list(req: Request):
    ws = req.arg("workspaceName") or req.user.default_workspace
    with req.state.lock:
        if not req.state.can_access(req.user, ws):
            raise ApiError(404, "workspace not found")
        return {"registryModels": [_registry_summary(m) for m in req.state.data["registry"].values()
                                   if m["workspaceName"] == ws]}


@route("GET", "rest", "registry-model/count")
def registry_count(req: Request):
    return {"registryModelCount": len(registry_list(req)["registryModels"])}


@route("GET", "rest", "registry-model/details")
def registry_details(req: Request):
    with req.state.lock:
        model = _registry_model(req.state, req, req.arg("workspaceName"), req.arg("modelName"))
        out = _registry_summary(model)
        out["versions"] = [_registry_version_view(v) for v in
                           sorted(model["versions"], key=lambda v: _version_key(v["version"]))]
        out["notes"] = model["notes"]
    return out


@route("GET", "rest", "registry-model/notes")
def registry_notes(req: Request):
    with req.state.lock:
        return {"notes": _registry_model(req.state, req, req.arg("workspaceName"), req.arg("modelName"))["notes"]}


def _registry_version(model: dict, version: Optional[str], stage: Optional[str]) -> dict:
    versions = sorted(model["versions"], key=lambda v: _version_key(v["version"]))
    if version:
        versions = [v for v in versions if v["version"] == version]
    if stage:
        versions = [v for v in versions
                    if stage.lower() in [s.lower() for s in v["stages"]] + [str(v.get("status")).lower()]]
    if not versions:
        raise ApiError(404, "registry model version not found")
    return versions[-1]


@route("GET", "rest", "registry-model/latest_version")
def registry_latest(req: Request):
    with req.state.lock:
        model = _registry_model(req.state, req, req.arg("workspaceName"), req.arg("modelName"))
        return _registry_version_view(_registry_version(model, None, req.arg("stage")))


@route("GET", "rest", "registry-model/item/download")
def registry_download(req: Request):
    state = req.state
    with state.lock:
        model = _registry_model(state, req, req.arg("workspaceName"), req.arg("modelName"))
        version = _registry_version(model, req.arg("version"), req.arg("stage"))
        if version.get("zip"):      # a mirror keeps the zip the source answered: those bytes
            return Response(body=state.blobs.iter(version["zip"]), length=state.blobs.size(version["zip"]),
                            content_type="application/octet-stream")
        exp = state.data["experiments"].get(version["experimentModel"]["experimentKey"])
        assets = [exp["assets"][a] for a in version["assetIds"] if exp and a in exp["assets"]]
    return Response(body=model_zip(state, assets), content_type="application/octet-stream")


@route("GET", "rest", "registry-model/item/download-instructions")
def registry_download_links(req: Request):
    state = req.state
    with state.lock:
        model = _registry_model(state, req, req.arg("workspaceName"), req.arg("modelName"))
        version = _registry_version(model, req.arg("version"), req.arg("stage"))
        exp = state.data["experiments"].get(version["experimentModel"]["experimentKey"])
        assets = [exp["assets"][a] for a in version["assetIds"] if exp and a in exp["assets"]]
        return {"files": [{"fileName": a["fileName"], "assetId": a["assetId"], "fileSize": a["fileSize"],
                           "link": asset_link(req.base_url, a), "remote": a["remote"]} for a in assets]}


# ----- panels -----------------------------------------------------------------------------

def _panel(state: State, req: Request, template_id: str) -> dict:
    panel = state.data["panels"].get(template_id or "")
    if panel is None or not state.can_access(req.user, panel["workspaceName"]):
        raise ApiError(404, "panel not found")
    return panel


def _panel_row(panel: dict) -> dict:
    return {"templateId": panel["templateId"], "owner": panel["owner"], "teamId": panel["workspaceName"],
            "templateName": panel["templateName"], "queryBuilderId": panel["queryBuilderId"],
            "scopeType": panel["scopeType"], "revisionId": panel["revisionId"],
            "createdAt": panel["createdAt"]}


@route("GET", "rest", "code-panel/get-all")
def panels_list(req: Request):
    ws = req.arg("workspace") or req.user.default_workspace
    with req.state.lock:
        if not req.state.can_access(req.user, ws):
            raise ApiError(404, "workspace not found")
        rows = [_panel_row(p) for p in req.state.data["panels"].values() if p["workspaceName"] == ws]
    return {"codePanelTemplateRows": rows}


@route("GET", "rest", "code-panel/download")
def panel_download(req: Request):
    with req.state.lock:
        panel = _panel(req.state, req, req.arg("templateId"))
        template = json.loads(panel["template"])
    return {**template, **_panel_row(panel)}


@route("GET", "rest", "template/{template_id}/download")
def panel_zip(req: Request):
    with req.state.lock:
        panel = _panel(req.state, req, req.path_args["template_id"])
    return Response(body=req.state.blobs.get(panel["zip"]), content_type="application/octet-stream")


@route("POST", "rest", "write/template/upload")
def panel_upload(req: Request):
    state = req.state
    ws = req.arg("teamName") or req.user.default_workspace
    part = req.parts().get("file")
    if part is None:
        raise ApiError(400, "missing file")
    try:
        with zipfile.ZipFile(io.BytesIO(part[0])) as zf:
            template_text = zf.read(PANEL_TEMPLATE_FILE).decode("utf-8")
        template = json.loads(template_text)
    except (zipfile.BadZipFile, KeyError, ValueError):
        raise ApiError(400, f"not a panel zip (needs {PANEL_TEMPLATE_FILE})") from None
    with state.lock:
        if not state.can_access(req.user, ws):
            raise ApiError(400, "workspace not found")
        template_id = req.arg("templateId") or new_id()[:25]
        panel = state.data["panels"].get(template_id) or {
            "templateId": template_id, "workspaceName": ws, "owner": req.user.name,
            "queryBuilderId": None, "scopeType": "PRIVATE",
            "createdAt": template.get("createdAt") or now_ms()}
        panel.update(templateName=template.get("templateName") or template_id, template=template_text,
                     zip=state.blobs.put(part[0]), revisionId=now_ms())
        state.data["panels"][template_id] = panel
        state.touch()
    return {"templateId": template_id, "templateName": panel["templateName"], "revisionId": panel["revisionId"]}
