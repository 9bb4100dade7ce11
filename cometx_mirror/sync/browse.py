"""The read side: ls, query, show, cat, log over the index and the objects.

Readers resolve the refs first, then read the index (restic's read order).
Before reading, `reading_index` brings the index up to the refs when nobody
else is writing: a crash between a ref update and the index ingest, or a
missing or damaged index file, heals on the next read.  When a writer holds
the mirror, readers read what the index has and never wait for the lock.
"""
from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Any, Iterator

from .. import paths
from ..errors import ExpectedError
from ..index import queries
from ..index.db import IndexBusy, IndexDamaged, open_read, set_aside
from ..store.lock import LockedError
from ..sources import SourceError
from ..store.mirror import Mirror
from ..store.objects import ObjectError
from . import indexer

notes = logging.getLogger("cometx_mirror")   # one-line notes the CLI shows
READ_WAIT = float(os.environ.get("COMETX_MIRROR_READ_WAIT", "10"))


def _index_current(mirror: Mirror) -> bool:
    if not mirror.index_path.exists():
        return False
    with open_read(mirror.index_path, wait=READ_WAIT) as con:
        indexed = dict(con.execute("SELECT label, manifest_id FROM manifests").fetchall())
    return indexed == mirror.current_manifests()


def catch_up(mirror: Mirror) -> str | None:
    """Refresh (or rebuild a damaged/missing) index when the write lock is free.

    Returns a one-line note when something was done, None otherwise.
    """
    try:
        damaged = False
        try:
            if _index_current(mirror):
                return None
        except IndexDamaged:
            damaged = True
        with mirror.write_lock("index catch-up", own_cache_if_busy=False):
            if damaged or not mirror.index_path.exists():
                aside = set_aside(mirror.index_path) if damaged else None
                n = indexer.rebuild(mirror)
                if aside:
                    return (f"the index was damaged: moved it aside to {aside.name} and rebuilt it "
                            f"from the refs ({n} entities)")
                return f"rebuilt the index from the refs ({n} entities)"
            n = indexer.refresh(mirror)
            return f"brought the index up to the refs ({n} entities)" if n else None
    except LockedError:
        if not mirror.index_path.exists():
            raise IndexBusy("the index is missing and another process holds the mirror's write lock; "
                            "try again when it ends") from None
        return None     # a writer is at work: it refreshes the index itself
    except PermissionError:
        return None     # a read-only mirror: read what is there
    except (ObjectError, SourceError) as e:
        # A damaged snapshot or manifest: read what the index has; `verify` says what is wrong.
        return f"could not bring the index up to the refs: {' '.join(str(e).split())}"


@contextlib.contextmanager
def reading_index(mirror: Mirror, sandboxed: bool = False, refresh: bool = True):
    if refresh:
        note = catch_up(mirror)
        if note:
            notes.info(note)
    with open_read(mirror.index_path, wait=READ_WAIT, sandboxed=sandboxed) as con:
        yield con


# -- ls ------------------------------------------------------------------------

@dataclass
class Listing:
    level: str                       # "workspaces" | "projects" | "experiments" | "resources"
    path: str
    result: queries.Result

    def names(self) -> list[str]:
        col = {"workspaces": "workspace", "projects": "project", "experiments": "key",
               "resources": "name"}[self.level]
        out = []
        for rec in self.result.records():
            name = str(rec[col])
            if self.level == "resources" and rec["kind"] == "asset":
                name = f"{rec['type']}/{name}"
            out.append(name)
        return out


def label_origins(mirror: Mirror) -> dict[str, str]:
    """label -> the server (or folder kind) it was fetched from, as the refs say; where two
    snapshots name one label the newer wins, as in Mirror.current_manifests."""
    out: dict[str, tuple[float, str]] = {}
    try:
        for snap in mirror.head_snapshots():
            for label in snap.manifests:
                key = f"{snap.source}:{label}"
                if key not in out or out[key][0] <= snap.time:
                    out[key] = (snap.time, snap.origin)
    except (ObjectError, SourceError, OSError, ValueError):
        pass            # a damaged snapshot: ls still lists, without origins; `verify` says why
    return {k: v[1] for k, v in out.items()}


