"""REST v2 writes (`/api/rest/v2/write/...` and `/clientlib/rest/v2/write/...`)."""
from __future__ import annotations

import os

from .handlers_clientlib import add_metric_points, add_parameters, add_tags, store_upload
from .routing import Request, route
from .state import SYSTEM_DETAIL_KEYS, ApiError, new_id, now_ms
from .views import asset_link


def _exp(req: Request) -> dict:
    body = req.json() if req.method != "GET" and not req.parts() else {}
    key = (body.get("experimentKey") if isinstance(body, dict) else None) or req.arg("experimentKey")
    return req.state.experiment(key, req.user)


def _write(req: Request, mutate) -> dict:
    """Apply `mutate(exp, body)` under the lock; answers {} like Comet's writes."""
    body = req.json()
    with req.state.lock:
        exp = _exp(req)
        result = mutate(exp, body)
        req.state.touch()
    return result if result is not None else {}


@route("POST", "rest", "write/experiment/log-other")
def log_other(req: Request):
    def mutate(exp, body):
        # The "Name" other is the experiment's name (set_name is log_other("Name", ...)).
        exp["others"].setdefault(str(body.get("key")), []).append(
            {"value": body.get("value"), "timestamp": body.get("timestamp") or now_ms(),
             "seq": req.state.next_seq()})
    return _write(req, mutate)


@route("POST", "rest", "write/experiment/html")
def log_html(req: Request):
    def mutate(exp, body):
        html = body.get("html") or ""
        exp["html"] = html if body.get("override") else exp["html"] + html
    return _write(req, mutate)


@route("POST", "rest", "write/experiment/graph")
def log_graph(req: Request):
    return _write(req, lambda exp, body: exp.__setitem__("graph", body.get("graph") or ""))


@route("POST", "rest", "write/experiment/code")
def log_code(req: Request):
    return _write(req, lambda exp, body: exp.__setitem__("code", body.get("code") or ""))


@route("POST", "rest", "write/experiment/git/metadata")
def git_metadata(req: Request):
    def mutate(exp, body):
        exp["git"] = {k: body.get(k) for k in ("user", "root", "branch", "parent", "origin")}
    return _write(req, mutate)


@route("POST", "rest", "write/experiment/git/patch")
def git_patch(req: Request):
    part = req.parts().get("file")
    with req.state.lock:
        exp = req.state.experiment(req.arg("experimentKey"), req.user)
        exp["gitPatch"] = req.state.blobs.put(part[0] if part else b"")
        req.state.touch()
    return {}


@route("POST", "rest", "write/experiment/output")
def log_output(req: Request):
    def mutate(exp, body):
        context = body.get("runContext")
        for line in body.get("outputLines") or []:
            exp["output"].append({
                "output": line.get("output") or "", "stderr": bool(line.get("stderr")),
                "localTimestamp": line.get("localTimestamp"), "offset": line.get("offset") or 0,
                "runContext": context, "seq": req.state.next_seq()})
    return _write(req, mutate)


@route("POST", "rest", "write/experiment/system-details")
def system_details(req: Request):
    def mutate(exp, body):
        # Partial dicts arrive separately (packages, host block, extra info): merge them.
        system = exp["system"]
        for key, value in body.items():
            if key in ("experimentKey", "apiKey"):
                continue
            if key == "logAdditionalSystemInfoList":
                merged = {item.get("key"): item for item in system.get(key) or []}
                for item in value or []:
                    merged[item.get("key")] = item
                system[key] = list(merged.values())
            elif key in SYSTEM_DETAIL_KEYS or value is not None:
                system[key] = value
    return _write(req, mutate)


@route("PUT", "rest", "write/experiment/dependencies")
def dependencies(req: Request):
    def mutate(exp, body):
        merged = {d.get("name"): d for d in exp["dependencies"]}
        for dep in body.get("logDependencies") or body.get("dependencies") or []:
            merged[dep.get("name")] = {"name": dep.get("name"), "version": dep.get("version")}
        exp["dependencies"] = list(merged.values())
    return _write(req, mutate)


