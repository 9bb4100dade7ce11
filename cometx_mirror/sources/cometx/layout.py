"""Finding what a `cometx download` folder holds: workspaces, projects, experiments.

cometx writes ROOT/<workspace>/<project>/<experiment>/..., with the workspace's
artifacts, model-registry and panels folders beside its projects.  A user may
hand us any level of that tree: the root, one workspace, one project or one
experiment folder.  The names come from the folders (cometx names them after
the workspace and project), or from metadata.json when an experiment folder is
given alone.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .. import SourceError

SPECIAL = ("artifacts", "model-registry", "panels")
# files cometx writes into every experiment folder (any one of them marks one)
EXPERIMENT_FILES = ("metadata.json", "metrics.jsonl", "parameters.json", "others.jsonl",
                    "system_details.json", "metrics_summary.jsonl", "assets/assets_metadata.jsonl")


@dataclass
class ExperimentDir:
    folder: Path
    workspace: str
    project: str


@dataclass
class ProjectDir:
    folder: Path
    workspace: str
    name: str
    experiments: list[ExperimentDir] = field(default_factory=list)
    whole: bool = True          # False: one experiment folder was given, not the project


@dataclass
class WorkspaceDir:
    folder: Path
    name: str
    projects: list[ProjectDir] = field(default_factory=list)
    special: dict[str, Path] = field(default_factory=dict)    # "artifacts" -> folder


@dataclass
class Found:
    root_name: str              # the name (never the path) of the folder cometx wrote into
    workspaces: list[WorkspaceDir]


def _dirs(folder: Path) -> list[Path]:
    return sorted(c for c in folder.iterdir() if c.is_dir() and not c.is_symlink())


def is_experiment(folder: Path) -> bool:
    return any((folder / name).is_file() for name in EXPERIMENT_FILES)


def is_project(folder: Path) -> bool:
    if folder.name in SPECIAL:
        return False
    return (folder / "project_metadata.json").is_file() or any(is_experiment(c) for c in _dirs(folder))


def is_workspace(folder: Path) -> bool:
    return any((folder / s).is_dir() for s in SPECIAL) or any(is_project(c) for c in _dirs(folder))


def _json_file(path: Path) -> dict:
    try:
        value = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _project(folder: Path, workspace: str, name: str) -> ProjectDir:
    project = ProjectDir(folder, workspace, name)
    project.experiments = [ExperimentDir(c, workspace, name) for c in _dirs(folder) if is_experiment(c)]
    return project


def _workspace(folder: Path) -> WorkspaceDir:
    ws = WorkspaceDir(folder, folder.name)
    ws.projects = [_project(c, ws.name, c.name) for c in _dirs(folder) if is_project(c)]
    ws.special = {s: folder / s for s in SPECIAL if (folder / s).is_dir()}
    return ws


def find(path: str) -> Found:
    """What PATH holds; one clear line when it is not a cometx download folder."""
    folder = Path(path).expanduser()
    if not folder.exists():
        raise SourceError(f"{path}: no such folder")
    if not folder.is_dir():
        raise SourceError(f"{path} is a file, not a cometx download folder")
    folder = folder.resolve()
    if is_experiment(folder):
        meta = _json_file(folder / "metadata.json")
        project = meta.get("projectName") or folder.parent.name
        workspace = meta.get("workspaceName") or folder.parent.parent.name
        p = ProjectDir(folder.parent, workspace, project, [ExperimentDir(folder, workspace, project)], whole=False)
        return Found(folder.parent.parent.parent.name, [WorkspaceDir(folder.parent.parent, workspace, [p])])
    if is_project(folder):
        meta = _json_file(folder / "project_metadata.json")
        workspace = meta.get("workspaceName") or folder.parent.name
        p = _project(folder, workspace, meta.get("projectName") or folder.name)
        return Found(folder.parent.parent.name, [WorkspaceDir(folder.parent, workspace, [p])])
    if folder.name in SPECIAL and folder.parent.is_dir():      # WS/artifacts given alone
        ws = WorkspaceDir(folder.parent, folder.parent.name, special={folder.name: folder})
        return Found(folder.parent.parent.name, [ws])
    if is_workspace(folder):
        return Found(folder.parent.name, [_workspace(folder)])
    workspaces = [_workspace(c) for c in _dirs(folder) if is_workspace(c)]
    if workspaces:
        return Found(folder.name, workspaces)
    raise SourceError(f"{path} is not a cometx download folder (no workspace, project or experiment "
                      "folder in it: metadata.json, metrics.jsonl, project_metadata.json, ...)")
