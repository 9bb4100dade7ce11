"""Running a fetch: lock the mirror, let the source download, commit its snapshots.

The source module (see sources/__init__.py) does the talking to the vendor and
writes objects and manifests; this layer owns what makes a fetch a snapshot:
the write lock, the snapshot + ref update per scope, and the index refresh.

    source.fetch(mirror, path, options, commit) -> FetchResult | None

`commit(ref, origin, scope, manifests, stats)` may be called once per scope as
soon as that scope is complete, so an interrupted fetch keeps what it finished.
"""
from __future__ import annotations

import dataclasses

from ..sources import load_source
from ..sources.offline_names import refuse_project
from ..store.mirror import Mirror
from ..store.objects import ObjectError
from . import indexer, shrink
from ..sources.options import FetchOptions, FetchResult


def run_fetch(mirror: Mirror, source_name: str, path: str, options: FetchOptions) -> FetchResult:
    source = load_source(source_name)
    if options.project is not None and not getattr(source, "NAMES_OFFLINE_RUNS", False):
        refuse_project(source_name, "experiments", options.project)
    if options.list_only:
        return source.fetch(mirror, path, options, _no_commit) or FetchResult()
    committed: list[str] = []
    kept: list[str] = []             # entities the shrink guard kept as stored
    not_indexed: list[str] = []
    ahead = indexer.Ahead(mirror)
    options = dataclasses.replace(options, progress=_indexing_ahead(options.progress, ahead))

    def commit(ref: str, origin: str, scope: str, manifests: dict[str, str],
               stats: dict | None = None) -> str:
        previous = mirror.refs.get(ref)
        stored = _stored_manifests(mirror, previous)
        if stored and not getattr(options, "allow_shrink", False):
            manifests, lines = shrink.keep_stored(mirror, stored, manifests)
            kept.extend(lines)
        if stored is not None and stored == manifests:
            return previous          # nothing changed in this scope: no new snapshot
        snapshot_id = mirror.commit_snapshot(ref, source_name, origin, scope, manifests, stats,
                                             message=f"fetch {source_name} {scope}")
        committed.append(snapshot_id)
        _refresh(mirror, not_indexed, ahead)
        return snapshot_id

    with mirror.write_lock(f"fetch {source_name}"):
        _refresh(mirror, [])         # catch up after an earlier crash (damage: this fetch heals it)
        before = mirror.objects.written_objects, mirror.objects.written_bytes
        try:
            result = source.fetch(mirror, path, options, commit) or FetchResult()
        finally:
            ahead.close()
        # an unchanged scope commits nothing, but objects it healed may let entities in
        # that an earlier refresh left out
        not_indexed[:] = []
        _refresh(mirror, not_indexed)
    result.snapshots = committed
    # counted by the store, so every source reports new objects the same way
    result.objects_written = mirror.objects.written_objects - before[0]
    result.bytes_written = mirror.objects.written_bytes - before[1]
    if kept:
        result.changed = max(0, result.changed - len(kept))
        result.failed += len(kept)
        result.errors.extend(kept)
    result.errors.extend(f"not indexed: {line}" for line in not_indexed)
    return result


def _stored_manifests(mirror: Mirror, snapshot_id: str | None) -> dict[str, str] | None:
    """The scope's manifests as the ref has them; None when there is no readable snapshot
    (then the fetch writes a new one, which also heals a damaged snapshot)."""
    if not snapshot_id:
        return None
    try:
        return mirror.snapshot(snapshot_id).manifests
    except (ObjectError, KeyError):
        return None


def _refresh(mirror: Mirror, failures: list[str], ahead: indexer.Ahead | None = None) -> None:
    """Refresh the index; entities left out for damage are recorded, not raised: the
    fetch goes on, and is what heals them."""
    try:
        indexer.refresh(mirror, ahead)
    except indexer.IndexIncomplete as e:
        failures.extend(f for f in e.failures if f not in failures)


def _indexing_ahead(progress, ahead: indexer.Ahead):
    """Wrap a progress callback: a new or changed entity means the index will ingest,
    so `ahead` starts on it (and on the libraries) beside the downloads still running."""
    def observe(event: str, **info) -> None:
        if info.get("status") in ("new", "changed"):
            if info.get("manifest"):
                ahead.add(info["manifest"])
            else:
                ahead.start()
        if progress:
            progress(event, **info)
    return observe


def _no_commit(*args, **kwargs):
    raise RuntimeError("--list does not commit")
