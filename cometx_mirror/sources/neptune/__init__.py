"""Neptune source: `fetch --from neptune PATH` (see docs/neptune.md).

PATH may hold neptune-exporter output (parquet parts + files tree), neptune 1.x
`.neptune/offline|async` op logs, or neptune-scale `run_operations.sqlite3`
queues, in any mix; each kind is its own origin (its own refs). A PATH that is
not a folder but `WORKSPACE[/PROJECT[/RUN]]` goes to a live server (live.py).
"""
from __future__ import annotations

import re
from pathlib import Path

from .. import SourceError
from ..options import FetchResult
from . import exporter, live, normalize, offline_v1, scale  # noqa: F401  (normalize registers)
from .driver import fetch_runs

READERS = (exporter, offline_v1, scale)
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
            return live.fetch(mirror, path, options, commit)
        raise SourceError(f"neptune: {path} does not exist")
    readers = detect(p)
    if not readers:
        if p.is_dir() and not any(p.iterdir()):
            raise SourceError(f"neptune: {path} is empty")
        raise SourceError(f"neptune: nothing Neptune-like in {path} (expected neptune-exporter parquet parts, "
                          ".neptune/offline run folders or neptune-scale run_operations.sqlite3)")
    result = FetchResult()
    for reader in readers:
        notes: list[str] = []
        errors: list[str] = []
        runs = reader.runs(p, notes, errors)
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
