"""Storing a cometx download folder: every file as a raw object, one manifest per entity.

A manifest names each file by its path inside the entity's folder, so nothing
the folder holds is lost and the normalizer can re-read it all.  A few texts
are also stored in the shape a Comet fetch stores them (git metadata as
canonical JSON, requirements with their final newline), so the index rows of
both routes are the same.  Files are hashed before they are written: reading
an unchanged folder again writes nothing.
"""
from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import xxhash

from ...store import canonical

SOURCE = "cometx"
EXPERIMENT_NORMALIZER = "cometx-experiment/1"
# files cometx writes from the Comet REST (cometx.md §1.4) -> the text kind they hold
TEXT_FILES = {
    "assets/html/experiment.html": "html", "run/script.py": "code", "run/output.txt": "output",
    "run/graph_definition.txt": "graph", "run/git_diff.patch": "git_patch",
}
ZIP_TIME = (1980, 1, 1, 0, 0, 0)      # fixed, so a zip we build is the same bytes every time


def store_file(mirror, path: Path) -> dict:
    object_id, size = mirror.objects.put_file_once(path)
    return {"object": object_id, "size": size}


def store_bytes(mirror, data: bytes) -> dict:
    object_id = xxhash.xxh3_128(data).hexdigest()
    if not mirror.objects.exists(object_id):
        object_id = mirror.objects.put_bytes(data)
    return {"object": object_id, "size": len(data)}


def store_tree(mirror, folder: Path, skip_top: tuple[str, ...] = ()) -> dict[str, dict]:
    """relative path -> object ref of every regular file under `folder` (links not followed)."""
    files: dict[str, dict] = {}
    for dirpath, dirs, names in os.walk(folder):
        base = Path(dirpath)
        if base == folder:
            dirs[:] = [d for d in dirs if d not in skip_top]
        dirs.sort()
        for name in sorted(names):
            full = base / name
            if full.is_symlink() or not full.is_file():
                continue
            files[full.relative_to(folder).as_posix()] = store_file(mirror, full)
    return dict(sorted(files.items()))


def _json(path: Path):
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None


def _origin(folder: Path) -> str | None:
    """The Comet host the folder came from, as a Comet fetch names it (host[:port]): cometx
    keeps each asset's download link.  Push uses it to tell the source instance apart."""
    try:
        with open(folder / "assets" / "assets_metadata.jsonl", encoding="utf-8") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                link = entry.get("link") if isinstance(entry, dict) and not entry.get("remote") else None
                if isinstance(link, str) and link.startswith(("http://", "https://")):
                    return urlparse(link).netloc or None
    except OSError:
        pass
    return None


def experiment_manifest(mirror, folder: Path, workspace: str, project: str, root_name: str) -> dict:
    files = store_tree(mirror, folder)
    meta = _json(folder / "metadata.json")
    meta = meta if isinstance(meta, dict) else {}
    texts = {kind: files[path] for path, kind in TEXT_FILES.items() if files.get(path, {}).get("size")}
    git = _json(folder / "run" / "git_metadata.json")
    if isinstance(git, dict) and any(git.values()):
        texts["git_metadata"] = store_bytes(mirror, canonical.dumps(git))   # as a Comet fetch keeps it
    if files.get("run/requirements.txt", {}).get("size"):
        data = (folder / "run" / "requirements.txt").read_bytes()
        texts["requirements"] = store_bytes(mirror, data if data.endswith(b"\n") else data + b"\n")
    manifest = {"type": "experiment", "normalizer": EXPERIMENT_NORMALIZER, "source": SOURCE,
                "folder": root_name, "workspace": workspace, "project": project,
                # the experiment's own Comet key (the folder may be named after the experiment)
                "key": str(meta.get("experimentKey") or folder.name), "dir": folder.name,
                "files": files, "texts": dict(sorted(texts.items()))}
    origin = _origin(folder)
    if origin:
        manifest["origin"] = origin
    return manifest


def project_manifest(mirror, folder: Path, workspace: str, project: str, root_name: str) -> dict | None:
    files = {name: store_file(mirror, folder / name) for name in ("project_metadata.json", "project_notes.md")
             if (folder / name).is_file()}
    if not files:
        return None
    return {"type": "project", "normalizer": "cometx-project/1", "source": SOURCE, "folder": root_name,
            "workspace": workspace, "project": project, "files": files}


def artifact_manifest(mirror, folder: Path, workspace: str, root_name: str) -> dict:
    """WS/artifacts/NAME/...: one version's files at their logical paths (cometx keeps no version)."""
    return {"type": "artifact", "normalizer": "cometx-artifact/1", "source": SOURCE, "folder": root_name,
            "workspace": workspace, "name": folder.name, "files": store_tree(mirror, folder)}


def deterministic_zip(mirror, folder: Path, files: dict[str, dict]) -> dict:
    """The extracted registry files zipped again (Comet keeps a model version as one zip)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for rel in files:
            info = zipfile.ZipInfo(rel, ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, (folder / rel).read_bytes())
    return store_bytes(mirror, buf.getvalue())


def registry_manifest(mirror, folder: Path, workspace: str, root_name: str) -> dict:
    """WS/model-registry/NAME/...: one version's extracted zip (cometx keeps no version)."""
    files = store_tree(mirror, folder)
    return {"type": "registry_model", "normalizer": "cometx-registry/1", "source": SOURCE,
            "folder": root_name, "workspace": workspace, "name": folder.name, "files": files,
            "zip": deterministic_zip(mirror, folder, files)}


def panel_manifest(mirror, path: Path, workspace: str, root_name: str) -> dict:
    """WS/panels/panel-<templateId>.zip, as Comet's template download gave it."""
    ref = store_file(mirror, path)
    template_id = path.stem[len("panel-"):] if path.stem.startswith("panel-") else path.stem
    name = None
    try:
        with zipfile.ZipFile(path) as z:
            for member in z.namelist():
                if member.endswith(".json"):
                    body = json.loads(z.read(member))
                    name = body.get("templateName") if isinstance(body, dict) else None
                    if name:
                        break
    except (zipfile.BadZipFile, ValueError, OSError):
        pass
    manifest = {"type": "panel", "normalizer": "cometx-panel/1", "source": SOURCE, "folder": root_name,
                "workspace": workspace, "panel_id": template_id, "file": path.name, "zip": ref}
    if name:
        manifest["name"] = name
    return manifest
