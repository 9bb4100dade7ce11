"""A mirror's artifacts, registry models and panels, in the record shapes of server/state.py.

The handlers (handlers_registry.py, handlers_read.find_asset) walk `state.data["artifacts"]`,
`["registry"]` and `["panels"]` as the in-memory State keeps them; these are read from the
index in one short connection the first time any of them is asked for.  They are few next
to experiments, so all of a mirror's are kept; the bytes stay in the store (`blob`, `zip`).

The index keeps no server ids for them, so each gets a stable one from what names it
(the same on every start, so a link or a script keeps working).
"""
from __future__ import annotations

import io
import json
import zipfile
from typing import Callable, Optional

from .mirror_state import READER, ms, stable_id

PANEL_TEMPLATE_FILE = "tempVisualizationTemplate.json"


def experiment_model_id(exp_id: str, model_name: str) -> str:
    """The id an experiment's model is served under (experiment record and registry agree)."""
    return stable_id("experiment-model", exp_id, model_name)


def read_workspace_things(con, served_key: Callable[[str, Optional[str]], Optional[str]],
                          exp_id_of: Callable[[str, Optional[str]], Optional[str]], blob_text) -> dict:
    """{"artifacts": {id: record}, "registry": {id: record}, "panels": {id: record}}.
    served_key(source, key): the key the experiment is served under; exp_id_of likewise
    its exp_id; blob_text(object_id, member): one file of a stored zip, as text."""
    return {"artifacts": _artifacts(con, served_key),
            "registry": _registry(con, served_key, exp_id_of),
            "panels": _panels(con, blob_text)}


def _artifacts(con, served_key) -> dict:
    heads = con.execute("SELECT source, workspace, coalesce(project, ''), name, type, description, tags "
                        "FROM artifacts ORDER BY workspace, project, name").fetchall()
    versions = con.execute("SELECT source, workspace, coalesce(project, ''), artifact, version, aliases, tags, "
                           "metadata, state, created_at, experiment_key FROM artifact_versions").fetchall()
    files = con.execute("SELECT source, workspace, coalesce(project, ''), artifact, version, path, size, "
                        "object_id, remote, link, metadata FROM artifact_files ORDER BY path").fetchall()
    out: dict[str, dict] = {}
    by_name: dict[tuple, dict] = {}
    for source, ws, project, name, kind, description, tags in heads:
        aid = stable_id("artifact", source, ws, project, name)
        record = {"artifactId": aid, "name": name, "type": kind, "workspaceName": ws,
                  "project": project or None, "description": description, "tags": list(tags or []),
                  "createdAt": None, "lastUpdated": None, "versions": []}
        out[aid] = record
        by_name[(source, ws, project, name)] = record
    by_version: dict[tuple, dict] = {}
    for source, ws, project, name, version, aliases, tags, metadata, state, created, key in versions:
        artifact = by_name.get((source, ws, project, name))
        if artifact is None:
            continue
        vid = stable_id("artifact-version", source, ws, project, name, version)
        added = ms(created)
        record = {"artifactVersionId": vid, "version": version, "owner": READER, "metadata": metadata,
                  "experimentKey": served_key(source, key) or key, "state": state, "added": added,
                  "alias": list(aliases or []), "tags": list(tags or []), "files": {}}
        artifact["versions"].append(record)
        stamps = [t for t in (artifact["createdAt"], added) if t is not None]
        artifact["createdAt"] = min(stamps, default=None)
        artifact["lastUpdated"] = max(stamps, default=None)
        by_version[(source, ws, project, name, version)] = record
    for seq, (source, ws, project, name, version, path, size, object_id, remote, link, metadata) in enumerate(files):
        owner = by_version.get((source, ws, project, name, version))
        if owner is None:
            continue
        asset_id = stable_id("artifact-file", source, ws, project, name, version, path)
        owner["files"][asset_id] = {
            "assetId": asset_id, "fileName": path, "fileSize": size or 0, "type": "asset", "step": None,
            "epoch": None, "runContext": None, "metadata": metadata, "createdAt": owner["added"],
            "dir": "assets", "remote": bool(remote), "link": link if remote else None,
            "blob": None if remote else object_id, "groupingName": None,
            "extension": path.rpartition(".")[2] if "." in path else None, "overwrite": False,
            "artifactVersionId": owner["artifactVersionId"], "experimentKey": owner["experimentKey"],
            "tags": [], "etag": None, "seq": seq}
    return out


