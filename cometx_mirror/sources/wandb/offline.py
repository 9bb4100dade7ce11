"""Fetching W&B run folders from disk (`wandb/`, `offline-run-*`, `run-*`).

Per run we store the raw `.wandb` record log (a grown log as its stored parts plus the
new tail: log_parts.py), every file under `files/`
(symlinks followed: `wandb.save` links to the original), texts W&B keeps only in
the log (notes; console output when there is no output.log), and the staged
artifact files that still exist.  The manifest names those objects; the
normalizer reads the stored log, so `reindex` can re-run the mapping (in a fetch
it takes the spans the fold framed instead: history_spill.py).  The file itself is
read once: stored as the fold reads it (log_parts.StoringRange).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .. import SourceError, file_prefix
from ...store.objects import ObjectError
from ..offline_names import OfflineNames, ref_prefix
from .common import (DEFAULT_PROJECT, LEGACY_WORKSPACE, OFFLINE_WORKSPACE, SOURCE, exp_label, store_bytes,
                     store_file, store_json)
from . import fold_state, log_parts
from .history_spill import HistorySpill
from .records import CorruptLog, fold

RUN_DIR_RE = re.compile(r"^(offline-)?run-\d{8}_\d{6}-[A-Za-z0-9_-]+$")


def _log_file(folder: Path) -> Path | None:
    logs = sorted(folder.glob("run-*.wandb"))
    return logs[0] if logs else None


def find_run_dirs(path: str) -> list[Path]:
    """The run folders under PATH: PATH itself, PATH/*, or PATH/wandb/*."""
    root = Path(path).expanduser()
    if not root.exists():
        raise SourceError(f"{path}: no such file or folder")
    if root.is_file():
        if root.suffix == ".wandb":
            return [root.parent]
        raise SourceError(f"{path} is not a W&B folder (expected a wandb/ or run folder)")
    if _log_file(root):
        return [root]
    found, seen = [], set()
    for base in (root, root / "wandb"):
        if not base.is_dir():
            continue
        for child in sorted(base.iterdir()):
            # `latest-run` is a symlink to a folder listed anyway
            if child.is_symlink() or not child.is_dir() or not RUN_DIR_RE.match(child.name):
                continue
            real = child.resolve()
            if real not in seen and _log_file(child):
                seen.add(real)
                found.append(child)
    if not found:
        raise SourceError(f"{path} is not a W&B folder: no run-*.wandb under it "
                          "(give a wandb/ folder or one offline-run-*/run-* folder)")
    return found


@dataclass
class OfflineRun:
    folder: Path
    workspace: str
    project: str
    run_id: str
    start: int
    manifest: dict
    artifacts: list[dict] = field(default_factory=list)


def _store_files(mirror, folder: Path, missing: list[str]) -> dict:
    files: dict = {}
    base = folder / "files"
    if not base.is_dir():
        return files
    for dirpath, _dirs, names in os.walk(base, followlinks=True):
        for name in sorted(names):
            full = Path(dirpath) / name
            rel = full.relative_to(base).as_posix()
            try:
                object_id, size = store_file(mirror, full)
            except FileNotFoundError:
                missing.append(rel)       # a wandb.save() link whose original is gone
                continue
            files[rel] = {"object": object_id, "size": size}
    return dict(sorted(files.items()))


def saved_state(mirror, log_entry: dict) -> dict | None:
    """The whole fold state saved with a stored log (fold_state), if it has one."""
    try:
        state = json.loads(mirror.objects.get_bytes(log_entry["resume"]["object"]))
    except (ObjectError, KeyError, TypeError, ValueError):
        return None      # read whole: that heals a lost or damaged state object
    if not fold_state.is_full(state):
        return None                                          # an older, partial state: read whole
    output = fold_state.output_object(state)
    return None if output is not None and not mirror.objects.exists(output) else state


