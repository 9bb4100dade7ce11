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
from ..store.mirror import Mirror
from . import indexer
from ..sources.options import FetchOptions, FetchResult


def run_fetch(mirror: Mirror, source_name: str, path: str, options: FetchOptions) -> FetchResult:
    source = load_source(source_name)
    if options.list_only:
        return source.fetch(mirror, path, options, _no_commit) or FetchResult()
    committed: list[str] = []
    ahead = indexer.Ahead(mirror)
    options = dataclasses.replace(options, progress=_indexing_ahead(options.progress, ahead))

    def commit(ref: str, origin: str, scope: str, manifests: dict[str, str],
               stats: dict | None = None) -> str:
        previous = mirror.refs.get(ref)
        if previous and mirror.snapshot(previous).manifests == manifests:
            return previous          # nothing changed in this scope: no new snapshot
        snapshot_id = mirror.commit_snapshot(ref, source_name, origin, scope, manifests, stats,
                                             message=f"fetch {source_name} {scope}")
        committed.append(snapshot_id)
        indexer.refresh(mirror, ahead)
        return snapshot_id

    with mirror.write_lock(f"fetch {source_name}"):
        indexer.refresh(mirror)      # catch up after an earlier crash
        before = mirror.objects.written_objects, mirror.objects.written_bytes
        try:
            result = source.fetch(mirror, path, options, commit) or FetchResult()
        finally:
            ahead.close()
    result.snapshots = committed
    # counted by the store, so every source reports new objects the same way
    result.objects_written = mirror.objects.written_objects - before[0]
    result.bytes_written = mirror.objects.written_bytes - before[1]
    return result


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
