"""Neptune source: `fetch --from neptune PATH` (see docs/neptune.md).

PATH may hold neptune-exporter output (parquet parts + files tree), neptune 1.x
`.neptune/offline|async` op logs, or neptune-scale `run_operations.sqlite3`
queues, in any mix; each kind is its own origin (its own refs). A PATH that is
not a folder but `WORKSPACE[/PROJECT[/RUN]]` goes to a live server (live.py).
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from .. import SourceError
from ..offline_names import OfflineNames, ref_prefix, refuse_project
from ..options import FetchResult
from . import exporter, live, mapping, normalize, offline_v1, scale  # noqa: F401  (normalize registers)
from .driver import RunSource, fetch_runs

READERS = (exporter, offline_v1, scale)
NAMES_OFFLINE_RUNS = True    # takes `fetch --project` (local folders; a live server refuses it)
_TARGET_RE = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+){0,2}$")


def detect(path: Path) -> list:
    """The reader modules that find something in `path`."""
    found = []
    if exporter.locate(path):
        found.append(exporter)
    if offline_v1.locate(path):
        found.append(offline_v1)
    if scale.locate(path):
        found.append(scale)
    return found


def fetch(mirror, path: str, options, commit) -> FetchResult:
    p = Path(path)
    if not p.exists():
        if _TARGET_RE.match(path):
            refuse_project("Neptune", "server runs", options.project)
            return live.fetch(mirror, path, options, commit)
        raise SourceError(f"neptune: {path} does not exist")
    readers = detect(p)
    if not readers:
        if p.is_dir() and not any(p.iterdir()):
            raise SourceError(f"neptune: {path} is empty")
        raise SourceError(f"neptune: nothing Neptune-like in {path} (expected neptune-exporter parquet parts, "
                          ".neptune/offline run folders or neptune-scale run_operations.sqlite3)")
    result = FetchResult()
    found = []
    for reader in readers:       # every name is checked before any reader writes
        notes: list[str] = []
        errors: list[str] = []
        found.append((reader, _named(mirror, reader, reader.runs(p, notes, errors), options, notes), notes, errors))
    for reader, runs, notes, errors in found:
        if options.list_only:
            result.listing += [{"path": f"{r.workspace}/{r.project}/{r.key}", "origin": reader.ORIGIN,
                                "workspace": r.workspace, "project": r.project, "key": r.key} for r in runs]
            continue
        for note in notes:
            if options.progress:
                options.progress("note", message=note)
        fetch_runs(mirror, reader.ORIGIN, runs, options, commit, result, notes + errors)
        result.errors.extend(errors)
        result.failed += len(errors)
    return result


def _pair(text: str | None) -> tuple[str, str] | None:
    return tuple(text.split("/", 1)) if text else None


def _named(mirror, reader, runs: list[RunSource], options, notes: list[str]) -> list[RunSource]:
    """Runs under the names sources/offline_names.py gives: --project, else what the folder
    records; a reader's DEFAULT_PROJECT marks runs that record none (LEGACY_PROJECT: older fetches'),
    KEYS_UNIQUE says its run keys are unique beyond a project, so a stored run read under another name
    can be told (and refused)."""
    default = _pair(getattr(reader, "DEFAULT_PROJECT", None))
    names = OfflineNames(mirror, ref_prefix(mapping.SOURCE, reader.ORIGIN), default,
                         _pair(getattr(reader, "LEGACY_PROJECT", None)), options.project)
    out = []
    for run in runs:
        recorded = (run.workspace, run.project)
        if default and recorded == default:
            recorded = (None, None)
        out.append(_renamed(run, *names.name(*recorded)))
    if runs and names.note():
        notes.append(names.note())
    if not options.list_only and getattr(reader, "KEYS_UNIQUE", False):
        names.check([(r.workspace, r.project, r.key) for r in out])
    return out


def _renamed(run: RunSource, workspace: str, project: str) -> RunSource:
    if (workspace, project) == (run.workspace, run.project):
        return run
    stored = run.store

    def store(mirror, old):     # the manifest carries the name: the normalizer reads it from there
        return dict(stored(mirror, old), workspace=workspace, project=project)
    return dataclasses.replace(run, workspace=workspace, project=project, store=store)
