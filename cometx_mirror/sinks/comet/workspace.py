"""Workspace-level writes: workspaces, projects, artifacts, registry models, panels.

Each pushed entity keeps a ledger row (source id "artifact:...", "registry:...",
"panel:...") whose detail lists what is done, so a repeat push sends nothing and
an interrupted one continues where it stopped.
"""
from __future__ import annotations

import json
import threading

import xxhash

from ... import model
from ...store import faultpoint
from ...store.mirror import Mirror
from .client import CometClient, HttpError, PushError, multipart, object_reader


class Destination:
    """What exists in the destination workspace, read once: workspaces, projects, experiments."""

    def __init__(self, client: CometClient, workspace: str):
        self.client = client
        self.workspace = workspace
        self._projects: dict[str, dict] | None = None
        self._experiments: dict[str, dict[str, dict]] = {}
        self._lock = threading.Lock()     # experiments are pushed from a thread pool: list once

    def ensure_workspace(self, dry_run: bool = False) -> None:
        names = self.client.get("workspaces").get("workspaceNames", [])
        if self.workspace in names:
            return
        if dry_run:
            return
        try:
            self.client.post("write/workspace/new", {"name": self.workspace})
        except HttpError as e:
            # an earlier try may have landed before its answer was lost
            if self.workspace not in self.client.get("workspaces").get("workspaceNames", []):
                raise PushError(f"cannot create workspace {self.workspace!r} at the destination: "
                                f"no rights, or it belongs to someone else ({e})") from None

    def projects(self) -> dict[str, dict]:
        if self._projects is None:
            rows = self.client.get("projects", {"workspaceName": self.workspace}).get("projects", [])
            self._projects = {p["projectName"]: p for p in rows}
        return self._projects

    def ensure_project(self, name: str, source: model.Project | None, dry_run: bool = False) -> bool:
        """Create the project when missing (description, visibility and notes carried); True if created."""
        if name in self.projects() or dry_run:
            return False
        body = {"workspaceName": self.workspace, "projectName": name,
                "projectDescription": (source.description if source else None) or "",
                "isPublic": bool(source.public) if source and source.public is not None else False}
        try:
            answer = self.client.post("write/project/create", body)
        except HttpError:
            self._projects = None          # created by a try whose answer was lost?
            if name not in self.projects():
                raise
            answer = self.projects()[name]
        self._projects[name] = {"projectName": name, "projectId": answer.get("projectId")}
        if source and source.notes and answer.get("projectId"):
            self.client.post("write/project/notes", {"projectId": answer["projectId"], "notes": source.notes})
        self._experiments[name] = {}
        return True

    def experiments(self, project: str) -> dict[str, dict]:
        """experiment key -> listing row (archived ones too): two reads per project."""
        with self._lock:
            return self._list(project)

    def _list(self, project: str) -> dict[str, dict]:
        if project not in self._experiments:
            out: dict[str, dict] = {}
            if project in self.projects():
                for archived in ("False", "True"):
                    rows = self.client.get("experiments", {"workspaceName": self.workspace,
                                                           "projectName": project,
                                                           "archived": archived}).get("experiments", [])
                    out.update({r["experimentKey"]: r for r in rows})
            self._experiments[project] = out
        return self._experiments[project]


# -- artifacts ----------------------------------------------------------------
def push_artifact(client: CometClient, mirror: Mirror, art: model.Artifact, workspace: str,
                  done: dict, dest_keys: dict[str, str], id_of, warn) -> dict:
    """Push the versions not in `done` (version -> artifactVersionId); returns the new `done`."""
    done = dict(done)
    if not done:      # no ledger row (lost, or never pushed): what does the destination hold?
        done = _closed_versions(client, workspace, art.name)
    artifact_id = done.get("_artifactId")
    for v in art.versions:
        if v.version in done:
            continue
        key = dest_keys.get(v.experiment_key or "")
        if key is None:
            warn(f"artifact {art.name} v{v.version}: its experiment {v.experiment_key} is not pushed; skipped")
            continue
        body = {"artifactName": art.name, "artifactType": art.type, "experimentKey": key,
                "versionMetadata": json.dumps(v.metadata) if v.metadata is not None else None,
                "version": v.version, "alias": list(v.aliases), "versionTags": list(v.tags)}
        try:
            answer = client.post("write/artifacts/upsert", body)
            version_id = answer["artifactVersionId"]
            artifact_id = answer.get("artifactId") or artifact_id
        except HttpError as e:
            if e.status != 400:
                raise
            # created by an interrupted push: find it and finish its files
            found = client.get("artifacts/version", {"workspace": workspace, "artifactName": art.name,
                                                     "version": v.version})
            version_id = found["artifactVersionId"]
            artifact_id = (found.get("artifact") or {}).get("artifactId") or artifact_id
        faultpoint.hit("push_artifact_version")
        for f in v.files:
            _upload_artifact_file(client, mirror, key, version_id, f, id_of(f"{art.name}\0{v.version}\0{f.path}"))
        client.post("write/artifacts/state", {"artifactVersionId": version_id, "experimentKey": key,
                                              "state": v.state or "CLOSED"})
        done[v.version] = version_id
    if artifact_id and art.tags and done.get("_tags") != sorted(art.tags):
        client.post("write/artifacts/details", {"artifactId": artifact_id, "tags": list(art.tags)})
        done["_tags"] = sorted(art.tags)
    if artifact_id:
        done["_artifactId"] = artifact_id
    return done


