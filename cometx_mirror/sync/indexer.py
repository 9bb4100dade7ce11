"""Keeping the DuckDB index in step with the refs.

The index records which manifest it ingested for every label; `refresh`
normalizes and ingests only labels whose manifest changed, and drops labels no
ref names any more.  Because it compares against the refs each time, an index
left behind by a crash catches up on the next write, and `reindex` is just a
refresh into an empty file.

After each refresh a stamp (`index.stamp`) records the refs it brought the index
up to and the index file it left behind; while both still match, refresh has
nothing to do and returns without opening DuckDB at all, so a fetch that found
nothing new never pays for the index.
"""
from __future__ import annotations

import json
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from .. import model
from ..index import ingest
from ..index.db import open_write
from ..sources import get_grown_normalizer, get_normalizer
from ..store import faultpoint
from ..store.mirror import Mirror
from ..store.objects import ObjectError

BATCH = 25   # entities normalized per write-connection, so readers get a turn
STAMP = "index.stamp"


@dataclass
class Entity:
    label: str
    manifest_id: str
    obj: object            # a model object
    texts: dict            # object id -> inline text
    append: bool = False   # obj's metrics are only those logged since the indexed manifest's


def _texts_content(mirror: Mirror, exp: model.Experiment) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for t in exp.texts:
        if t.kind == "git_patch" or t.size is None or t.size > ingest.TEXT_INLINE_LIMIT:
            continue
        try:
            out[t.object_id] = mirror.objects.get_bytes(t.object_id).decode("utf-8")
        except UnicodeDecodeError:
            out[t.object_id] = None
    return out


def _normalize(mirror: Mirror, label: str, manifest_id: str, indexed_id: str | None = None) -> Entity:
    """`indexed_id`: the manifest whose rows the index holds for `label`; a run that only grew
    since is read from there on, its metric rows appended (Entity.append)."""
    manifest = mirror.get_json(manifest_id)
    grown = get_grown_normalizer(manifest["normalizer"]) if indexed_id else None
    obj = None
    if grown is not None:
        try:
            obj = grown(mirror, manifest, mirror.get_json(indexed_id))
        except ObjectError:
            obj = None      # the old manifest is gone or damaged: read whole
    append = obj is not None
    if obj is None:
        obj = get_normalizer(manifest["normalizer"])(mirror, manifest)
    texts = _texts_content(mirror, obj) if isinstance(obj, model.Experiment) else {}
    return Entity(label, manifest_id, obj, texts, append)


def _identity(obj) -> tuple[str, str, str, str]:
    """(type, source, workspace, entity) as kept in the manifests table."""
    if isinstance(obj, model.Experiment):
        return "experiment", obj.source, obj.workspace, obj.id
    if isinstance(obj, model.Project):
        return "project", obj.source, obj.workspace, obj.name
    if isinstance(obj, model.Artifact):
        return "artifact", obj.source, obj.workspace, ingest.artifact_entity(obj)
    if isinstance(obj, model.RegistryModel):
        return "registry_model", obj.source, obj.workspace, obj.name
    if isinstance(obj, model.Panel):
        return "panel", obj.source, obj.workspace, obj.panel_id
    raise TypeError(f"normalizer returned {type(obj).__name__}")


_INGEST = {
    model.Experiment: ingest.ingest_experiment, model.Project: ingest.ingest_project,
    model.Artifact: ingest.ingest_artifact, model.RegistryModel: ingest.ingest_registry_model,
    model.Panel: ingest.ingest_panel,
}


class Ahead:
    """Gets the index ready while a fetch still downloads, on one background thread:
    first it loads the libraries ingesting needs, then it normalizes each entity
    the fetch reports finished, so the commit that indexes them finds them done.
    Like refresh, it holds at most BATCH normalized entities.  Called from one thread."""

    def __init__(self, mirror: Mirror):
        self.mirror = mirror
        self._pool: ThreadPoolExecutor | None = None
        self._ready: dict[str, Future] = {}      # manifest id -> its Entity

    def start(self) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="index-ahead")
            self._pool.submit(ingest.load_libraries)

    def add(self, manifest_id: str) -> None:
        self.start()
        if len(self._ready) < BATCH and manifest_id not in self._ready and not _maybe_grown(self.mirror, manifest_id):
            self._ready[manifest_id] = self._pool.submit(_normalize, self.mirror, "", manifest_id)

    def take(self, label: str, manifest_id: str) -> Entity | None:
        job = self._ready.pop(manifest_id, None)
        if job is None:
            return None
        try:
            entity = job.result()
        except Exception:   # the caller normalizes again, and reports what goes wrong
            return None
        entity.label = label
        return entity

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _maybe_grown(mirror: Mirror, manifest_id: str) -> bool:
    """A run that may only have grown (a W&B log stored as parts, a neptune-scale queue of segments):
    left to refresh, which knows the indexed manifest and reads only the new points; normalizing it
    whole ahead would be wasted."""
    try:
        manifest = mirror.get_json(manifest_id)
    except ObjectError:
        return False
    grown = get_grown_normalizer(manifest.get("normalizer", ""))
    return grown is not None and grown.maybe(manifest)