@route("POST", "rest", "write/experiment/cloud-details")
def cloud_details(req: Request):
    def mutate(exp, body):
        exp["cloudDetails"].append({"provider": body.get("provider"), "metadata": body.get("metadata")})
    return _write(req, mutate)


@route("POST", "rest", "write/experiment/file-path")
def file_path(req: Request):
    def mutate(exp, body):
        path = body.get("filePath")
        exp["filePath"] = path
        exp["fileName"] = os.path.basename(path) if path else None
    return _write(req, mutate)


@route("POST", "rest", "write/experiment/update-status")
def update_status(req: Request):
    def mutate(exp, body):
        if body.get("isAlive") is not None:
            exp["running"] = bool(body.get("isAlive"))
        if body.get("hasCrashed") is not None:
            exp["hasCrashed"] = bool(body.get("hasCrashed"))
        if body.get("error"):
            exp["error"] = body.get("error")
    return _write(req, mutate)


@route("POST", "rest", "write/experiment/set-start-end-time")
def set_start_end(req: Request):
    def mutate(exp, body):
        if body.get("startTimeMillis") is not None:
            exp["startTimeMillis"] = int(body["startTimeMillis"])
        if body.get("endTimeMillis") is not None:
            exp["endTimeMillis"] = int(body["endTimeMillis"])
    return _write(req, mutate)


@route("POST", "rest", "write/experiment/metric")
def log_metric(req: Request):
    return _write(req, lambda exp, body: add_metric_points(req.state, exp, [body]))


@route("POST", "rest", "write/experiment/parameter")
def log_parameter(req: Request):
    return _write(req, lambda exp, body: add_parameters(req.state, exp, [body]))


@route("POST", "rest", "write/experiment/tags")
def log_tags(req: Request):
    return _write(req, lambda exp, body: add_tags(exp, body.get("addedTags")))


@route("POST", "rest", "write/experiment/tags/delete")
def delete_tags(req: Request):
    def mutate(exp, body):
        exp["tags"] = [t for t in exp["tags"] if t not in (body.get("tags") or [])]
    return _write(req, mutate)


@route("POST", "rest", "write/experiment/upload-asset")
def upload_asset(req: Request):
    exp = req.state.experiment(req.arg("experimentKey"), req.user)
    asset = store_upload(req, exp, req.arg("type") or "asset", req.arg("fileName") or "unnamed",
                         req.arg("assetId") or new_id())
    return {"assetId": asset["assetId"], "web": asset_link(req.base_url, asset)}


def _flag(req: Request, field: str, value) -> dict:
    with req.state.lock:
        exp = req.state.experiment(req.arg("experimentKey"), req.user)
        exp[field] = value
        req.state.touch()
    return {"experimentKey": exp["experimentKey"]}


@route("GET", "rest", "write/experiment/archive")
def archive(req: Request):
    return _flag(req, "archived", True)


@route("GET", "rest", "write/experiment/restore")
def restore(req: Request):
    return _flag(req, "archived", False)


@route("GET", "rest", "write/experiment/stop")
def stop(req: Request):
    return _flag(req, "running", False)


@route("GET", "rest", "write/experiment/set-status")
def set_status(req: Request):
    with req.state.lock:
        exp = req.state.experiment(req.arg("experimentKey"), req.user)
        exp["endTimeMillis"] = now_ms()
        req.state.touch()
    return {}


@route("GET", "rest", "write/experiment/delete")
def delete_experiment(req: Request):
    with req.state.lock:
        exp = req.state.experiment(req.arg("experimentKey"), req.user)
        del req.state.data["experiments"][exp["experimentKey"]]
        req.state.touch()
    return {}


@route("POST", "rest", "write/experiment/create")
def create_experiment(req: Request):
    body = req.json()
    state = req.state
    ws = body.get("workspaceName") or req.user.default_workspace
    with state.lock:
        if not state.can_access(req.user, ws):
            raise ApiError(400, f"workspace {ws!r} not found")
        project = state.ensure_project(ws, body.get("projectName") or "general", req.user.name)
        exp = state.new_experiment(body.get("experimentKey") or new_id(), project,
                                   body.get("experimentName"), req.user.name)
        if body.get("experimentName"):
            exp["others"]["Name"] = [{"value": body["experimentName"], "timestamp": now_ms(),
                                      "seq": state.next_seq()}]
    return {"experimentKey": exp["experimentKey"], "workspaceName": ws,
            "projectName": project["projectName"],
            "link": f"{req.base_url}/{ws}/{project['projectName']}/{exp['experimentKey']}"}