def _resumable(mirror, previous: dict | None) -> tuple[list[dict], dict] | None:
    """(stored parts, saved fold state) of the run's previous manifest, when it has them."""
    entry = (previous or {}).get("log") or {}
    state = saved_state(mirror, entry) if "resume" in entry else None
    return None if state is None else (log_parts.parts(entry), state)


def _fold_log(mirror, f, size: int, name: str, previous: dict | None):
    """(parts, fold, resume entry or None when unchanged) of the first `size` bytes of a log.

    The spans the fold frames are spilled for the index's point stream of this run, which then
    does not frame the stored log again (history_spill)."""
    spill = HistorySpill(mirror.objects.tmp)
    try:
        parts, log, resume, start = _fold_parts(mirror, f, size, name, previous, spill.put_span)
    except BaseException:
        spill.close()
        raise
    if resume is None:
        spill.finished(parts, start)
    else:
        spill.close()              # unchanged: nothing was folded, and the index has its rows
    return parts, log, resume


def _fold_parts(mirror, f, size: int, name: str, previous: dict | None, spans_to):
    """_fold_log's (parts, fold, resume entry or None, the byte the fold started at).

    A pure append to the stored parts stores and folds only the new bytes (from the
    block holding the end of the last whole record); anything else is read whole.
    Either way the bytes are stored as the fold reads them: the file is read once."""
    # everything but the history points, which the normalizer streams (fold_state)
    light = {"history": False, "spans_to": spans_to}
    resumable = _resumable(mirror, previous)
    if resumable is not None:
        old_parts, state = resumable
        stored = sum(p["size"] for p in old_parts)
        if size >= stored and file_prefix.is_prefix(f, old_parts):
            if size == stored:
                return old_parts, fold_state.resolved(state, mirror.objects), previous["log"]["resume"], stored
            start = state["complete_end"]
            with mirror.objects.writer(size - stored) as out:
                source = log_parts.StoringRange(f, size, out, stored)
                log = fold(source, name, start=start, log=fold_state.decode(state, mirror.objects), **light)
                return old_parts + [source.finish()], log, None, start
    f.seek(0)
    with mirror.objects.writer(size) as out:
        source = log_parts.StoringRange(f, size, out, 0)
        log = fold(source, name, **light)
        return [source.finish()], log, None, 0


def _torn_bytes(f, complete_end: int, size: int) -> bytes:
    """The stored bytes after the last whole record (a record cut short), when few."""
    if not 0 < size - complete_end <= fold_state.TORN_LIMIT:
        return b""
    f.seek(complete_end)
    return f.read(size - complete_end)