def _drop(con, kind: str, source: str, workspace: str, entity: str) -> None:
    if kind == "experiment":
        ingest.delete_experiment(con, entity)
    else:
        ingest.delete_workspace_entity(con, kind, source, workspace, entity)


def _write_batch(con, entities: list[Entity]) -> None:
    for e in entities:
        kind, source, workspace, entity = _identity(e.obj)
        con.execute("BEGIN")
        old = con.execute("SELECT type, source, workspace, entity FROM manifests WHERE label = ?",
                          [e.label]).fetchone()
        if old and old[3] != entity:   # the label now names another entity: drop the old rows
            _drop(con, *old)
        if isinstance(e.obj, model.Experiment):
            ingest.ingest_experiment(con, e.obj, e.manifest_id, e.texts, append_metrics=e.append)
        else:
            _INGEST[type(e.obj)](con, e.obj, e.manifest_id)
        con.execute("INSERT OR REPLACE INTO manifests VALUES (?, ?, ?, ?, ?, ?)",
                    [e.label, e.manifest_id, kind, source, workspace, entity])
        con.execute("COMMIT")
        faultpoint.hit("after_index_entity")


def _sync_snapshots(mirror: Mirror, con) -> None:
    known = {r[0] for r in con.execute("SELECT snapshot_id FROM snapshots").fetchall()}
    for snap in mirror.history(skip=known):   # only snapshots new since the last refresh are read
        ingest.record_snapshot(con, snap.id, snap.ref, snap.parent, snap.time, snap.source,
                               snap.origin, snap.scope, len(snap.manifests), snap.stats)


def _state(mirror: Mirror) -> dict | None:
    """The refs and the index file as they are now; None if the index is missing or a
    writer left its WAL behind (then only a real check will do)."""
    try:
        st = os.stat(mirror.index_path)
    except FileNotFoundError:
        return None
    if os.path.exists(f"{mirror.index_path}.wal"):
        return None
    return {"refs": dict(sorted(mirror.refs.items())), "index": [st.st_size, st.st_mtime_ns]}


def _stamped(mirror: Mirror) -> bool:
    try:
        saved = json.loads((mirror.root / STAMP).read_text())
    except (OSError, ValueError):
        return False
    return saved == _state(mirror)


def _write_stamp(mirror: Mirror) -> None:
    state = _state(mirror)
    if state is None:
        return
    tmp = mirror.root / f"{STAMP}.tmp"
    tmp.write_text(json.dumps(state))
    os.replace(tmp, mirror.root / STAMP)


class IndexIncomplete(ObjectError):
    """Some entities could not be indexed (a damaged object); the others were."""

    def __init__(self, failures: list[str]):
        self.failures = failures
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        super().__init__(f"not indexed: {failures[0]}{more}")


def refresh(mirror: Mirror, ahead: Ahead | None = None) -> int:
    """Bring the index up to the refs; return how many entities were (re)ingested.
    Entities `ahead` has normalized already are taken from it.

    An entity whose objects are damaged is left out (its old rows, if any, stay) and
    the others go in; then IndexIncomplete names what was left out, and no stamp is
    written, so the next refresh tries those entities again (after a fetch healed them)."""
    if _stamped(mirror):
        return 0
    if not mirror.index_path.exists() and next(mirror.refs.names(), None) is None:
        return 0    # a new mirror: nothing to index yet, and the first commit creates the index
    current = mirror.current_manifests()

    failures: list[str] = []

    def batch(labels: list[str]) -> list[Entity]:
        out = []
        for label in labels:
            try:
                out.append((ahead and ahead.take(label, current[label]))
                           or _normalize(mirror, label, current[label], indexed.get(label)))
            except ObjectError as e:
                failures.append(f"{label}: {' '.join(str(e).split())}")
        return out

    with open_write(mirror.index_path) as con:
        indexed = dict(con.execute("SELECT label, manifest_id FROM manifests").fetchall())
        gone = [label for label in indexed if label not in current]
        for label in gone:
            row = con.execute("SELECT type, source, workspace, entity FROM manifests WHERE label = ?",
                              [label]).fetchone()
            con.execute("BEGIN")
            _drop(con, *row)
            con.execute("DELETE FROM manifests WHERE label = ?", [label])
            con.execute("COMMIT")
        _sync_snapshots(mirror, con)
        todo = sorted(label for label, mid in current.items() if indexed.get(label) != mid)
        _write_batch(con, batch(todo[:BATCH]))
    for start in range(BATCH, len(todo), BATCH):     # a new connection per batch: readers get a turn
        entities = batch(todo[start:start + BATCH])
        with open_write(mirror.index_path) as con:
            _write_batch(con, entities)
    if failures:
        raise IndexIncomplete(failures)
    _write_stamp(mirror)
    return len(todo)


def rebuild(mirror: Mirror) -> int:
    """Throw the index away and build it again from the refs alone."""
    for suffix in ("", ".wal"):
        try:
            os.unlink(str(mirror.index_path) + suffix)
        except FileNotFoundError:
            pass
    return refresh(mirror)
