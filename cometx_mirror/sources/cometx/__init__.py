"""Fetching `cometx download` folders: `fetch --from cometx DIR`.

DIR is the folder cometx wrote into (workspace folders inside), one workspace
folder, one project folder or one experiment folder (layout.py).  Every file in
it is stored as a raw object; each experiment, project, artifact, registry
model and panel gets a manifest naming its files (reader.py), normalized into
the common model as a Comet fetch of the same data would be (normalize.py).

Scopes are per project and per kind of workspace entity, as for Comet.  A
folder is a partial view (cometx skips archived experiments; a user may
download one experiment), so entities not seen this time stay in the scope's
snapshot.  The ref names no path of this machine: `cometx/folder/<ws>/<proj>`.
"""
from __future__ import annotations

from pathlib import Path

from ...store.refs import ref_part
from ..options import FetchOptions, FetchResult
from . import layout, normalize, reader  # noqa: F401  (normalize registers the normalizers)

ORIGIN = "folder"


def _ref(*parts: str) -> str:
    return "/".join([reader.SOURCE, ORIGIN, *(ref_part(p) for p in parts)])


def _previous(mirror, ref: str) -> dict[str, str]:
    snapshot_id = mirror.refs.get(ref)
    return dict(mirror.snapshot(snapshot_id).manifests) if snapshot_id else {}


class CometxFetch:
    def __init__(self, mirror, options: FetchOptions, commit, root_name: str):
        self.mirror = mirror
        self.options = options
        self.commit = commit
        self.root_name = root_name or reader.SOURCE
        self.result = FetchResult()

    def _count(self, kind: str, label: str, previous: str | None, manifest_id: str) -> None:
        status = "new" if previous is None else ("unchanged" if previous == manifest_id else "changed")
        setattr(self.result, status, getattr(self.result, status) + 1)
        if callable(self.options.progress):
            self.options.progress(kind, label=label, status=status, manifest=manifest_id)

    def _fail(self, what: str, error: OSError) -> None:
        self.result.failed += 1
        self.result.errors.append(f"{what}: {error.strerror or error}")
        if self.options.debug:
            raise error

    def project(self, p: layout.ProjectDir) -> None:
        ref = _ref(p.workspace, p.name)
        previous = _previous(self.mirror, ref)
        manifests = dict(previous)      # a partial view: what is not seen now stays
        for e in p.experiments:
            try:
                manifest = reader.experiment_manifest(self.mirror, e.folder, p.workspace, p.name, self.root_name)
            except OSError as err:
                self._fail(f"{p.workspace}/{p.name}/{e.folder.name}", err)
                continue
            label = f"experiment/{p.workspace}/{p.name}/{manifest['key']}"
            manifest_id = self.mirror.put_json(manifest)
            self._count("experiment", label, previous.get(label), manifest_id)
            manifests[label] = manifest_id
        if p.whole:
            try:
                pm = reader.project_manifest(self.mirror, p.folder, p.workspace, p.name, self.root_name)
            except OSError as err:
                self._fail(f"{p.workspace}/{p.name}", err)
                pm = None
            if pm:
                manifests[f"project/{p.workspace}/{p.name}"] = self.mirror.put_json(pm)
        self.commit(ref, self.root_name, f"{p.workspace}/{p.name}", dict(sorted(manifests.items())),
                    {"experiments": len(p.experiments), "errors": len(self.result.errors)})

    def special(self, ws: layout.WorkspaceDir, kind: str, folder: Path) -> None:
        ref = _ref(ws.name, "@" + kind)
        previous = _previous(self.mirror, ref)
        manifests = dict(previous)
        for entry in sorted(folder.iterdir()):
            if entry.is_symlink():
                continue
            try:
                if kind == "panels":
                    if not (entry.is_file() and entry.suffix == ".zip"):
                        continue
                    manifest = reader.panel_manifest(self.mirror, entry, ws.name, self.root_name)
                    label = f"panel/{ws.name}/{manifest['panel_id']}"
                elif not entry.is_dir():
                    continue
                elif kind == "artifacts":
                    manifest = reader.artifact_manifest(self.mirror, entry, ws.name, self.root_name)
                    label = f"artifact/{ws.name}/{entry.name}"
                else:
                    manifest = reader.registry_manifest(self.mirror, entry, ws.name, self.root_name)
                    label = f"registry_model/{ws.name}/{entry.name}"
            except OSError as err:
                self._fail(f"{ws.name}/{kind}/{entry.name}", err)
                continue
            manifest_id = self.mirror.put_json(manifest)
            self._count(manifest["type"], label, previous.get(label), manifest_id)
            manifests[label] = manifest_id
        if not manifests:
            return
        self.commit(ref, self.root_name, f"{ws.name}/{kind}", dict(sorted(manifests.items())),
                    {"errors": len(self.result.errors)})


def _listing(found: layout.Found) -> list[dict]:
    out = []
    for ws in found.workspaces:
        for p in ws.projects:
            out += [{"source": reader.SOURCE, "path": f"{ws.name}/{p.name}/{e.folder.name}",
                     "workspace": ws.name, "project": p.name} for e in p.experiments]
        out += [{"source": reader.SOURCE, "path": f"{ws.name}/{kind}/{entry.name}"}
                for kind, folder in sorted(ws.special.items()) for entry in sorted(folder.iterdir())]
    return out


def fetch(mirror, path: str, options: FetchOptions, commit) -> FetchResult:
    found = layout.find(path)
    run = CometxFetch(mirror, options, commit, found.root_name)
    if options.list_only:
        run.result.listing = _listing(found)
        return run.result
    for ws in found.workspaces:
        for p in ws.projects:
            run.project(p)
        for kind, folder in sorted(ws.special.items()):
            run.special(ws, kind, folder)
    return run.result