def read_run(mirror, folder: Path, names: OfflineNames, previous: dict | None = None) -> OfflineRun:
    """Store one run folder's raw data and build its manifest (raises CorruptLog).

    `previous`: the run's manifest from the last fetch, whose stored log a grown one extends."""
    log_path = _log_file(folder)
    if previous and (previous.get("folder"), previous.get("log_name")) != (folder.name, log_path.name):
        previous = None
    # Stored, then folded from the file (never whole in memory), up to the size it had when
    # opened: a live run grows meanwhile, and the fold must describe the bytes stored.
    with open(log_path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        parts, log, resume = _fold_log(mirror, f, size, f"{folder.name}/{log_path.name}", previous)
        if resume is None:
            resume = store_bytes(mirror, fold_state.encode(log, mirror.objects, _torn_bytes(f, log.complete_end, size)))
    log_entry = log_parts.entry(parts, resume)
    log_size = log_entry["size"]
    run = log.run
    run_id = run.get("id") or log_path.stem[len("run-"):]
    workspace, project = names.name(run.get("entity"), run.get("project"))
    texts = {}
    if run.get("notes"):
        texts["notes"] = store_bytes(mirror, run["notes"].encode("utf-8"))
    missing: list[str] = []
    files = _store_files(mirror, folder, missing)
    if not files.get("output.log", {}).get("size") and log.output.any_value:
        # wandb <= 0.17 wrote no output.log, 0.19 offline an empty one: keep the console chunks as one text
        texts["output"] = {"object": log.output.store(mirror.objects), "size": log.output.size}
    manifest = {
        "type": "experiment", "normalizer": "wandb-offline/1", "source": SOURCE,
        "workspace": workspace, "project": project, "key": run_id, "folder": folder.name,
        "log_name": log_path.name, "log": log_entry, "files": files,
        "texts": texts,
        # how much the run holds: a later fetch never replaces it with less (sync/shrink.py)
        "extent": {"log_bytes": log_size, "points": log.history_rows},
    }
    if missing:
        manifest["missing_files"] = missing
    artifacts = []
    for a in log.artifacts:
        entries = []
        for e in a["files"]:
            entry = {"path": e["path"], "digest": e["digest"], "size": e["size"], "ref": e["ref"]}
            local = e.get("local_path")
            if local and os.path.isfile(local):    # staged copies vanish once synced or cleaned
                entry["object"], _ = store_file(mirror, local)
            entries.append(entry)
        artifacts.append({k: a[k] for k in ("name", "type", "digest", "aliases", "description", "metadata")}
                         | {"files": entries})
    return OfflineRun(folder, workspace, project, run_id, run.get("start_time") or 0, manifest, artifacts)


def merge_artifacts(mirror, previous: dict[str, dict], runs: list[OfflineRun]) -> dict[str, dict]:
    """Number artifact versions as W&B would: per collection, in logging order, one per digest.

    Versions already in the mirror keep their numbers; `latest` is on the newest.
    """
    from .common import artifact_label
    out = {label: dict(m, versions=[dict(v) for v in m["versions"]]) for label, m in previous.items()}
    for run in sorted(runs, key=lambda r: (r.start, r.run_id)):
        for a in run.artifacts:
            label = artifact_label(run.workspace, run.project, a["name"])
            m = out.setdefault(label, {
                "type": "artifact", "normalizer": "wandb-artifact/1", "source": SOURCE,
                "workspace": run.workspace, "project": run.project, "name": a["name"], "versions": []})
            m["artifact_type"] = a["type"]
            if a.get("description"):
                m["description"] = a["description"]
            version = next((v for v in m["versions"] if v["digest"] == a["digest"]), None)
            if version is None:
                version = {"version": f"v{len(m['versions'])}", "digest": a["digest"], "aliases": [],
                           "metadata": a["metadata"], "run": run.run_id, "created_at": run.start or None,
                           "state": "PENDING", "files": a["files"]}
                m["versions"].append(version)
            else:   # the same content logged again: fill in files whose staged copy we now have
                have = {f["path"]: f for f in version["files"]}
                for f in a["files"]:
                    if f.get("object") and not have.get(f["path"], {}).get("object"):
                        have[f["path"]] = f
                version["files"] = sorted(have.values(), key=lambda f: f["path"])
            for alias in a["aliases"]:
                if alias != "latest" and alias not in version["aliases"]:
                    for other in m["versions"]:     # an alias names one version at a time
                        if alias in other["aliases"]:
                            other["aliases"].remove(alias)
                    version["aliases"].append(alias)
    for m in out.values():
        for v in m["versions"]:
            v["aliases"] = sorted(a for a in v["aliases"] if a != "latest")
        if m["versions"]:
            m["versions"][-1]["aliases"] = ["latest"] + m["versions"][-1]["aliases"]
    return out


def fetch_offline(mirror, path: str, options, commit, result) -> None:
    from ...store.refs import ref_part
    from .common import OFFLINE_ORIGIN
    folders = find_run_dirs(path)
    names = OfflineNames(mirror, ref_prefix(SOURCE, OFFLINE_ORIGIN), (OFFLINE_WORKSPACE, DEFAULT_PROJECT),
                         (LEGACY_WORKSPACE, DEFAULT_PROJECT), options.project)
    if names.note():
        _progress(options, "note", message=names.note())
    runs: list[OfflineRun] = []
    stored = _stored_runs(mirror)
    for folder in folders:
        try:
            runs.append(read_run(mirror, folder, names, _previous_run(mirror, stored, folder)))
            _progress(options, "run", label=folder.name, bytes=runs[-1].manifest["log"]["size"])
        except CorruptLog as e:
            result.failed += 1
            result.errors.append(str(e))
        except OSError as e:
            result.failed += 1
            result.errors.append(f"{folder.name}: {e.strerror or e}")
    if options.list_only:
        result.listing.extend({"source": SOURCE, "path": f"{r.workspace}/{r.project}/{r.run_id}",
                               "workspace": r.workspace, "project": r.project,
                               "key": r.run_id, "folder": r.folder.name} for r in runs)
        return
    names.check([(r.workspace, r.project, r.run_id) for r in runs])
    scopes: dict[tuple[str, str], list[OfflineRun]] = {}
    for run in runs:
        scopes.setdefault((run.workspace, run.project), []).append(run)
    for (workspace, project), scope_runs in sorted(scopes.items()):
        ref = "/".join([SOURCE, OFFLINE_ORIGIN, ref_part(workspace), ref_part(project)])
        previous = _previous_manifests(mirror, ref)
        # Offline folders are partial views: runs not seen this time stay in the snapshot.
        manifests = dict(previous)
        for run in scope_runs:
            label = exp_label(workspace, project, run.run_id)
            manifest_id = store_json(mirror, run.manifest)["object"]
            _count(result, previous.get(label), manifest_id)
            manifests[label] = manifest_id
        prev_artifacts = {label: mirror.get_json(mid) for label, mid in previous.items()
                          if label.startswith("artifact/")}
        for label, m in merge_artifacts(mirror, prev_artifacts, scope_runs).items():
            manifests[label] = store_json(mirror, m)["object"]
        stats = {"runs": len(scope_runs), "errors": len(result.errors)}
        commit(ref, OFFLINE_ORIGIN, f"{workspace}/{project}", dict(sorted(manifests.items())), stats)


def _stored_runs(mirror) -> dict[str, list[str]]:
    """run id -> manifest ids of the offline runs the refs hold (from labels: nothing read)."""
    from .common import OFFLINE_ORIGIN
    prefix, out = ref_prefix(SOURCE, OFFLINE_ORIGIN) + "/", {}
    for ref, snapshot_id in mirror.refs.items():
        if ref.startswith(prefix):
            for label, manifest_id in mirror.snapshot(snapshot_id).manifests.items():
                if label.startswith("experiment/"):
                    out.setdefault(label.rsplit("/", 1)[-1], []).append(manifest_id)
    return out


def _previous_run(mirror, stored: dict[str, list[str]], folder: Path) -> dict | None:
    """The stored manifest of the run in `folder` (same folder and log file), if any."""
    log_path = _log_file(folder)
    for manifest_id in stored.get(log_path.stem[len("run-"):], []):
        try:
            manifest = mirror.get_json(manifest_id)
        except ObjectError:
            continue
        if (manifest.get("folder"), manifest.get("log_name")) == (folder.name, log_path.name):
            return manifest
    return None


def _previous_manifests(mirror, ref: str) -> dict[str, str]:
    snapshot_id = mirror.refs.get(ref)
    return dict(mirror.snapshot(snapshot_id).manifests) if snapshot_id else {}


def _count(result, previous_id: str | None, manifest_id: str) -> None:
    if previous_id is None:
        result.new += 1
    elif previous_id == manifest_id:
        result.unchanged += 1
    else:
        result.changed += 1


def _progress(options, event: str, **info) -> None:
    if callable(getattr(options, "progress", None)):
        options.progress(event, **info)
