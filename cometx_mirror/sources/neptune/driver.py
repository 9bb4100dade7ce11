"""The fetch loop shared by every Neptune format.

A reader lists `RunSource`s grouped by (workspace, project). For each run the
driver asks the reader to store its raw payloads (each part / op-log segment
its own object, so unchanged ones dedupe) and return the raw manifest. When
that equals the previous fetch's (same `raw_digest`), the previous manifest is
reused and nothing is written; otherwise the run is folded and mapped once, so
the derived objects (stdout text, series files) exist before the manifest that
names them. One run failing never stops the others.
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ...store import canonical
from ...store.objects import ObjectError, hash_bytes
from ...store.refs import ref_part
from ..options import FetchResult
from . import mapping


@dataclass
class RunSource:
    workspace: str
    project: str
    key: str
    store: Callable[[Any, dict | None], dict]   # (mirror, previous manifest) -> raw manifest
    fold: Callable[[Any, dict], mapping.RunData]  # (mirror, manifest) -> RunData

    @property
    def label(self) -> str:
        return f"experiment/{self.workspace}/{self.project}/{self.key}"


def store_file(mirror, path: Path, previous: dict | None) -> dict:
    """Store one file; reuse the previous object when size and mtime are unchanged."""
    st = path.stat()
    if previous and previous.get("size") == st.st_size and previous.get("mtime_ns") == st.st_mtime_ns \
            and previous.get("object_id") and mirror.objects.exists(previous["object_id"]):
        return dict(previous)
    object_id, size = mirror.objects.put_file(path)
    return {"object_id": object_id, "size": size, "mtime_ns": st.st_mtime_ns}


def _previous_manifests(mirror, ref: str) -> dict[str, str]:
    snapshot_id = mirror.refs.get(ref)
    return mirror.snapshot(snapshot_id).manifests if snapshot_id else {}


def _load(mirror, manifest_id: str | None) -> dict | None:
    if not manifest_id:
        return None
    try:
        return mirror.get_json(manifest_id)
    except ObjectError:
        return None


def _progress(options, event: str, **info) -> None:
    if getattr(options, "progress", None):
        options.progress(event, **info)


def fetch_runs(mirror, origin: str, runs: list[RunSource], options, commit,
               result: FetchResult | None = None, notes: list[str] | None = None) -> FetchResult:
    result = result or FetchResult()
    scopes: dict[tuple[str, str], list[RunSource]] = defaultdict(list)
    for run in runs:
        scopes[(run.workspace, run.project)].append(run)
    for (workspace, project), scope_runs in sorted(scopes.items()):
        ref = f"neptune/{ref_part(origin)}/{ref_part(workspace)}/{ref_part(project)}"
        previous = _previous_manifests(mirror, ref)
        manifests: dict[str, str] = {}
        errors: list[str] = []
        artifacts: dict[str, list[dict]] = defaultdict(list)
        counts = {"new": 0, "changed": 0, "unchanged": 0, "failed": 0}
        for run in sorted(scope_runs, key=lambda r: r.key):
            _progress(options, "experiment", key=run.key, scope=f"{workspace}/{project}")
            old_id = previous.get(run.label)
            try:
                manifest_id, manifest, status = _fetch_run(mirror, run, old_id)
            except Exception as e:   # one clear line per broken run; the others go on
                counts["failed"] += 1
                errors.append(f"{run.key}: {e}")
                if old_id:          # keep what the last fetch had rather than drop the run
                    manifests[run.label] = old_id
                continue
            finally:
                run.store = run.fold = None    # a reader may hold what it read until its fold: let it go
            counts[status] += 1
            manifests[run.label] = manifest_id
            errors.extend(f"{run.key}: {msg}" for msg in manifest.get("errors", []))
            for art in manifest.get("artifacts", []):
                artifacts[art["path"]].append({"version": art["version"], "experiment_key": run.key,
                                               "files": art["files"]})
        for path, versions in sorted(artifacts.items()):
            label = f"artifact/{workspace}/{mapping.artifact_name(project, path)}"
            manifests[label] = mirror.put_json(mapping.artifact_manifest(workspace, project, path, versions))
        stats = {"runs": len(scope_runs), **counts, "errors": errors, "notes": list(notes or [])}
        commit(ref, origin, f"{workspace}/{project}", manifests, stats)
        result.new += counts["new"]
        result.changed += counts["changed"]
        result.unchanged += counts["unchanged"]
        result.failed += counts["failed"]
        result.errors.extend(errors)
        for e in errors:
            _progress(options, "error", message=e)
    return result


class _FoldMemo:
    """The runs this process folded while fetching, by mirror and raw digest, for the index to take.

    A fold is a pure function of the raw manifest (its digest) and the objects it
    names, so the index, normalizing a manifest the fetch just wrote, takes the
    fold the fetch made instead of decoding the run again. Each is taken once;
    only the latest few are kept (a fold holds no float points: those stream).
    """
    KEEP = 32

    def __init__(self):
        self._runs: OrderedDict[tuple[str, str], mapping.RunData] = OrderedDict()
        self._lock = threading.Lock()      # the index normalizes ahead on a thread of its own

    def put(self, mirror, digest: str, run: mapping.RunData) -> None:
        with self._lock:     # by mirror too: a fold reads its mirror's objects again for the float points
            self._runs[(str(mirror.root), digest)] = run
            while len(self._runs) > self.KEEP:
                self._runs.popitem(last=False)

    def take(self, mirror, manifest: dict) -> mapping.RunData | None:
        with self._lock:
            return self._runs.pop((str(mirror.root), manifest.get("raw_digest") or ""), None)


FOLDED = _FoldMemo()


def fold_of(mirror, manifest: dict, fold: Callable[[Any, dict], mapping.RunData]) -> mapping.RunData:
    """The normalizers' fold: the one this fetch made, else `fold` of the stored objects."""
    return FOLDED.take(mirror, manifest) or fold(mirror, manifest)