def _with_origins(con, mirror: Mirror):
    """A cursor of `con` on which the queries can read `label_origin` (a temporary table: the
    index's file stays read-only, and neither Arrow nor DuckDB's Python layer is loaded for it)."""
    origins = label_origins(mirror)
    cur = con.cursor()
    cur.execute("CREATE TEMP TABLE label_origin AS "
                "SELECT unnest($1::VARCHAR[]) AS label, unnest($2::VARCHAR[]) AS origin",
                [list(origins), list(origins.values())])
    return cur


def ls(mirror: Mirror, path: str = "") -> Listing:
    parts = paths.split(path)
    with reading_index(mirror) as con:
        con = _with_origins(con, mirror)
        if not parts:
            return Listing("workspaces", "", queries.workspaces(con))
        if len(parts) == 1:
            return Listing("projects", parts[0], queries.projects(con, parts[0]))
        if len(parts) == 2:
            return Listing("experiments", "/".join(parts), queries.experiments(con, *parts))
        exp_id = queries.find_experiment(con, "/".join(parts))
        return Listing("resources", "/".join(parts), queries.resources(con, exp_id))


# -- query ---------------------------------------------------------------------

def query(mirror: Mirror, sql: str) -> queries.Result:
    with reading_index(mirror, sandboxed=True) as con:
        return queries.run_sql(con, sql)


@contextlib.contextmanager
def stream_query(mirror: Mirror, sql: str) -> Iterator[tuple[list[str], Iterator[tuple]]]:
    """(columns, rows) of one read-only statement, rows read as they are consumed."""
    with reading_index(mirror, sandboxed=True) as con:
        yield queries.stream_sql(con, sql)


# -- show ----------------------------------------------------------------------

def show(mirror: Mirror, exp: str) -> dict[str, Any]:
    paths.check(exp, "experiment")
    with reading_index(mirror) as con:
        return queries.experiment_summary(con, queries.find_experiment(con, exp))


# -- cat -----------------------------------------------------------------------

class NotStored(ExpectedError):
    """The resource exists but its bytes are not in the mirror (a remote asset)."""


def cat(mirror: Mirror, exp: str, name: str) -> Iterator[bytes]:
    """The raw bytes of a text resource or an asset, verified first, then streamed:
    a damaged object raises here, so nothing of it reaches stdout."""
    paths.check(exp, "experiment")
    with reading_index(mirror) as con:
        exp_id = queries.find_experiment(con, exp)
        object_id, row = queries.find_resource(con, exp_id, name)
    if not object_id:
        link = row.get("link")
        raise NotStored(f"{name!r} is not stored in the mirror" + (f" (remote: {link})" if link else ""))
    try:
        return mirror.objects.read_chunks(object_id)    # verified here, before the first byte
    except ObjectError as e:
        raise ObjectError(f"{exp_id} {name}: {e}") from None


# -- log -----------------------------------------------------------------------

def log(mirror: Mirror, limit: int | None = None) -> list[dict[str, Any]]:
    """Every ref move, newest first, with the snapshot it moved to."""
    out = []
    for entry in reversed(list(mirror.refs.log_entries())):
        sid = entry.get("new")
        rec = {"snapshot": sid, "ref": entry.get("ref"), "time": entry.get("time"),
               "message": entry.get("message"), "parent": entry.get("old"),
               "source": None, "scope": None, "manifests": None}
        try:
            snap = mirror.snapshot(sid, rec["ref"])
            rec.update(source=snap.source, scope=snap.scope, manifests=len(snap.manifests),
                       stats=snap.stats)
        except Exception as e:  # a damaged or missing snapshot still shows in the log
            rec["error"] = " ".join(str(e).split())
        out.append(rec)
        if limit and len(out) >= limit:
            break
    return out