def _closed_versions(client: CometClient, workspace: str, name: str) -> dict:
    try:
        details = client.get("artifacts/get", {"workspace": workspace, "artifactName": name})
    except HttpError as e:
        if e.status in (400, 404):
            return {}
        raise
    done = {str(v.get("version")): v.get("artifactVersionId") for v in details.get("versions", [])
            if v.get("state") == "CLOSED"}
    if done and details.get("artifactId"):
        done["_artifactId"] = details["artifactId"]
        done["_tags"] = sorted(details.get("tags") or [])
    return done


def _upload_artifact_file(client, mirror, key, version_id, f: model.ArtifactFile, asset_id: str) -> None:
    params = {"experimentId": key, "artifactVersionId": version_id, "assetId": asset_id,
              "fileName": f.path, "overwrite": "False"}
    fields = []
    if f.metadata is not None:
        fields.append(("metadata", (None, json.dumps(f.metadata, sort_keys=True), None)))
    if f.remote:
        params["isRemote"] = "True"
        fields.append(("link", (None, f.link or "", None)))
    elif f.object_id:
        oid = f.object_id
        fields.append(("file", ("file", lambda: object_reader(mirror.objects, oid), "application/octet-stream")))
    else:
        return
    client.request("POST", "clientlib", "asset/upload", write=True, params=params,
                   files_factory=multipart(fields))


# -- registry -----------------------------------------------------------------
def push_registry_model(client: CometClient, rm: model.RegistryModel, workspace: str, done: dict,
                        dest_keys: dict[str, str], warn) -> dict:
    done = dict(done)
    if not done:
        done.update({v: True for v in _registry_versions(client, workspace, rm.name)})
    exists = bool([k for k in done if not k.startswith("_")])
    for v in rm.versions:
        if v.version in done:
            continue
        key = dest_keys.get(v.experiment_key or "")
        if key is None:
            warn(f"registry model {rm.name} v{v.version}: its experiment {v.experiment_key} is not pushed; skipped")
            continue
        em = v.extra.get("experimentModel") or {}
        wanted = em.get("experimentModelName") or em.get("modelName")
        models = client.get("experiment/model", {"experimentKey": key}).get("models", [])
        match = next((m for m in models if m.get("modelName") == wanted), models[0] if len(models) == 1 else None)
        if match is None:
            warn(f"registry model {rm.name} v{v.version}: model {wanted!r} not found in its experiment; skipped")
            continue
        body = {"experimentModelId": match["experimentModelId"], "registryModelName": rm.name,
                "version": v.version, "comment": v.comment, "stages": list(v.stages)}
        try:
            if not exists:
                client.post("write/registry-model", {**body, "description": rm.description,
                                                     "isPublic": bool(rm.public)})
            else:
                client.post("write/registry-model/item", body)
        except HttpError as e:
            if e.status != 400 or v.version not in _registry_versions(client, workspace, rm.name):
                raise        # else: an earlier try landed before its answer was lost
        exists = True
        done[v.version] = True
    if rm.notes and done.get("_notes") != rm.notes and exists:
        client.post("write/registry-model/notes", {"workspaceName": workspace, "registryModelName": rm.name,
                                                   "notes": rm.notes})
        done["_notes"] = rm.notes
    return done


def _registry_versions(client: CometClient, workspace: str, name: str) -> list[str]:
    try:
        details = client.get("registry-model/details", {"workspaceName": workspace, "modelName": name})
    except HttpError as e:
        if e.status in (400, 404):
            return []
        raise
    return [str(v.get("version")) for v in details.get("versions", [])]


# -- panels -------------------------------------------------------------------
def push_panel(client: CometClient, mirror: Mirror, panel: model.Panel, workspace: str,
               keep_id: bool, check_first: bool) -> str:
    """Upload under a template id of our choosing (idempotent); `check_first` when no ledger row
    says whether it was pushed, so a lost ledger costs a read rather than a write."""
    if not panel.object_id:
        raise PushError(f"panel {panel.name}: its zip was not fetched")
    template_id = panel.panel_id if keep_id else \
        xxhash.xxh3_128_hexdigest(f"{workspace}\0{panel.panel_id}".encode())[:25]
    if check_first:
        rows = client.get("code-panel/get-all", {"workspace": workspace}).get("codePanelTemplateRows", [])
        if any(str(r.get("templateId")) == template_id for r in rows):
            return template_id
    data = mirror.objects.get_bytes(panel.object_id)
    client.request("POST", "rest", "write/template/upload", write=True,
                   params={"teamName": workspace, "templateId": template_id},
                   files_factory=multipart([("file", ("panel.zip", data, "application/zip"))]))
    return template_id