class FoldingReader:
    """A reader whose `store` folds what it reads (`keep`), so that the fetch's `fold` of the
    manifest just stored is that fold, taken once; any other manifest (a later reindex, a
    stale one) is folded again from the stored objects by `fold_stored`."""
    _kept: tuple[dict, Any] | None = None

    def fold_stored(self, mirror, manifest: dict) -> mapping.RunData:
        raise NotImplementedError

    def keep(self, manifest: dict, folder) -> None:
        self._kept = (manifest, folder)

    def fold(self, mirror, manifest: dict) -> mapping.RunData:
        kept, self._kept = self._kept, None
        if kept is not None:
            raw, folder = kept
            renamed = ("workspace", "project")    # a renamed run's manifest differs only in its name
            if {k: v for k, v in manifest.items() if k not in renamed} == \
                    {k: v for k, v in raw.items() if k not in renamed}:
                folder.run.workspace, folder.run.project = manifest["workspace"], manifest["project"]
                return folder.finish(mirror, manifest)
        return self.fold_stored(mirror, manifest)


def raw_of(manifest: dict) -> dict:
    """The raw manifest (what a reader's store returned) a manifest _fetch_run wrote was made from."""
    return {k: v for k, v in manifest.items() if k not in ("raw_digest", "artifacts")}


def _fetch_run(mirror, run: RunSource, old_id: str | None) -> tuple[str, dict, str]:
    old = _load(mirror, old_id)
    raw = run.store(mirror, old)
    digest = hash_bytes(canonical.dumps(raw))
    if old and old.get("raw_digest") == digest:
        return old_id, old, "unchanged"
    data = run.fold(mirror, raw)
    _, blobs = mapping.to_experiment(data)
    for blob in blobs.values():
        if isinstance(blob, bytes):
            mirror.objects.put_bytes(blob)
        else:                      # stored from its spool (mapping.to_experiment)
            blob.store(mirror.objects)
    manifest = dict(raw, raw_digest=digest)
    if data.artifacts:
        manifest["artifacts"] = [{"path": p, "version": mapping.artifact_version(files), "files": files}
                                 for p, files in sorted(data.artifacts.items())]
    manifest_id = mirror.put_json(manifest)
    FOLDED.put(mirror, digest, data)
    return manifest_id, manifest, ("changed" if old else "new")


def rel(path: Path, root: Path) -> str:
    return os.path.relpath(path, root).replace(os.sep, "/")