@route("POST", "rest", "write/experiment/move")
def move_experiments(req: Request):
    body = req.json()
    state = req.state
    ws = body.get("targetWorkspaceName")
    with state.lock:
        if not state.can_access(req.user, ws):
            raise ApiError(400, "workspace not found")
        project = state.ensure_project(ws, body.get("targetProjectName") or "general", req.user.name)
        for key in body.get("experimentKeys") or []:
            exp = state.experiment(key, req.user)
            exp["workspaceName"], exp["projectId"] = ws, project["projectId"]
        state.touch()
    return {}


@route("POST", "rest", "write/project/create")
def create_project(req: Request):
    body = req.json()
    state = req.state
    ws = body.get("workspaceName") or req.user.default_workspace
    name = body.get("projectName")
    if not name:
        raise ApiError(400, "projectName is required")
    with state.lock:
        if not state.can_access(req.user, ws):
            raise ApiError(400, f"workspace {ws!r} not found")
        if state.find_project(ws, name):
            raise ApiError(400, f"project {name!r} already exists")
        project = state.ensure_project(ws, name, req.user.name, body.get("projectDescription") or "",
                                       bool(body.get("isPublic", body.get("public"))))
    return {"projectId": project["projectId"], "projectName": name, "workspaceName": ws}


@route("POST", "rest", "write/project/update")
def update_project(req: Request):
    body = req.json()
    with req.state.lock:
        project = req.state.find_project(body.get("workspaceName") or "", body.get("projectName") or "")
        if project is None or not req.state.can_access(req.user, project["workspaceName"]):
            raise ApiError(404, "project not found")
        if body.get("newProjectName"):
            project["projectName"] = body["newProjectName"]
        if body.get("newProjectDescription") is not None:
            project["projectDescription"] = body["newProjectDescription"]
        if body.get("isPublic") is not None:
            project["public"] = bool(body["isPublic"])
        project["lastUpdated"] = now_ms()
        req.state.touch()
    return {}


@route("POST", "rest", "write/project/notes")
def project_notes(req: Request):
    body = req.json()
    with req.state.lock:
        project = req.state.data["projects"].get(body.get("projectId") or "")
        if project is None or not req.state.can_access(req.user, project["workspaceName"]):
            raise ApiError(404, "project not found")
        project["notes"] = body.get("notes") or ""
        req.state.touch()
    return {"notes": project["notes"]}


@route("POST", "rest", "write/workspace/new")
def new_workspace(req: Request):
    body = req.json()
    name = body.get("name") or body.get("workspaceName")
    if not name:
        raise ApiError(400, "name is required")
    with req.state.lock:
        if name in req.state.data["workspaces"] and not req.state.can_access(req.user, name):
            raise ApiError(400, f"workspace {name!r} already exists")
        req.state.ensure_workspace(name)
        if name not in req.user.workspaces:
            req.user.workspaces.append(name)
        req.state.data.setdefault("grants", {}).setdefault(req.user.name, [])
        if name not in req.state.data["grants"][req.user.name]:
            req.state.data["grants"][req.user.name].append(name)
    return {"workspaceName": name}


@route("GET", "rest", "write/project/symlink")
def symlink_experiment(req: Request):
    """Show an experiment in another project of its workspace too (Comet's "symlink")."""
    with req.state.lock:
        exp = req.state.experiment(req.arg("experimentKey"), req.user)
        project = req.state.ensure_project(exp["workspaceName"], req.arg("projectName"), req.user.name)
        links = project.setdefault("symlinks", [])
        if exp["experimentKey"] not in links and project["projectId"] != exp["projectId"]:
            links.append(exp["experimentKey"])
            project["lastUpdated"] = now_ms()
        req.state.touch()
        return {"experimentKey": exp["experimentKey"], "projectId": project["projectId"]}