def _registry(con, served_key, exp_id_of) -> dict:
    heads = con.execute("SELECT source, workspace, name, description, notes, public FROM registry_models "
                        "ORDER BY workspace, name").fetchall()
    versions = con.execute("SELECT source, workspace, model, version, stages, status, tags, comment, "
                           "experiment_key, created_at, object_id, extra FROM registry_versions").fetchall()
    # Each experiment model's assets (model-element assets grouped by the model's name).
    model_assets: dict[tuple, list] = {}
    for exp_id, grouping, asset_id in con.execute(
            "SELECT exp_id, json_extract_string(extra, '$.groupingName'), asset_id FROM assets "
            "WHERE type = 'model-element' ORDER BY created_at NULLS FIRST, asset_id").fetchall():
        model_assets.setdefault((exp_id, grouping), []).append(asset_id)
    out: dict[str, dict] = {}
    by_name: dict[tuple, dict] = {}
    for source, ws, name, description, notes, public in heads:
        mid = stable_id("registry-model", source, ws, name)
        record = {"registryModelId": mid, "modelName": name, "workspaceName": ws,
                  "description": description or "", "isPublic": bool(public), "createdAt": None,
                  "lastUpdated": None, "userName": READER, "notes": notes or "", "versions": []}
        out[mid] = record
        by_name[(source, ws, name)] = record
    for source, ws, name, version, stages, status, tags, comment, key, created, zip_id, extra in versions:
        model = by_name.get((source, ws, name))
        if model is None:
            continue
        extra = json.loads(extra) if extra else {}
        exp_model = extra.get("experimentModel") or {}
        model_name = exp_model.get("experimentModelName") or name
        exp_id = exp_id_of(source, key)
        created_ms = ms(created)
        model["versions"].append({
            "registryModelItemId": stable_id("registry-version", source, ws, name, version),
            "version": version, "stages": list(stages or []), "comment": comment or "",
            "createdAt": created_ms, "lastUpdated": created_ms, "userName": READER, "restApiUrl": None,
            "tags": list(tags or []), "status": status,
            "experimentModel": {"experimentModelId": experiment_model_id(exp_id or "", model_name),
                                "experimentModelName": model_name,
                                "experimentKey": served_key(source, key) or key},
            "assetIds": list(model_assets.get((exp_id, model_name), [])),
            "zip": zip_id})
        stamps = [t for t in (model["createdAt"], model["lastUpdated"], created_ms) if t is not None]
        model["createdAt"], model["lastUpdated"] = min(stamps, default=None), max(stamps, default=None)
    return out


class PanelRecord(dict):
    """A panel whose template (a file inside its stored zip) is read when first asked for."""

    def __init__(self, fields: dict, read_template: Callable[[], str]) -> None:
        super().__init__(fields)
        self._read_template = read_template

    def __missing__(self, key):
        if key != "template":
            raise KeyError(key)
        self["template"] = self._read_template()
        return self["template"]


def _panels(con, blob_text) -> dict:
    out: dict[str, dict] = {}
    for source, ws, panel_id, name, kind, object_id, extra in con.execute(
            "SELECT source, workspace, panel_id, name, kind, object_id, extra FROM panels "
            "ORDER BY workspace, panel_id").fetchall():
        extra = json.loads(extra) if extra else {}

        def template(object_id=object_id) -> str:
            text = blob_text(object_id, PANEL_TEMPLATE_FILE) if object_id else None
            return text or "{}"
        out[panel_id] = PanelRecord({
            "templateId": panel_id, "workspaceName": ws, "owner": READER, "templateName": name,
            "queryBuilderId": extra.get("queryBuilderId"), "scopeType": kind or "PRIVATE",
            "revisionId": extra.get("revisionId"), "createdAt": extra.get("createdAt"), "zip": object_id},
            template)
    return out


def zip_member_text(data: bytes, member: str) -> Optional[str]:
    """One file of a zip as text; None when the zip or the file is not there."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return zf.read(member).decode("utf-8")
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError):
        return None
