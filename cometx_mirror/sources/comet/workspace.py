"""Workspace-level Comet entities: artifacts, registry models, panels.

Artifact versions and registry versions are immutable once final, so a version
already in the previous manifest is never downloaded again; the details
listing (aliases, tags, stages) is re-read each time because those move.
"""
from __future__ import annotations

from typing import Any

from ...net.http import HttpError
from ...store import canonical
from ...store.mirror import Mirror
from .reader import CometReader, store_body


class WorkspaceFetcher:
    def __init__(self, mirror: Mirror, reader: CometReader, workspace: str):
        self.mirror = mirror
        self.reader = reader
        self.workspace = workspace

    def _put(self, value: Any) -> dict:
        data = value if isinstance(value, bytes) else canonical.dumps(value)
        return {"object": self.mirror.objects.put_bytes(data), "size": len(data)}

    def _stream(self, endpoint: str, **params) -> dict:
        object_id, size = self.reader.stream(endpoint, store_body(self.mirror.objects), **params)
        return {"object": object_id, "size": size}

    # -- artifacts ---------------------------------------------------------
    def artifact_names(self) -> list[str]:
        rows = self.reader.get("artifacts/get-all", workspace=self.workspace).get("artifacts", [])
        return sorted({r["name"] for r in rows if r.get("name")})

    def artifact(self, name: str, previous: dict | None, only_version: str | None = None) -> dict:
        details = self.reader.get("artifacts/get", workspace=self.workspace, artifactName=name)
        versions = dict((previous or {}).get("versions", {}))
        for v in details.get("versions", []):
            vid = v.get("artifactVersionId")
            if only_version and only_version not in (str(v.get("version")), *(v.get("alias") or [])):
                continue
            if vid in versions and all(self.mirror.objects.exists(o["object"])
                                       for o in versions[vid].get("objects", {}).values()):
                continue
            files = self.reader.get("artifacts/version/files", workspace=self.workspace,
                                    artifactName=name, version=v.get("version"))
            objects = {}
            for f in files.get("files", []):
                if f.get("remote"):
                    continue
                object_id, size = self.reader.stream_asset(store_body(self.mirror.objects, f.get("fileSize")),
                                                           f["assetId"], artifact_version_id=vid)
                objects[f["assetId"]] = {"object": object_id, "size": size}
            versions[vid] = {"files": self._put(files), "objects": objects}
        return {"type": "artifact", "normalizer": "comet-artifact/1", "source": "comet",
                "origin": self.reader.creds.origin, "workspace": self.workspace, "name": name,
                "details": self._put(details), "versions": versions}

    # -- model registry ----------------------------------------------------
    def registry_names(self) -> list[str]:
        rows = self.reader.get("registry-model", workspaceName=self.workspace).get("registryModels", [])
        return sorted({r["modelName"] for r in rows if r.get("modelName")})

    def registry_model(self, name: str, previous: dict | None, only: str | None = None) -> dict:
        details = self.reader.get("registry-model/details", workspaceName=self.workspace, modelName=name)
        notes = self.reader.get("registry-model/notes", workspaceName=self.workspace, modelName=name)
        zips = dict((previous or {}).get("zips", {}))
        for v in details.get("versions", []):
            version = str(v.get("version"))
            if only and only not in (version, *(v.get("stages") or [])):
                continue
            if version in zips and self.mirror.objects.exists(zips[version]["object"]):
                continue
            try:
                zips[version] = self._stream("registry-model/item/download", workspaceName=self.workspace,
                                             modelName=name, version=version)
            except HttpError as e:
                if e.status not in (400, 404):   # a version with no files has nothing to download
                    raise
        return {"type": "registry_model", "normalizer": "comet-registry/1", "source": "comet",
                "origin": self.reader.creds.origin, "workspace": self.workspace, "name": name,
                "details": self._put(details), "notes": self._put(notes), "zips": zips}

    # -- panels ------------------------------------------------------------
    def panel_rows(self) -> list[dict]:
        return self.reader.get("code-panel/get-all", workspace=self.workspace).get("codePanelTemplateRows", [])

    def panel(self, row: dict, previous: dict | None) -> dict:
        row_ref = self._put(row)
        if previous and previous.get("row", {}).get("object") == row_ref["object"] and previous.get("zip") \
                and self.mirror.objects.exists(previous["zip"]["object"]):
            zip_ref = previous["zip"]          # same revision: the template has not changed
        else:
            zip_ref = self._stream(f"template/{row['templateId']}/download")
        return {"type": "panel", "normalizer": "comet-panel/1", "source": "comet",
                "origin": self.reader.creds.origin, "workspace": self.workspace,
                "name": str(row.get("templateId")), "row": row_ref, "zip": zip_ref}
